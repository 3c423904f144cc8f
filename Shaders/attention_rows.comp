#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage
// (No fp16 build: the 16-bit families run the tiled kernels instead.)

// First pass of attention (see attention.comp): the log of each softmax row's normaliser,
//   lse[n][h][i] = log( sum_j exp(logits[i][j]) ),   logits[i][j] = (1/8) * sum_c q[c][i] * k[c][j]
// computed stably as max_j + log(sum_j exp(logits - max_j)), with the maximum and sum carried online.
// One invocation per (image, head, query token i).

layout(local_size_x_id = 0) in;

INPUT(0, qkv)  // R32F, [N][3 * heads * 64][T]
OUTPUT_F32(1, lse)  // [N][heads][T]

layout(push_constant) uniform Push {
    uint batch, heads, tokens;
} p;

const uint D = 64u;

void main() {
    const uint item = flat_invocation();
    if (item >= p.batch * p.heads * p.tokens) return;
    const uint i = item % p.tokens;
    const uint h = (item / p.tokens) % p.heads;
    const uint n = item / (p.tokens * p.heads);
    const int T = int(p.tokens);
    const int image = int(n * 3u * p.heads * D) * T;
    const int q_base = image + int(h * D) * T;
    const int k_base = image + int((p.heads + h) * D) * T;

    float q[D];
    [[unroll]] for (uint c = 0u; c < D; ++c) q[c] = LOAD1(qkv, q_base + int(c) * T + int(i)) * 0.125;
    float running_max = -1.0 / 0.0;
    float running_sum = 0.0;
    for (int j = 0; j < T; ++j) {
        float logit = 0.0;
        [[unroll]] for (uint c = 0u; c < D; ++c) logit += q[c] * LOAD1(qkv, k_base + int(c) * T + j);
        if (logit > running_max) {
            running_sum *= exp(running_max - logit);  // exp(-inf) = 0 on the first key
            running_max = logit;
        }
        running_sum += exp(logit - running_max);
    }
    STORE1_F32(lse, item, running_max + log(running_sum));
}
