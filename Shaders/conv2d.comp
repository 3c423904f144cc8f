#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(SHUFFLE_WEIGHTS)
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"

// @datapaths texel storage
// @variant shuffle SHUFFLE_WEIGHTS
// (No fp16 build: the 16-bit families run the tiled kernels instead.)

// Dense convolution (groups = 1), k x k, stride s, zero padding, with the fused epilogue:
//   y[n][m][oy][ox] = epilogue( sum_{c,ky,kx} w[m][c][ky][kx] * x[n][c][oy*s - pad + ky][ox*s - pad + kx] )
// as an implicit GEMM: M = output channels, columns = batch * OH * OW output pixels, K = C * k * k.
// Each invocation computes a ROWS (channels: 8 or 16) x 4 (columns) register tile; a workgroup's invocations share
// their channels (so weight fetches are uniform) and cover consecutive columns.
// Weights come packed in blocks of WEIGHT_BLOCK channels (common.glsl), zero-filled: one fetch, four channels.
// Loops over the window and the tile are unrolled (lavapipe ends an invocation after 65535 loop iterations in all).
// conv2d_shuffle (SHUFFLE_WEIGHTS; subgroups of at least 8 with shuffles) fetches the weights across lanes and shares
// them by subgroupShuffle (ACCUMULATE_SHUFFLED in common.glsl).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3;
layout(constant_id = 2) const uint STRIDE = 1;
layout(constant_id = 3) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 4) const bool HAS_RESIDUAL = false;
// Output channels per invocation: 8, or 16 where M is a multiple of 16 (each gathered input feeds twice the
// multiply-adds).
layout(constant_id = 5) const uint ROWS = 8;
// Where the output's width is a multiple of 4 a tile's four columns are neighbours in one output row, and the window
// rows they read overlap: each (channel, ky) fetches the SPAN inputs under all four once (13 for the 7x7 stride-2
// stem, against 28 fetched per column and kx), with one test of the row for all.
layout(constant_id = 6) const bool ROW_TILE = false;
const uint SPAN = 3u * STRIDE + KSIZE;

IMAGE_INPUT(0, x, r32f)  // R32F, NCHW input
WEIGHTS(1, w)  // RGBA32F, packed weights
INPUT_SMALL(2, affine)  // R32F, scale[0..M) then shift[0..M)
INPUT(3, residual)  // R32F, same shape as y (bound to x when unused)
OUTPUT(4, y)

layout(push_constant) uniform Push {
    uint batch, in_channels, in_height, in_width;
    uint out_channels, out_height, out_width, padding;
} p;

void main() {
    const uint out_pixels = p.out_height * p.out_width;
    const uint columns = p.batch * out_pixels;
    const uint col0 = (gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * 4u;
    // A lane past the end computes the last tile again and stores nothing (in the _shuffle kernels every lane takes
    // part in the shuffles).
    const uint tile0 = min(col0, (columns - 1u) / 4u * 4u);
    const uint m0 = gl_WorkGroupID.x * ROWS;
    const uint in_pixels = p.in_height * p.in_width;
    const int pad = int(p.padding);

    // Where each of the 4 columns reads from (columns past the end repeat the last one; they are not stored).
    int base[4], iy0[4], ix0[4];
    for (uint j = 0u; j < 4u; ++j) {
        const uint c = min(tile0 + j, columns - 1u);
        const uint n = c / out_pixels, r = c % out_pixels;
        base[j] = int(n * p.in_channels * in_pixels);
        iy0[j] = int(r / p.out_width * STRIDE) - pad;
        ix0[j] = int(r % p.out_width * STRIDE) - pad;
    }

    vec4 acc[ROWS];
    [[unroll]] for (uint i = 0u; i < ROWS; ++i) acc[i] = vec4(0.0);
    // The tile's weights: reduction step k's vec4 q is at w_column + k * W_ROW + q (blocked; see common.glsl).
    const uint W_ROW = WEIGHT_BLOCK / 4u;
    const int w_column = WEIGHT_INDEX(0u, m0, p.in_channels * KSIZE * KSIZE);
#if defined(SHUFFLE_WEIGHTS)
    // Lane l (of the first 8) fetches vec4 l % G of reduction step k + l / G: G vec4s a step, 8 / G steps a fetch
    // (a fetch may run into the next channel's steps; the last channel's is clamped to the last step).
    const uint G = ROWS / 4u, PER_FETCH = 8u / G;
    const uint lane = gl_SubgroupInvocationID & 7u;
    const uint last_k = p.in_channels * KSIZE * KSIZE - 1u;
    vec4 wv;
#endif
    for (uint c = 0u; c < p.in_channels; ++c) {
        const int channel = int(c * in_pixels);
        [[unroll]] for (uint ky = 0u; ky < KSIZE; ++ky) {
            float span[SPAN];
            if (ROW_TILE) {
                const int iy = iy0[0] + int(ky);
                const bool row_inside = iy >= 0 && iy < int(p.in_height);
                const int row = base[0] + channel + iy * int(p.in_width);
                [[unroll]] for (uint q = 0u; q < SPAN; ++q) {
                    const int ix = ix0[0] + int(q);
                    const bool inside = row_inside && ix >= 0 && ix < int(p.in_width);
                    const float v = LOAD_IMAGE1(x, inside ? row + ix : 0);
                    span[q] = inside ? v : 0.0;
                }
            }
            [[unroll]] for (uint kx = 0u; kx < KSIZE; ++kx) {
                vec4 xv;
                if (ROW_TILE) {
                    xv = vec4(span[kx], span[STRIDE + kx], span[2u * STRIDE + kx], span[3u * STRIDE + kx]);
                } else {
                    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
                        const int iy = iy0[j] + int(ky), ix = ix0[j] + int(kx);
                        const bool inside = iy >= 0 && iy < int(p.in_height) && ix >= 0 && ix < int(p.in_width);
                        const float v = LOAD_IMAGE1(x, inside ? base[j] + channel + iy * int(p.in_width) + ix : 0);
                        xv[j] = inside ? v : 0.0;
                    }
                }
                const uint t = ky * KSIZE + kx;
#if defined(SHUFFLE_WEIGHTS)
                if (t % PER_FETCH == 0u) {
                    const uint k = min(c * KSIZE * KSIZE + t + lane / G, last_k);
                    wv = LOAD_WEIGHTS4(w, int(k * W_ROW + lane % G) + w_column);
                }
                ACCUMULATE_SHUFFLED(wv, (t % PER_FETCH) * G, xv)
#else
                const int k = int(c * KSIZE * KSIZE + t);
                ACCUMULATE_ROWS(w, k * int(W_ROW) + w_column, xv)
#endif
            }
        }
    }

    if (col0 >= columns) return;
    for (uint i = 0u; i < ROWS; ++i) {
        const uint m = m0 + i;
        if (m >= p.out_channels) break;
        const float scale = LOAD_SMALL(affine, int(m));
        const float shift = LOAD_SMALL(affine, int(p.out_channels + m));
        for (uint j = 0u; j < 4u; ++j) {
            const uint c = col0 + j;
            if (c >= columns) break;
            const uint n = c / out_pixels, r = c % out_pixels;
            const uint o = (n * p.out_channels + m) * out_pixels + r;
            const float res = HAS_RESIDUAL ? LOAD1(residual, int(o)) : 0.0;
            STORE1(y, o, epilogue(acc[i][j], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
        }
    }
}
