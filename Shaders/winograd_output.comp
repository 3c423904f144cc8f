#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage

// Winograd F(2x2, 3x3) or, in winograd_output_f4, F(4x4, 3x3); step 3 of 3 (Sources/Kernels/Winograd.swift): the
// output transform and the fused epilogue. The PATCH^2 products of a tile, P[xi] = sum_c U[xi][m][c] V[xi][c][col]
// (step 2, the pointwise kernel's PRODUCTS GEMMs), become its TILE x TILE outputs Y = A^T P A, where for F(2x2, 3x3)
//   A^T = | 1  1  1  0 |
//         | 0  1 -1 -1 |
// and for F(4x4, 3x3)
//   A^T = | 1  1  1  1  1  0 |
//         | 0  1 -1  2 -2  0 |
//         | 0  1  1  4  4  0 |
//         | 0  1 -1  8 -8  1 |
// then y = epilogue(Y) for the outputs inside the image. One invocation per (output channel, column), columns
// fastest.

// @variant f4 TILE4

#if defined(TILE4)
#define TILE 4u
#define PATCH 6u
// A^T b for one row or column b of the products.
void transform(const float b[PATCH], out float t[TILE]) {
    const float sum12 = b[1] + b[2], diff12 = b[1] - b[2], sum34 = b[3] + b[4], diff34 = b[3] - b[4];
    t[0] = b[0] + sum12 + sum34;
    t[1] = diff12 + 2.0 * diff34;
    t[2] = sum12 + 4.0 * sum34;
    t[3] = diff12 + 8.0 * diff34 + b[5];
}
#else
#define TILE 2u
#define PATCH 4u
void transform(const float b[PATCH], out float t[TILE]) {
    t[0] = b[0] + b[1] + b[2];
    t[1] = b[1] - b[2] - b[3];
}
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const bool HAS_RESIDUAL = false;

IMAGE_INPUT(0, products, r32f)  // [PATCH^2][M][padded_columns]
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
    // A^T P (each column of P), then (A^T P) A (each row of that).
    float t[TILE][PATCH];
    [[unroll]] for (uint j = 0u; j < PATCH; ++j) {
        float column[PATCH], out_column[TILE];
        [[unroll]] for (uint i = 0u; i < PATCH; ++i) column[i] = LOAD_IMAGE1(products, (PATCH * i + j) * plane_size + at);
        transform(column, out_column);
        [[unroll]] for (uint i = 0u; i < TILE; ++i) t[i][j] = out_column[i];
    }
    const float scale = LOAD_SMALL(affine, int(m));
    const float shift = LOAD_SMALL(affine, int(p.out_channels + m));
    const uint n = col / p.tiles, tile = col % p.tiles;
    const uint oy0 = tile / p.tiles_x * TILE, ox0 = tile % p.tiles_x * TILE;
    const uint plane = (n * p.out_channels + m) * p.out_height * p.out_width;
    [[unroll]] for (uint i = 0u; i < TILE; ++i) {
        const uint oy = oy0 + i;
        if (oy >= p.out_height) break;
        float row[TILE];
        transform(t[i], row);
        [[unroll]] for (uint j = 0u; j < TILE; ++j) {
            const uint ox = ox0 + j;
            if (ox >= p.out_width) break;
            const uint o = plane + oy * p.out_width + ox;
            const float res = HAS_RESIDUAL ? LOAD1(residual, int(o)) : 0.0;
            STORE1(y, o, epilogue(row[j], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
        }
    }
}
