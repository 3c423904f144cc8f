#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(FP16_ARITHMETIC)
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#include "common.glsl"

// @datapaths storage fp16
// (No texel-buffer build: no family runs this kernel on the texel path.)

// @variant splitk SPLIT_K
// @variant fp16math FP16_ARITHMETIC
// @variant fp16math_splitk FP16_ARITHMETIC SPLIT_K

// Dense convolution (groups = 1), k x k, stride s, zero padding, with the fused epilogue, as a shared-memory tiled
// implicit GEMM (the pointwise 1x1 case is KSIZE = 1, STRIDE = 1, padding 0):
//   y[n][m][oy][ox] = epilogue( sum_{c,ky,kx} w[m][c][ky][kx] * x[n][c][oy*s - pad + ky][ox*s - pad + kx] )
// GEMM view: rows m < M = out_channels; columns col = n * OH*OW + oy * OW + ox < batch * OH*OW;
//            k = (c * KSIZE + ky) * KSIZE + kx < K = in_channels * KSIZE * KSIZE.
// Workgroup (X, Y, Z) computes rows [Y*BM, +BM) x columns [X*BN, +BN) over k in [Z*k_split, min(K, (Z+1)*k_split)).
// For each BK-slice of k its lanes copy A (weights, BK x BM, one vec4 = four channels a fetch) and B (the im2col
// gather of x, BK x BN, zero outside the image) into shared memory; after a barrier each lane accumulates its TM x TN
// micro-tile from shared memory: rows Y*BM + row*TM + i (i < TM), columns X*BN + col + j*(BN/TN) (j < TN), where
// row = lane / (BN/TN) and col = lane % (BN/TN) (consecutive lanes: consecutive columns, so stores coalesce).
// Then, per (m, col) inside the output, the epilogue of common.glsl: act(acc * scale[m] + shift[m] (+ residual)).
//
// Variants:
//   splitk   (SPLIT_K): binding 4 is float32 `partial`, [splits][M][columns]; partial[(Z*M + m)*columns + col] = the
//            raw sum over this workgroup's k range, no epilogue (conv2d_splitk_reduce sums the splits and applies it).
//            Bindings 2 and 3 are still declared (the host binds something there) but not read.
//   fp16math (FP16_ARITHMETIC): the shared tiles hold float16_t and the products of one BK-slice are summed in
//            float16_t, then added into the float32 accumulators after each slice (so the f16 rounding error is bounded
//            by BK terms); the epilogue stays float32. Needs shaderFloat16.
//
// Layouts: x NCHW (R32F, LOAD1); w packed [K][Mpad] with Mpad = M rounded up to 8, zero-filled, read as the vec4 of
// channels 4q .. 4q+3 at k * m_vec4 + q (RGBA32F, LOAD4); affine = scale[0..M) then shift[0..M) (R32F); residual has
// y's shape (R32F, read only when HAS_RESIDUAL); y NCHW [batch][M][OH][OW].
//
// Requirements on the specialization constants (the host's presets meet them):
//   workgroup size (constant 0) = (BM / TM) * (BN / TN);  TM divides BM; TN divides BN; 4 divides BM;
//   BN divides the workgroup size, and the workgroup size divides BK * BN (each lane gathers one column of B);
//   shared memory (BM + BN) * BK * 4 bytes (* 2 with fp16math) <= 16384.
//   Presets:  small  BM 32 BN 32 BK 16 TM 4 TN 4 (64 lanes):  4096 bytes (fp16math 2048)
//             medium BM 64 BN 64 BK 16 TM 8 TN 4 (128 lanes): 8192 bytes (fp16math 4096)
//             large  BM 128 BN 64 BK 16 TM 8 TN 8 (128 lanes): 12288 bytes (fp16math 6144)
// Grid: x = ceil(columns / BN), y = ceil(M / BM), z = number of k-splits (1 unless split-K).
// Only the loop over k-slices is a real loop; every loop over a tile dimension is unrolled (lavapipe ends an
// invocation after 65535 loop iterations in all).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3;
layout(constant_id = 2) const uint STRIDE = 1;
layout(constant_id = 3) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 4) const bool HAS_RESIDUAL = false;
layout(constant_id = 5) const uint BM = 32;
layout(constant_id = 6) const uint BN = 32;
layout(constant_id = 7) const uint BK = 16;
layout(constant_id = 8) const uint TM = 4;
layout(constant_id = 9) const uint TN = 4;

