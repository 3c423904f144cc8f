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

// Index of this invocation when a 1-D range of work is dispatched as a 2-D grid of workgroups (the host splits the
// groups over x and y because many devices allow only 65535 workgroups per dimension).
uint flat_invocation() {
    return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
}

// The fused epilogue of every producing kernel: per-channel scale and shift (a folded BatchNorm, or a bias), then
// either act(v) or, with a residual, act(v + residual).
float epilogue(float acc, float scale, float shift, float residual_value, bool has_residual, uint act) {
    float v = acc * scale + shift;
    return activate(has_residual ? v + residual_value : v, act);
}

#endif
