// Helpers shared by every kernel. Included with #include "common.glsl".
#ifndef BOSSNET_COMMON_GLSL
#define BOSSNET_COMMON_GLSL

// Activation codes; the Swift mirror is Kernels.Activation.
#define ACT_IDENTITY 0u
#define ACT_RELU 1u
#define ACT_SILU 2u
#define ACT_SIGMOID 3u

// sigmoid(x) = 1 / (1 + e^-x); silu(x) = x * sigmoid(x).
float activate(float x, uint act) {
    if (act == ACT_RELU) return max(x, 0.0);
    if (act == ACT_SILU) return x / (1.0 + exp(-x));
    if (act == ACT_SIGMOID) return 1.0 / (1.0 + exp(-x));
    return x;
}

vec4 activate(vec4 x, uint act) {
    if (act == ACT_RELU) return max(x, vec4(0.0));
    if (act == ACT_SILU) return x / (vec4(1.0) + exp(-x));
    if (act == ACT_SIGMOID) return vec4(1.0) / (vec4(1.0) + exp(-x));
    return x;
}

#endif