const uint LANES = (BM / TM) * (BN / TN);  // = the workgroup size
const uint LANE_COLUMNS = BN / TN;  // lanes across a tile's columns
const uint A_VECTORS = BK * BM / 4u;  // vec4s of weights per slice
const uint A_LOADS = (A_VECTORS + LANES - 1u) / LANES;  // per lane
const uint B_ROWS_PER_PASS = LANES / BN;  // k-rows of B gathered by the workgroup in one pass
const uint B_LOADS = BK / B_ROWS_PER_PASS;  // per lane

INPUT(0, x)  // R32F, NCHW input
INPUT(1, w)  // RGBA32F, packed weights [K][Mpad]
INPUT_SMALL(2, affine)  // R32F, scale[0..M) then shift[0..M)
INPUT(3, residual)  // R32F, same shape as y (bound to x when unused)
#if defined(SPLIT_K)
OUTPUT_F32(4, partial)  // [splits][M][columns] raw sums
#else
OUTPUT(4, y)  // NCHW output
#endif

layout(push_constant) uniform Push {
    uint batch, in_channels, in_height, in_width;
    uint out_channels, out_height, out_width, padding;
    uint m_vec4;  // Mpad / 4: vec4s per k-row of packed weights
    uint k_split;  // k values per z-slice of the grid (= K when not split)
} p;

#if defined(FP16_ARITHMETIC)
#define TILE float16_t
#else
#define TILE float
#endif
shared TILE As[BK * BM];  // As[kk * BM + mm] = w[m0 + mm][k0 + kk]
shared TILE Bs[BK * BN];  // Bs[kk * BN + nn] = im2col(x)[k0 + kk][col0 + nn]

