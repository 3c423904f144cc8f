#ifndef BOSSNET_CVULKAN_SHIM_H
#define BOSSNET_CVULKAN_SHIM_H
#include <vulkan/vulkan.h>
#endif
