#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage

// Winograd F(2x2, 3x3), step 3 of 3 (Sources/Kernels/Winograd.swift): the output transform and the fused epilogue.
// The 16 products of a tile, P[xi] = sum_c U[xi][m][c] V[xi][c][col] (step 2, the pointwise kernel's PRODUCTS
// GEMMs), become its 2x2 outputs Y = A^T P A, where
//   A^T = | 1  1  1  0 |
//         | 0  1 -1 -1 |
// then y = epilogue(Y) for the outputs inside the image. One invocation per (output channel, column), columns
// fastest.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const bool HAS_RESIDUAL = false;

IMAGE_INPUT(0, products, r32f)  // [16][M][padded_columns]
INPUT_SMALL(1, affine)  // R32F, scale[0..M) then shift[0..M)
INPUT(2, residual)  // R32F, same shape as y (bound to products when unused)
OUTPUT(3, y)

layout(push_constant) uniform Push {
    uint out_channels, out_height, out_width;
    uint tiles_x, tiles;  // tiles per row and per image
    uint columns, padded_columns;  // batch * tiles, and that rounded up to 4
} p;

void main() {
    const uint item = flat_invocation();
    if (item >= p.out_channels * p.columns) return;
    const uint m = item / p.columns, col = item % p.columns;

    const uint plane_size = p.out_channels * p.padded_columns;
    const uint at = m * p.padded_columns + col;
    float q[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; ++i) {
        [[unroll]] for (uint j = 0u; j < 4u; ++j) q[i][j] = LOAD_IMAGE1(products, (4u * i + j) * plane_size + at);
    }
    // A^T P (rows), then (A^T P) A (columns).
    float t[2][4];
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        t[0][j] = q[0][j] + q[1][j] + q[2][j];
        t[1][j] = q[1][j] - q[2][j] - q[3][j];
    }
    const float scale = LOAD_SMALL(affine, int(m));
    const float shift = LOAD_SMALL(affine, int(p.out_channels + m));
    const uint n = col / p.tiles, tile = col % p.tiles;
    const uint oy0 = tile / p.tiles_x * 2u, ox0 = tile % p.tiles_x * 2u;
    const uint plane = (n * p.out_channels + m) * p.out_height * p.out_width;
    [[unroll]] for (uint i = 0u; i < 2u; ++i) {
        const uint oy = oy0 + i;
        if (oy >= p.out_height) break;
        const float row[2] = float[2](t[i][0] + t[i][1] + t[i][2], t[i][1] - t[i][2] - t[i][3]);
        [[unroll]] for (uint j = 0u; j < 2u; ++j) {
            const uint ox = ox0 + j;
            if (ox >= p.out_width) break;
            const uint o = plane + oy * p.out_width + ox;
            const float res = HAS_RESIDUAL ? LOAD1(residual, int(o)) : 0.0;
            STORE1(y, o, epilogue(row[j], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
        }
    }
}
