#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// A train-mode BatchNorm's input gradient, with m = batch * pixels values per channel:
//   dx = gamma[c] / sqrt(var[c] + eps) (dpre - dbeta[c] / m - xhat dgamma[c] / m)
// (plus what dx holds where ACCUMULATE is 1), from batchnorm_backward_sums.comp's sums. One invocation per element.

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

void main() {
    const uint index = flat_invocation();
    if (index >= p.count) return;
    const uint c = (index / p.pixels) % p.channels;
    const float inverse = inversesqrt(LOAD_SMALL(statistics, p.channels + c) + p.epsilon);
    const float xhat = (LOAD1(x, index) - LOAD_SMALL(statistics, c)) * inverse;
    const float g = LOAD1(dpre, index) - (LOAD_SMALL(dbeta, c) + xhat * LOAD_SMALL(dgamma, c)) / p.perChannel;
    dx[index] = LOAD_SMALL(gamma, c) * inverse * g + (ACCUMULATE == 1u ? dx[index] : 0.0);
}
