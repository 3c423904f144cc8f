#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Multi-head self-attention in the BoTNet layout, for T tokens (pixels) and 64 channels per head.
// qkv[n] holds 3 * heads * 64 channels ordered [q | k | v], each head-major: channel (part * heads + h) * 64 + c.
//   logits[i][j] = (1/8) * sum_c q[c][i] * k[c][j]
//   a[h * 64 + c][i] = sum_j softmax_j(logits[i][j]) * v[c][j]
//   y = act(a * scale[channel] + shift[channel])        (the BatchNorm and activation after attention, fused)
// One invocation per (image, head, query token): it keeps its query and its output row in registers and walks the
// keys once with an online softmax (running maximum and sum, rescaled when the maximum grows), so it is numerically
// stable for any token count and needs no T x T scratch.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;

layout(binding = 0) uniform samplerBuffer qkv;     // R32F, [N][3 * heads * 64][T]
layout(binding = 1) uniform samplerBuffer affine;  // R32F, scale[0..heads*64) then shift[0..heads*64)
layout(binding = 2) writeonly buffer Output { float y[]; };  // [N][heads * 64][T]

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
    const int v_base = image + int((2u * p.heads + h) * D) * T;

    float q[D];
    for (uint c = 0u; c < D; ++c) q[c] = texelFetch(qkv, q_base + int(c) * T + int(i)).x * 0.125;
    float acc[D];
    for (uint c = 0u; c < D; ++c) acc[c] = 0.0;
    float running_max = -1.0 / 0.0;
    float running_sum = 0.0;
    for (int j = 0; j < T; ++j) {
        float logit = 0.0;
        for (uint c = 0u; c < D; ++c) logit += q[c] * texelFetch(qkv, k_base + int(c) * T + j).x;
        if (logit > running_max) {
            const float correction = exp(running_max - logit);  // 0 on the first key
            running_sum *= correction;
            for (uint c = 0u; c < D; ++c) acc[c] *= correction;
            running_max = logit;
        }
        const float weight = exp(logit - running_max);
        running_sum += weight;
        for (uint c = 0u; c < D; ++c) acc[c] += weight * texelFetch(qkv, v_base + int(c) * T + j).x;
    }
    const int out_base = int((n * p.heads + h) * D) * T + int(i);
    const float inverse = 1.0 / running_sum;
    const int channels = int(p.heads * D);
    for (uint c = 0u; c < D; ++c) {
        const int channel = int(h * D + c);
        const float scale = texelFetch(affine, channel).x, shift = texelFetch(affine, channels + channel).x;
        y[out_base + int(c) * T] = epilogue(acc[c] * inverse, scale, shift, 0.0, false, ACTIVATION);
    }
}
