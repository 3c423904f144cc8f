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

// First pass of attention (see attention.comp): the log of each softmax row's normaliser,
//   lse[n][h][i] = log( sum_j exp(logits[i][j]) ),   logits[i][j] = (1/8) * sum_c q[c][i] * k[c][j]
// computed stably as max_j + log(sum_j exp(logits - max_j)), with the maximum and sum carried online.
// One invocation per (image, head, query token i).

// attention_rows_shuffle (SHUFFLE_KEYS; subgroups of at least 8 with shuffles): a workgroup's lanes are query tokens
// of one (image, head) (workgroup y); the first 8 lanes fetch 8 keys at once and each key reaches every lane by a
// shuffle (block_logits in attention_keys.glsl), instead of every lane fetching the same key.

layout(local_size_x_id = 0) in;

#if defined(SHUFFLE_KEYS)
IMAGE_INPUT(0, qkv, r32f)  // [N][3 * heads * 64][T]
#define LOAD_QKV(i) LOAD_IMAGE1(qkv, i)
#else
INPUT(0, qkv)  // R32F, [N][3 * heads * 64][T]
#define LOAD_QKV(i) LOAD1(qkv, i)
#endif
OUTPUT_F32(1, lse)  // [N][heads][T]

layout(push_constant) uniform Push {
    uint batch, heads, tokens;
} p;

const uint D = 64u;

#include "attention_keys.glsl"

void main() {
    ATTENTION_ITEM
    float q[D];
    [[unroll]] for (uint c = 0u; c < D; ++c) q[c] = LOAD_QKV(q_base + int(c) * T + int(i)) * 0.125;

    float running_max = -1.0 / 0.0;
    float running_sum = 0.0;
#if defined(SHUFFLE_KEYS)
    for (int j0 = 0; j0 < T; j0 += 8) {
        float logit[8];
        block_logits(q, k_base, T, j0, logit);
        // Keys past the end count for nothing (key j0 is always one of the map's).
        float block_max = logit[0];
        [[unroll]] for (int u = 1; u < 8; ++u) if (j0 + u < T) block_max = max(block_max, logit[u]);
        const float new_max = max(running_max, block_max);
        running_sum *= exp(running_max - new_max);  // exp(-inf) = 0 on the first block
        [[unroll]] for (int u = 0; u < 8; ++u) if (j0 + u < T) running_sum += exp(logit[u] - new_max);
        running_max = new_max;
    }
    if (!stores) return;
#else
    for (int j = 0; j < T; ++j) {
        float logit = 0.0;
        [[unroll]] for (uint c = 0u; c < D; ++c) logit += q[c] * LOAD_QKV(k_base + int(c) * T + j);
        if (logit > running_max) {
            running_sum *= exp(running_max - logit);  // exp(-inf) = 0 on the first key
            running_max = logit;
        }
        running_sum += exp(logit - running_max);
    }
#endif
    STORE1_F32(lse, item, running_max + log(running_sum));
}