void main() {
    const uint lane = gl_LocalInvocationID.x;
    const uint M = p.out_channels;
    const uint out_pixels = p.out_height * p.out_width;
    const uint columns = p.batch * out_pixels;
    const uint in_pixels = p.in_height * p.in_width;
    const uint K = p.in_channels * KSIZE * KSIZE;
    const uint m0 = gl_WorkGroupID.y * BM;
    const uint col0 = gl_WorkGroupID.x * BN;
    const uint k_begin = gl_WorkGroupID.z * p.k_split;
    const uint k_end = min(K, k_begin + p.k_split);

    // The column of B this lane gathers (the same for every slice): where its window starts in x.
    const uint b_col = lane % BN;
    const uint b_row = lane / BN;
    const uint gather_col = col0 + b_col;
    const bool gather_valid = gather_col < columns;
    int gather_base, gather_iy0, gather_ix0;
    {
        const uint c = min(gather_col, columns - 1u);
        const uint n = c / out_pixels, r = c % out_pixels;
        gather_base = int(n * p.in_channels * in_pixels);
        gather_iy0 = int(r / p.out_width * STRIDE) - int(p.padding);
        gather_ix0 = int(r % p.out_width * STRIDE) - int(p.padding);
    }

    const uint row = lane / LANE_COLUMNS, col = lane % LANE_COLUMNS;
    float acc[TM * TN];
    [[unroll]] for (uint t = 0u; t < TM * TN; ++t) acc[t] = 0.0;

    for (uint k0 = k_begin; k0 < k_end; k0 += BK) {
        // A: BK x BM weights, four channels a fetch; zero past K / this split (channels past M are zero in w).
        [[unroll]] for (uint i = 0u; i < A_LOADS; ++i) {
            const uint v = lane + i * LANES;
            if (A_VECTORS % LANES == 0u || v < A_VECTORS) {
                const uint kk = v / (BM / 4u), mm = (v % (BM / 4u)) * 4u;
                const uint k = k0 + kk, q = (m0 + mm) / 4u;
                const bool inside = k < k_end && q < p.m_vec4;
                const vec4 value = LOAD4(w, inside ? int(k * p.m_vec4 + q) : 0);
                const vec4 a = inside ? value : vec4(0.0);
                As[kk * BM + mm] = TILE(a.x);
                As[kk * BM + mm + 1u] = TILE(a.y);
                As[kk * BM + mm + 2u] = TILE(a.z);
                As[kk * BM + mm + 3u] = TILE(a.w);
            }
        }
        // B: BK x BN of im2col(x); zero outside the image, past K / this split, and past the last column.
        [[unroll]] for (uint i = 0u; i < B_LOADS; ++i) {
            const uint kk = b_row + i * B_ROWS_PER_PASS;
            const uint k = k0 + kk;
            const uint c = k / (KSIZE * KSIZE), window = k % (KSIZE * KSIZE);
            const int iy = gather_iy0 + int(window / KSIZE), ix = gather_ix0 + int(window % KSIZE);
            const bool inside = gather_valid && k < k_end
                && iy >= 0 && iy < int(p.in_height) && ix >= 0 && ix < int(p.in_width);
            const float value = LOAD1(x, inside ? gather_base + int(c * in_pixels) + iy * int(p.in_width) + ix : 0);
            Bs[kk * BN + b_col] = TILE(inside ? value : 0.0);
        }
        barrier();

#if defined(FP16_ARITHMETIC)
        float16_t slice[TM * TN];  // this slice's products, summed in f16 (at most BK terms)
        [[unroll]] for (uint t = 0u; t < TM * TN; ++t) slice[t] = float16_t(0.0);
#define SLICE_SUM slice
#else
#define SLICE_SUM acc
#endif
        [[unroll]] for (uint kk = 0u; kk < BK; ++kk) {
            TILE a[TM], b[TN];
            [[unroll]] for (uint i = 0u; i < TM; ++i) a[i] = As[kk * BM + row * TM + i];
            [[unroll]] for (uint j = 0u; j < TN; ++j) b[j] = Bs[kk * BN + col + j * LANE_COLUMNS];
            [[unroll]] for (uint i = 0u; i < TM; ++i) {
                [[unroll]] for (uint j = 0u; j < TN; ++j) SLICE_SUM[i * TN + j] += a[i] * b[j];
            }
        }
#if defined(FP16_ARITHMETIC)
        [[unroll]] for (uint t = 0u; t < TM * TN; ++t) acc[t] += float(slice[t]);
#endif
#undef SLICE_SUM
        barrier();
    }

    // Store: per valid (m, col).
    uint out_offset[TN];  // where column j of the micro-tile goes, less the row's part; ~0u past the last column
    [[unroll]] for (uint j = 0u; j < TN; ++j) {
        const uint c = col0 + col + j * LANE_COLUMNS;
#if defined(SPLIT_K)
        out_offset[j] = c < columns ? c : ~0u;  // + (Z * M + m) * columns
#else
        out_offset[j] = c < columns ? (c / out_pixels) * M * out_pixels + c % out_pixels : ~0u;  // + m * out_pixels
#endif
    }
    [[unroll]] for (uint i = 0u; i < TM; ++i) {
        const uint m = m0 + row * TM + i;
        if (m < M) {
#if defined(SPLIT_K)
            const uint row_offset = (gl_WorkGroupID.z * M + m) * columns;
            [[unroll]] for (uint j = 0u; j < TN; ++j) {
                if (out_offset[j] != ~0u) STORE1_F32(partial, row_offset + out_offset[j], acc[i * TN + j]);
            }
#else
            const float scale = LOAD_SMALL(affine, int(m));
            const float shift = LOAD_SMALL(affine, int(M + m));
            [[unroll]] for (uint j = 0u; j < TN; ++j) {
                if (out_offset[j] != ~0u) {
                    const uint o = out_offset[j] + m * out_pixels;
                    const float res = HAS_RESIDUAL ? LOAD1(residual, int(o)) : 0.0;
                    STORE1(y, o, epilogue(acc[i * TN + j], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
                }
            }
#endif
        }
    }
}
