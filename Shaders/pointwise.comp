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

// Pointwise (1x1, stride 1) convolution, and the linear layer (a 1x1 convolution over 1x1 images), as a GEMM with
// the fused epilogue:
//   y[n][m][p] = epilogue( sum_c w[m][c] * x[n][c][p] )      for p < pixels (= H * W, 1 for linear)
// Columns are the batch's pixels, n * pixels + p. Each invocation computes a ROWS (channels) x 4 (columns) register
// tile; a workgroup's invocations share their channels (weight fetches uniform) and cover consecutive columns.
// With VEC4_INPUT (only when pixels % 4 == 0, so four columns never straddle two images) x is an RGBA32F view and
// one fetch brings the four columns; otherwise x is R32F and each column is fetched alone.
// Weights come packed in blocks of WEIGHT_BLOCK channels (common.glsl); Mpad = M rounded up to a whole block.
// pointwise_shuffle (SHUFFLE_WEIGHTS; subgroups of at least 8 with shuffles) fetches the weights across lanes and
// shares them by subgroupShuffle (ACCUMULATE_SHUFFLED in common.glsl).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool VEC4_INPUT = false;
layout(constant_id = 2) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 3) const bool HAS_RESIDUAL = false;
// Output channels per invocation: 8, 16 where M is a multiple of 16 (each input fetch then feeds twice the
// multiply-adds), 32 where M is a multiple of 32 in pointwise_shuffle (RegisterTiles in Epilogue.swift).
layout(constant_id = 4) const uint ROWS = 8;
// The Winograd products (Sources/Kernels/Winograd.swift): workgroup z runs GEMM z of a stack (its own weights, input
// and output, one after another in their buffers, batch 1) and stores the sums as they are, without the epilogue.
layout(constant_id = 5) const bool PRODUCTS = false;


INPUT(0, x)  // NCHW input, RGBA32F or R32F (see VEC4_INPUT)
WEIGHTS(1, w)  // RGBA32F, packed weights
INPUT_SMALL(2, affine)  // R32F, scale[0..M) then shift[0..M)
INPUT(3, residual)  // same shape as y, RGBA32F with VEC4_INPUT, else R32F (bound to x when unused)
OUTPUT(4, y)

layout(push_constant) uniform Push {
    uint batch, in_channels, pixels, out_channels;
    uint m_vec4;  // Mpad / 4: a PRODUCTS stack's GEMMs are K * m_vec4 vec4s of weights apart
} p;

// Where channel 0 of the tile's four columns is: with VEC4_INPUT one texel (first; a channel is step texels on),
// else four values (base[j]; a channel is step values on).
int first, step, base[4];

// The tile's four columns of input channel c.
vec4 fetch_columns(uint c) {
    if (VEC4_INPUT) return LOAD4(x, first + int(c) * step);
    const int offset = int(c) * step;
    return vec4(LOAD1(x, base[0] + offset), LOAD1(x, base[1] + offset), LOAD1(x, base[2] + offset),
                LOAD1(x, base[3] + offset));
}

