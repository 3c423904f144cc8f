#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage
// @variant batchnorm BATCHNORM
// @variant droppath DROP_PATH
// @variant batchnorm_droppath BATCHNORM DROP_PATH

// The gradient through an operation's epilogue (epilogue_forward.comp): dpre = dy * act'(pre), where pre is what the
// activation read,
//   x (+ residual)                                                        (epilogue_backward), or
//   gamma[c] (x - mean[c]) / sqrt(var[c] + eps) + beta[c] (+ residual)  (epilogue_backward_batchnorm: x is the
//                                                                          operation's output before its BatchNorm).
// With DROP_PATH, pre's operation part is scaled by keep[n] as in epilogue_forward.comp (the operation's gradient is
// then keep[n] dpre, image_scale.comp). dpre is also the residual's gradient. Each invocation takes
// ELEMENTS_PER_INVOCATION consecutive elements (FOR_CHANNEL_RUN).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const uint HAS_RESIDUAL = 0u;

INPUT_F32(0, dy)
INPUT_F32(1, x)
INPUT_F32(2, residual)  // x again where HAS_RESIDUAL is 0
layout(binding = 3) writeonly buffer DPre { float dpre[]; };
#if defined(BATCHNORM)
INPUT_SMALL(4, statistics)  // [mean][variance], channels each
INPUT_SMALL(5, gamma)
INPUT_SMALL(6, beta)
#endif
#if defined(DROP_PATH) && defined(BATCHNORM)
INPUT_SMALL(7, keep)  // [batch]
#elif defined(DROP_PATH)
INPUT_SMALL(4, keep)  // [batch]
#endif
#if defined(DROP_PATH)
#define BRANCH_SCALE(i) LOAD_SMALL(keep, (i) / (p.channels * p.pixels))
#else
#define BRANCH_SCALE(i) 1.0
#endif

layout(push_constant) uniform Push {
    uint count, channels, pixels;
    float epsilon;
} p;

void main() {
    float mean, inverse, scale, shift;  // channel c's, with BATCHNORM (LOAD_NORMALISATION)
    FOR_CHANNEL_RUN(p.count, p.channels, p.pixels, LOAD_NORMALISATION, {
        float pre = NORMALISED(LOAD1(x, index)) * BRANCH_SCALE(index);
        if (HAS_RESIDUAL == 1u) pre += LOAD1(residual, index);
        dpre[index] = LOAD1(dy, index) * activation_derivative(pre, ACTIVATION);
    })
}
