#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage
// @variant batchnorm BATCHNORM
// @variant droppath DROP_PATH
// @variant batchnorm_droppath BATCHNORM DROP_PATH

// An operation's epilogue in training: y = act(pre), where pre is
//   x (+ residual where HAS_RESIDUAL is 1)                                 (epilogue_forward), or
//   gamma[c] (x - mean[c]) / sqrt(var[c] + eps) + beta[c] (+ residual)   (epilogue_forward_batchnorm: a train-mode
//                                                                          BatchNorm with the batch's statistics from
//                                                                          batchnorm_statistics.comp).
// The _droppath variants scale the operation's part of pre (all but the residual) by keep[n], image n's scale from
// stochastic depth (0 for a dropped branch, 1 / keep probability for a kept one).
// Each invocation takes ELEMENTS_PER_INVOCATION consecutive elements (FOR_CHANNEL_RUN). epilogue_backward.comp is
// its gradient.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const uint HAS_RESIDUAL = 0u;

INPUT_F32(0, x)
INPUT_F32(1, residual)  // x again where HAS_RESIDUAL is 0
layout(binding = 2) writeonly buffer Y { float y[]; };
#if defined(BATCHNORM)
INPUT_SMALL(3, statistics)  // [mean][variance], channels each
INPUT_SMALL(4, gamma)
INPUT_SMALL(5, beta)
#endif
#if defined(DROP_PATH) && defined(BATCHNORM)
INPUT_SMALL(6, keep)  // [batch]
#elif defined(DROP_PATH)
INPUT_SMALL(3, keep)  // [batch]
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
        y[index] = activate(pre, ACTIVATION);
    })
}
