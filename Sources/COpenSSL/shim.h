#ifndef BOSSNET_COPENSSL_SHIM_H
#define BOSSNET_COPENSSL_SHIM_H
#include <openssl/evp.h>
#endif