void main() {
    const uint columns = p.batch * p.pixels;
    const uint col0 = (gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * 4u;
    // A lane past the end computes the last tile again and stores nothing (in the _shuffle kernels every lane takes
    // part in the shuffles).
    const uint tile0 = min(col0, (columns - 1u) / 4u * 4u);
    const uint m0 = gl_WorkGroupID.x * ROWS;
    // GEMM z of a PRODUCTS stack starts z matrices on in each buffer.
    const uint z = PRODUCTS ? gl_WorkGroupID.z : 0u;
    const int w_row = int(WEIGHT_BLOCK / 4u), w_column = int(z * p.in_channels * p.m_vec4) + WEIGHT_INDEX(0u, m0, p.in_channels);

    if (VEC4_INPUT) {
        // Four columns of one image: x[n][c][p0 .. p0+3] is texel ((n * C + c) * pixels + p0) / 4.
        const uint n = tile0 / p.pixels, p0 = tile0 % p.pixels;
        first = int(((z + n) * p.in_channels * p.pixels + p0) / 4u);
        step = int(p.pixels / 4u);
    } else {
        for (uint j = 0u; j < 4u; ++j) {
            const uint col = min(tile0 + j, columns - 1u);
            base[j] = int((z + col / p.pixels) * p.in_channels * p.pixels + col % p.pixels);
        }
        step = int(p.pixels);
    }

    vec4 acc[ROWS];
    [[unroll]] for (uint i = 0u; i < ROWS; ++i) acc[i] = vec4(0.0);

    // Four channels a step (eight with shared weights): fewer, longer iterations keep more of the time in the
    // multiply-adds where a compiler blends every value carried around a loop once per iteration (BENCHMARKS.md).
    uint c = 0u;
#if defined(SHUFFLE_WEIGHTS)
    // Lane l (of the first 8) fetches vec4 l % G of channel c + l / G: G vec4s a channel, 8 / G channels a fetch.
    const uint G = ROWS / 4u, PER_FETCH = 8u / G, STEP = 8u;
    const uint lane = gl_SubgroupInvocationID & 7u;
    const int w_lane = int(lane / G) * w_row + w_column + int(lane % G);
    for (; c + STEP <= p.in_channels; c += STEP) {
        // All fetches first, then the arithmetic: on lavapipe a texelFetch is a call, and a call between
        // multiply-adds makes the compiler save and restore the accumulators around it.
        vec4 xv[STEP], wv[STEP];
        [[unroll]] for (uint u = 0u; u < STEP; ++u) xv[u] = fetch_columns(c + u);
        [[unroll]] for (uint u = 0u; u < STEP; u += PER_FETCH) wv[u] = LOAD_WEIGHTS4(w, int(c + u) * w_row + w_lane);
        [[unroll]] for (uint u = 0u; u < STEP; ++u) {
            ACCUMULATE_SHUFFLED(wv[u - u % PER_FETCH], (u % PER_FETCH) * G, xv[u])
        }
    }
#else
    for (; c + 4u <= p.in_channels; c += 4u) {
        vec4 xv[4];
        [[unroll]] for (uint u = 0u; u < 4u; ++u) xv[u] = fetch_columns(c + u);
        [[unroll]] for (uint u = 0u; u < 4u; ++u) ACCUMULATE_ROWS(w, int(c + u) * w_row + w_column, xv[u])
    }
#endif
    for (; c < p.in_channels; ++c) {
        const vec4 xv = fetch_columns(c);
        ACCUMULATE_ROWS(w, int(c) * w_row + w_column, xv)
    }

    if (col0 >= columns) return;
    // Where each column of the tile goes in output channel 0 (channel m is m * pixels on); columns past the end repeat
    // the last one and are not stored.
    uint out0[4];
    for (uint j = 0u; j < 4u; ++j) {
        const uint col = min(col0 + j, columns - 1u);
        out0[j] = (z + col / p.pixels) * p.out_channels * p.pixels + col % p.pixels;
    }
    for (uint i = 0u; i < ROWS; ++i) {
        const uint m = m0 + i;
        if (m >= p.out_channels) break;
        const float scale = PRODUCTS ? 1.0 : LOAD_SMALL(affine, int(m));
        const float shift = PRODUCTS ? 0.0 : LOAD_SMALL(affine, int(p.out_channels + m));
        // (The products are stored through this same code: a separate store loop for them, with a `continue` past the
        // epilogue, made lavapipe run the whole kernel ten times slower.)
        if (VEC4_INPUT) {
            // Four consecutive pixels of one image, at a multiple of 4: one vec4 (the residual too, RGBA32F).
            const uint o4 = (out0[0] + m * p.pixels) / 4u;
            const vec4 res = HAS_RESIDUAL ? LOAD4(residual, int(o4)) : vec4(0.0);
            STORE4(y, o4, PRODUCTS ? acc[i] : epilogue(acc[i], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
        } else {
            for (uint j = 0u; j < 4u; ++j) {
                if (col0 + j >= columns) break;
                const uint o = out0[j] + m * p.pixels;
                const float res = HAS_RESIDUAL ? LOAD1(residual, int(o)) : 0.0;
                STORE1(y, o, PRODUCTS ? acc[i][j] : epilogue(acc[i][j], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
            }
        }
    }
}
