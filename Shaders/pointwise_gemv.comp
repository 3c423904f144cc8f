#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage fp16

// The linear layer at small batch (a GEMV per image), a faster path of pointwise.comp for pixels == 1, with the same
// bindings, push constants, packed weights and fused epilogue:
//   y[n][m] = epilogue( sum_k w[m][k] * x[n][k] )      for n < batch, m < M, k < K
// with M = out_channels, K = in_channels, and epilogue(v) = act(v * scale[m] + shift[m] (+ residual[n][m])) from
// common.glsl. Sums are float32 on every data path.
//
// Layouts (pixels must be 1):
//   binding 0  x        [batch][K], read one value at a time (LOAD1, index n * K + k);
//   binding 1  w        packed [K][Mpad], Mpad = M rounded up to 8, zero-filled; LOAD4(w, k * m_vec4 + q) is the vec4
//                       of channels 4q .. 4q+3 of row k (m_vec4 = Mpad / 4);
//   binding 2  affine   scale[0..M) then shift[0..M) (LOAD1);
//   binding 3  residual same shape as y, read only when HAS_RESIDUAL (bound to x otherwise);
//   binding 4  y        [batch][M] (STORE1, index n * M + m).
//
// Work split. LANES = the workgroup size (constant 0), GROUPS = LANES / K_SLICES. Workgroup X covers the GROUPS
// channel groups q = X * GROUPS + g (g < GROUPS), that is channels 4q .. 4q+3. Lane = slice * GROUPS + g, so the
// GROUPS lanes of one slice read GROUPS consecutive vec4s of a weight row (coalesced), and all of them read the same
// x values (a broadcast). Each lane sums over k = slice, slice + K_SLICES, slice + 2 * K_SLICES, ... < K, for every
// image at once (one vec4 accumulator per image, MAX_BATCH of them). Lanes of slices 1 .. K_SLICES-1 then write their
// partial sums to shared memory; after a barrier the lanes of slice 0 add them (in slice order), apply the epilogue
// and store, skipping channels m >= M (the zero padding of Mpad, and groups past m_vec4 in the last workgroup) and
// images n >= batch.
//
// Requirements (the host's presets meet them): K_SLICES divides the workgroup size; shared memory
// (LANES - GROUPS) * MAX_BATCH * 16 bytes <= 16384.
//   Presets (64 lanes, MAX_BATCH 4):  K_SLICES 4: 16 groups (64 channels) a workgroup, 3072 bytes of shared memory;
//                                     K_SLICES 8:  8 groups (32 channels) a workgroup, 3584 bytes.
// Grid: x = ceil(m_vec4 / GROUPS) = ceil((Mpad / 4) / (LANES / K_SLICES)); y = ceil(batch / MAX_BATCH): workgroup Y
// takes images Y * MAX_BATCH .. + MAX_BATCH - 1, each summed in the same order whatever the batch; z = 1.
// Only the loop over k is a real loop (at most ceil(K / K_SLICES) / 4 + 3 iterations a lane, K <= 4608 here); every
// loop over images, slices or vector components is unrolled (lavapipe ends an invocation after 65535 loop iterations
// in all).

layout(local_size_x = 64, local_size_x_id = 0) in;  // default 64 lanes (the host specializes it)
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const bool HAS_RESIDUAL = false;
layout(constant_id = 3) const uint K_SLICES = 4;  // must divide the workgroup size
layout(constant_id = 4) const uint MAX_BATCH = 4;  // batch <= MAX_BATCH; sizes the accumulators

const uint LANES = gl_WorkGroupSize.x;
const uint GROUPS = LANES / K_SLICES;  // vec4 channel groups a workgroup

INPUT(0, x)  // [batch][K]
INPUT(1, w)  // packed weights [K][Mpad]
INPUT_SMALL(2, affine)  // scale[0..M) then shift[0..M)
INPUT(3, residual)  // same shape as y (bound to x when unused)
OUTPUT(4, y)  // [batch][M]

layout(push_constant) uniform Push {
    uint batch, in_channels, pixels, out_channels;  // pixels is 1 for this kernel
    uint m_vec4;  // Mpad / 4: vec4s per k-row of packed weights
} p;

// partials[((slice - 1) * MAX_BATCH + n) * GROUPS + g]: the sums of lane (slice, g) for image n, slices 1 .. K_SLICES-1.
shared vec4 partials[K_SLICES > 1u ? (LANES - GROUPS) * MAX_BATCH : 1u];  // (one unused entry when K_SLICES = 1)

void main() {
    const uint lane = gl_LocalInvocationID.x;
    const uint slice = lane / GROUPS, g = lane % GROUPS;
    const uint q = gl_WorkGroupID.x * GROUPS + g;  // this lane's channel group: channels 4q .. 4q+3
    const bool in_range = q < p.m_vec4;  // lanes past the last group still take part in the barrier
    const uint K = p.in_channels, M = p.out_channels;
    const uint n0 = gl_WorkGroupID.y * MAX_BATCH;  // this workgroup's first image
    const uint batch = min(p.batch - n0, MAX_BATCH);

    vec4 acc[MAX_BATCH];
    [[unroll]] for (uint n = 0u; n < MAX_BATCH; ++n) acc[n] = vec4(0.0);

    if (in_range) {
        const uint w_row = p.m_vec4;
        uint k = slice;
        // Four k values per iteration (loads first, then the multiply-adds), then the remainder one at a time.
        for (; k + 3u * K_SLICES < K; k += 4u * K_SLICES) {
            vec4 wv[4];
            [[unroll]] for (uint u = 0u; u < 4u; ++u) wv[u] = LOAD4(w, (k + u * K_SLICES) * w_row + q);
            [[unroll]] for (uint n = 0u; n < MAX_BATCH; ++n) {
                if (n < batch) {
                    [[unroll]] for (uint u = 0u; u < 4u; ++u) acc[n] += LOAD1(x, (n0 + n) * K + k + u * K_SLICES) * wv[u];
                }
            }
        }
        for (; k < K; k += K_SLICES) {
            const vec4 wv = LOAD4(w, k * w_row + q);
            [[unroll]] for (uint n = 0u; n < MAX_BATCH; ++n) {
                if (n < batch) acc[n] += LOAD1(x, (n0 + n) * K + k) * wv;
            }
        }
    }

    // Reduce the K_SLICES partial sums through shared memory.
    if (slice > 0u) {
        [[unroll]] for (uint n = 0u; n < MAX_BATCH; ++n) partials[((slice - 1u) * MAX_BATCH + n) * GROUPS + g] = acc[n];
    }
    barrier();
    if (slice > 0u || !in_range) return;
    [[unroll]] for (uint s = 1u; s < K_SLICES; ++s) {
        [[unroll]] for (uint n = 0u; n < MAX_BATCH; ++n) acc[n] += partials[((s - 1u) * MAX_BATCH + n) * GROUPS + g];
    }

    // Epilogue and store: channels 4q .. 4q+3 below M, images below batch.
    [[unroll]] for (uint i = 0u; i < 4u; ++i) {
        const uint m = q * 4u + i;
        if (m < M) {
            const float scale = LOAD_SMALL(affine, m);
            const float shift = LOAD_SMALL(affine, M + m);
            [[unroll]] for (uint n = 0u; n < MAX_BATCH; ++n) {
                if (n < batch) {
                    const uint o = (n0 + n) * M + m;
                    const float res = HAS_RESIDUAL ? LOAD1(residual, o) : 0.0;
                    STORE1(y, o, epilogue(acc[n][i], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
                }
            }
        }
    }
}
