#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage
// (No fp16 build: the 16-bit families run the tiled kernels instead.)

// Multi-head self-attention as BossNet's checkpoints were trained with it (BoTNet layout, 64 channels per head), as
// the authors' latest bot_op.py computes it: `out = v @ attn.transpose(-2, -1)`, softmax over keys.
// qkv[n] holds 3 * heads * 64 channels ordered [q | k | v], each head-major: channel (part * heads + h) * 64 + c.
//   logits[i][j] = (1/8) * sum_c q[c][i] * k[c][j]
//   attn[i][j]   = softmax over keys j of logits[i][j] = exp(logits[i][j] - lse[i])     (lse from attention_rows)
//   a[h*64 + c][i] = sum_j attn[i][j] * v[c][j]      (query token i gathers the values of all keys j)
//   y = act(a * scale[channel] + shift[channel])     (the BatchNorm and activation after attention, fused)
// One invocation per (image, head, query token i): it keeps q[., i] and its output row in registers and walks the
// key tokens once; all invocations of a workgroup read the same k and v values at each step.
// The loops over the 64 channels are unrolled: lavapipe ends any invocation after 65535 loop iterations in all, and
// with them rolled up a map of 499 tokens or more would stop short (each token would cost 129 iterations).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;

INPUT(0, qkv)  // R32F, [N][3 * heads * 64][T]
INPUT_F32(1, lse)  // R32F, [N][heads][T] from attention_rows
INPUT_SMALL(2, affine)  // R32F, scale[0..heads*64) then shift[0..heads*64)
OUTPUT(3, y)  // [N][heads * 64][T]

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
    const float row_lse = LOAD1(lse, int(item));  // item = (n * heads + h) * T + i

    float q[D];
    [[unroll]] for (uint c = 0u; c < D; ++c) q[c] = LOAD1(qkv, q_base + int(c) * T + int(i)) * 0.125;
    float acc[D];
    [[unroll]] for (uint c = 0u; c < D; ++c) acc[c] = 0.0;
    for (int j = 0; j < T; ++j) {
        float logit = 0.0;
        [[unroll]] for (uint c = 0u; c < D; ++c) logit += q[c] * LOAD1(qkv, k_base + int(c) * T + j);
        const float weight = exp(logit - row_lse);
        [[unroll]] for (uint c = 0u; c < D; ++c) acc[c] += weight * LOAD1(qkv, v_base + int(c) * T + j);
    }

    const int out_base = int((n * p.heads + h) * D) * T + int(i);
    const int channels = int(p.heads * D);
    [[unroll]] for (uint c = 0u; c < D; ++c) {
        const int channel = int(h * D + c);
        const float scale = LOAD_SMALL(affine, channel), shift = LOAD_SMALL(affine, channels + channel);
        STORE1(y, out_base + int(c) * T, epilogue(acc[c], scale, shift, 0.0, false, ACTIVATION));
    }
}
