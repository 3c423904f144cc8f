#ifndef BOSSNET_CPNG_SHIM_H
#define BOSSNET_CPNG_SHIM_H
#include <png.h>
#endif
