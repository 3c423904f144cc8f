#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage
// @variant backward BACKWARD

// Softmax over each row of `columns` values, and its gradient, for the attention's training (its logits and their
// gradients are [rows][columns], written by gemm_train.comp):
//   softmax_rows           p[r][j] = exp(s[r][j] - max_j s[r][j]) / sum_j exp(...), in place;
//   softmax_rows_backward  ds[r][j] = p[r][j] (dp[r][j] - sum_j' p[r][j'] dp[r][j']), in place of dp.
// One invocation per row (flat_invocation), three passes over it.

layout(local_size_x_id = 0) in;

#if defined(BACKWARD)
layout(binding = 0) readonly buffer P { float probabilities[]; };
layout(binding = 1) buffer DP { float gradient[]; };
#else
layout(binding = 0) buffer P { float probabilities[]; };
#endif

layout(push_constant) uniform Push {
    uint rows, columns;
} p;

void main() {
    const uint row = flat_invocation();
    if (row >= p.rows) return;
    const uint first = row * p.columns;
#if defined(BACKWARD)
    float weighted = 0.0;
    for (uint j = 0u; j < p.columns; ++j) weighted += probabilities[first + j] * gradient[first + j];
    for (uint j = 0u; j < p.columns; ++j) {
        gradient[first + j] = probabilities[first + j] * (gradient[first + j] - weighted);
    }
#else
    float largest = probabilities[first];
    for (uint j = 1u; j < p.columns; ++j) largest = max(largest, probabilities[first + j]);
    float total = 0.0;
    for (uint j = 0u; j < p.columns; ++j) {
        const float e = exp(probabilities[first + j] - largest);
        probabilities[first + j] = e;
        total += e;
    }
    for (uint j = 0u; j < p.columns; ++j) probabilities[first + j] /= total;
#endif
}
