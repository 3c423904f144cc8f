#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage

// A train-mode BatchNorm with its epilogue: y = act(gamma[c] (x - mean[c]) / sqrt(var[c] + eps) + beta[c]
// (+ residual where HAS_RESIDUAL is 1)), with the batch's statistics from batchnorm_statistics.comp. One invocation
// per element (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const uint HAS_RESIDUAL = 0u;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer Residual { float residual[]; };  // x again where HAS_RESIDUAL is 0
layout(binding = 2) writeonly buffer Y { float y[]; };
INPUT_SMALL(3, statistics)  // [mean][variance], channels each
INPUT_SMALL(4, gamma)
INPUT_SMALL(5, beta)

layout(push_constant) uniform Push {
    uint count, channels, pixels;
    float epsilon;
} p;

void main() {
    const uint index = flat_invocation();
    if (index >= p.count) return;
    const uint c = (index / p.pixels) % p.channels;
    const float inverse = inversesqrt(LOAD_SMALL(statistics, p.channels + c) + p.epsilon);
    float v = (x[index] - LOAD_SMALL(statistics, c)) * inverse * LOAD_SMALL(gamma, c) + LOAD_SMALL(beta, c);
    if (HAS_RESIDUAL == 1u) v += residual[index];
    y[index] = activate(v, ACTIVATION);
}
