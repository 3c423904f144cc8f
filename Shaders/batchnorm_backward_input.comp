#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// A train-mode BatchNorm's input gradient, with m = batch * pixels values per channel:
//   dx = gamma[c] / sqrt(var[c] + eps) (dpre - dbeta[c] / m - xhat dgamma[c] / m)
// (plus what dx holds where ACCUMULATE is 1), from batchnorm_backward_sums.comp's sums. Each invocation takes
// ELEMENTS_PER_INVOCATION consecutive elements (FOR_CHANNEL_RUN).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACCUMULATE = 0u;

INPUT_F32(0, x)
INPUT_F32(1, dpre)
layout(binding = 2) buffer DX { float dx[]; };
INPUT_SMALL(3, statistics)  // [mean][variance], channels each
INPUT_SMALL(4, gamma)
INPUT_SMALL(5, dgamma)
INPUT_SMALL(6, dbeta)

layout(push_constant) uniform Push {
    uint count, channels, pixels;
    float epsilon;
    float perChannel;  // m
} p;

// Channel c's mean, 1 / sqrt(var + eps), gamma, and its sums.
#define LOAD_CHANNEL                                                                                                 \
    mean = LOAD_SMALL(statistics, c);                                                                                \
    inverse = inversesqrt(LOAD_SMALL(statistics, p.channels + c) + p.epsilon);                                       \
    scale = LOAD_SMALL(gamma, c);                                                                                    \
    betaSum = LOAD_SMALL(dbeta, c);                                                                                  \
    gammaSum = LOAD_SMALL(dgamma, c);

void main() {
    float mean, inverse, scale, betaSum, gammaSum;
    FOR_CHANNEL_RUN(p.count, p.channels, p.pixels, LOAD_CHANNEL, {
        const float xhat = (LOAD1(x, index) - mean) * inverse;
        const float g = LOAD1(dpre, index) - (betaSum + xhat * gammaSum) / p.perChannel;
        dx[index] = scale * inverse * g + (ACCUMULATE == 1u ? dx[index] : 0.0);
    })
}
