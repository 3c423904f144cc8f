#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(SHUFFLE_KEYS)
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"

// @datapaths texel storage
// @variant shuffle SHUFFLE_KEYS
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

// attention_shuffle (SHUFFLE_KEYS; subgroups of at least 8 with shuffles): a workgroup's lanes are query tokens of
// one (image, head); the first 8 lanes fetch 8 keys (and then their values) at once and each reaches every lane by a
// shuffle (attention_keys.glsl).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;

#if defined(SHUFFLE_KEYS)
IMAGE_INPUT(0, qkv, r32f)  // [N][3 * heads * 64][T]
#define LOAD_QKV(i) LOAD_IMAGE1(qkv, i)
#else
INPUT(0, qkv)  // R32F, [N][3 * heads * 64][T]
#define LOAD_QKV(i) LOAD1(qkv, i)
#endif
INPUT_F32(1, lse)  // R32F, [N][heads][T] from attention_rows
INPUT_SMALL(2, affine)  // R32F, scale[0..heads*64) then shift[0..heads*64)
OUTPUT(3, y)  // [N][heads * 64][T]

layout(push_constant) uniform Push {
    uint batch, heads, tokens;
} p;

const uint D = 64u;

#include "attention_keys.glsl"

void main() {
    ATTENTION_ITEM
    const float row_lse = LOAD1(lse, int(item));

    float q[D];
    [[unroll]] for (uint c = 0u; c < D; ++c) q[c] = LOAD_QKV(q_base + int(c) * T + int(i)) * 0.125;
    float acc[D];
    [[unroll]] for (uint c = 0u; c < D; ++c) acc[c] = 0.0;
#if defined(SHUFFLE_KEYS)
    for (int j0 = 0; j0 < T; j0 += 8) {
        float logit[8];
        block_logits(q, k_base, T, j0, logit);
        float weight[8];
        [[unroll]] for (int u = 0; u < 8; ++u) weight[u] = j0 + u < T ? exp(logit[u] - row_lse) : 0.0;
        const int j = block_key(T, j0);
        [[unroll]] for (uint c = 0u; c < D; ++c) {
            const float vc = LOAD_QKV(v_base + int(c) * T + j);
            float sum = 0.0;
            [[unroll]] for (uint u = 0u; u < 8u; ++u) sum += weight[u] * subgroupShuffle(vc, u);
            acc[c] += sum;
        }
    }
    if (!stores) return;
#else
    for (int j = 0; j < T; ++j) {
        float logit = 0.0;
        [[unroll]] for (uint c = 0u; c < D; ++c) logit += q[c] * LOAD_QKV(k_base + int(c) * T + j);
        const float weight = exp(logit - row_lse);
        [[unroll]] for (uint c = 0u; c < D; ++c) acc[c] += weight * LOAD_QKV(v_base + int(c) * T + j);
    }
#endif

    const int out_base = int((n * p.heads + h) * D) * T + int(i);
    const int channels = int(p.heads * D);
    [[unroll]] for (uint c = 0u; c < D; ++c) {
        const int channel = int(h * D + c);
        const float scale = LOAD_SMALL(affine, channel), shift = LOAD_SMALL(affine, channels + channel);
        STORE1(y, out_base + int(c) * T, epilogue(acc[c], scale, shift, 0.0, false, ACTIVATION));
    }
}
