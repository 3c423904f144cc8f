#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths storage fp16
// (No texel-buffer build: no family runs this kernel on the texel path.)

// Multi-head self-attention in one pass (flash-style), computing exactly what attention.comp computes (see its header
// for the BoTNet layout), without the separate lse pass:
//   logits[i][j]   = (1/8) * sum_c q[c][i] * k[c][j]
//   attn[i][j]     = softmax over keys j of logits[i][j]
//   a[h*64 + c][i] = sum_j attn[i][j] * v[c][j]
//   y = act(a * scale[channel] + shift[channel])        (no residual)
// qkv[n] holds 3 * heads * 64 channels ordered [q | k | v], each head-major (channel (part * heads + h) * 64 + c),
// each channel a row of T tokens: qkv[((n * 3 + part) * heads + h) * 64 + c][t]. y is [N][heads * 64][T].
//
// Workgroup (X, Y): image n = Y / heads, head h = Y % heads, queries i = X * W + lane (W = workgroup size).
// Each lane keeps its query's q (scaled by 1/8) and 64 output accumulators in registers. The workgroup walks the keys
// KEY_TILE at a time: all lanes copy the tile's K and V (KEY_TILE keys x 64 channels each, zero past `tokens`) into
// shared memory, barrier, then each lane computes the tile's logits and folds them into an online softmax: with
// running maximum m and running sum l, the tile's maximum t gives m' = max(m, t); when m grows, l and the accumulators
// are rescaled by exp(m - m'); then for each key l += e = exp(logit - m') and acc += e * v. At the end
// a = acc / l. Lanes whose query is past `tokens` take part in the loads and barriers but store nothing.
// Only the loop over key tiles is a real loop (ceil(T / KEY_TILE) iterations: 784 for 3136 tokens and KEY_TILE 4);
// the loops over keys in a tile and over the 64 channels are unrolled (lavapipe ends an invocation after 65535 loop
// iterations in all).
// Shared memory: 2 * KEY_TILE * 64 * 4 bytes: 2048 for KEY_TILE 4. The unrolled body grows with KEY_TILE (2 * KEY_TILE
// * 64 multiply-adds), and with it the time a driver takes to compile the pipeline.
// Grid: x = ceil(tokens / W), y = batch * heads (<= 65535).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const uint KEY_TILE = 4;

INPUT(0, qkv)  // R32F, [N][3 * heads * 64][T]
INPUT_SMALL(1, affine)  // R32F, scale[0..heads*64) then shift[0..heads*64)
OUTPUT(2, y)  // [N][heads * 64][T]

layout(push_constant) uniform Push {
    uint batch, heads, tokens;
} p;

const uint D = 64u;

shared float Ks[D * KEY_TILE];  // Ks[c * KEY_TILE + jj] = k[c][j0 + jj]
shared float Vs[D * KEY_TILE];  // Vs[c * KEY_TILE + jj] = v[c][j0 + jj]

void main() {
    const uint lanes = gl_WorkGroupSize.x;
    const uint lane = gl_LocalInvocationID.x;
    const uint T = p.tokens;
    const uint h = gl_WorkGroupID.y % p.heads;
    const uint n = gl_WorkGroupID.y / p.heads;
    const uint i = gl_WorkGroupID.x * lanes + lane;
    const bool query_valid = i < T;
    const int image = int(n * 3u * p.heads * D * T);
    const int q_base = image + int(h * D * T);
    const int k_base = image + int((p.heads + h) * D * T);
    const int v_base = image + int((2u * p.heads + h) * D * T);

    float q[D];
    [[unroll]] for (uint c = 0u; c < D; ++c) {
        q[c] = query_valid ? LOAD1(qkv, q_base + int(c * T + i)) * 0.125 : 0.0;
    }
    float acc[D];
    [[unroll]] for (uint c = 0u; c < D; ++c) acc[c] = 0.0;
    float running_max = -1e30;  // finite, so exp(running_max - m') is 0, never NaN, on the first tile
    float running_sum = 0.0;

    const uint tile_values = D * KEY_TILE;
    const uint loads = (tile_values + lanes - 1u) / lanes;
    for (uint j0 = 0u; j0 < T; j0 += KEY_TILE) {
        // Copy the tile: value v = c * KEY_TILE + jj (consecutive lanes read consecutive keys of one channel).
        [[unroll]] for (uint u = 0u; u < loads; ++u) {
            const uint v = lane + u * lanes;
            if (v < tile_values) {
                const uint c = v / KEY_TILE, j = j0 + v % KEY_TILE;
                const bool inside = j < T;
                const int offset = int(c * T + (inside ? j : 0u));
                const float kv = LOAD1(qkv, k_base + offset);
                const float vv = LOAD1(qkv, v_base + offset);
                Ks[v] = inside ? kv : 0.0;
                Vs[v] = inside ? vv : 0.0;
            }
        }
        barrier();

        const uint count = min(KEY_TILE, T - j0);  // keys of this tile that exist (>= 1)
        float logit[KEY_TILE];
        float tile_max = -1e30;
        [[unroll]] for (uint jj = 0u; jj < KEY_TILE; ++jj) {
            float s = 0.0;
            [[unroll]] for (uint c = 0u; c < D; ++c) s += q[c] * Ks[c * KEY_TILE + jj];
            logit[jj] = s;
            if (jj < count) tile_max = max(tile_max, s);
        }
        if (tile_max > running_max) {
            const float rescale = exp(running_max - tile_max);
            running_sum *= rescale;
            [[unroll]] for (uint c = 0u; c < D; ++c) acc[c] *= rescale;
            running_max = tile_max;
        }
        [[unroll]] for (uint jj = 0u; jj < KEY_TILE; ++jj) {
            const float e = jj < count ? exp(logit[jj] - running_max) : 0.0;
            running_sum += e;
            [[unroll]] for (uint c = 0u; c < D; ++c) acc[c] += e * Vs[c * KEY_TILE + jj];
        }
        barrier();
    }

    if (!query_valid) return;
    const float inverse_sum = 1.0 / running_sum;
    const int out_base = int((n * p.heads + h) * D * T + i);
    const int channels = int(p.heads * D);
    [[unroll]] for (uint c = 0u; c < D; ++c) {
        const int channel = int(h * D + c);
        const float scale = LOAD_SMALL(affine, channel), shift = LOAD_SMALL(affine, channels + channel);
        STORE1(y, out_base + int(c * T), epilogue(acc[c] * inverse_sum, scale, shift, 0.0, false, ACTIVATION));
    }
}
