#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage

// Winograd F(2x2, 3x3) or, in winograd_input_f4, F(4x4, 3x3); step 1 of 3 (Sources/Kernels/Winograd.swift): the
// input transform of a 3x3, stride-1 convolution. The output is cut into TILE x TILE tiles; tile (ty, tx) of image n
// reads the PATCH x PATCH input patch d (PATCH = TILE + 2) whose corner is (TILE ty - pad, TILE tx - pad) (zeros
// outside the image) and becomes V = B^T d B, PATCH^2 values, where for F(2x2, 3x3)
//   B^T = | 1  0 -1  0 |
//         | 0  1  1  0 |
//         | 0 -1  1  0 |
//         | 0  1  0 -1 |
// and for F(4x4, 3x3)
//   B^T = | 4  0 -5  0  1  0 |
//         | 0 -4 -4  1  1  0 |
//         | 0  4 -4 -1  1  0 |
//         | 0 -2 -1  2  1  0 |
//         | 0  2 -1 -2  1  0 |
//         | 0  4  0 -5  0  1 |
// Written as v[xi][c][col] (xi = PATCH row + column of V, col = n * tiles + tile, columns padded to a multiple of 4
// with zeros), the PATCH^2 matrices the products' GEMMs read. One invocation per (channel, column), columns fastest.

// @variant f4 TILE4

#if defined(TILE4)
#define TILE 4u
#define PATCH 6u
// B^T b for one row or column b of the patch.
void transform(const float b[PATCH], out float t[PATCH]) {
    t[0] = 4.0 * b[0] - 5.0 * b[2] + b[4];
    t[1] = -4.0 * (b[1] + b[2]) + b[3] + b[4];
    t[2] = 4.0 * (b[1] - b[2]) - b[3] + b[4];
    t[3] = 2.0 * (b[3] - b[1]) - b[2] + b[4];
    t[4] = 2.0 * (b[1] - b[3]) - b[2] + b[4];
    t[5] = 4.0 * b[1] - 5.0 * b[3] + b[5];
}
#else
#define TILE 2u
#define PATCH 4u
void transform(const float b[PATCH], out float t[PATCH]) {
    t[0] = b[0] - b[2];
    t[1] = b[1] + b[2];
    t[2] = b[2] - b[1];
    t[3] = b[1] - b[3];
}
#endif

layout(local_size_x_id = 0) in;

IMAGE_INPUT(0, x, r32f)  // R32F, NCHW input
OUTPUT(1, v)  // [PATCH^2][C][padded_columns]

layout(push_constant) uniform Push {
    uint channels, height, width, padding;
    uint tiles_x, tiles;  // tiles per row and per image
    uint columns, padded_columns;  // batch * tiles, and that rounded up to 4
} p;

void main() {
    const uint item = flat_invocation();
    if (item >= p.channels * p.padded_columns) return;
    const uint c = item / p.padded_columns, col = item % p.padded_columns;

    float d[PATCH][PATCH];
    [[unroll]] for (uint i = 0u; i < PATCH; ++i) {
        [[unroll]] for (uint j = 0u; j < PATCH; ++j) d[i][j] = 0.0;
    }
    if (col < p.columns) {
        const uint n = col / p.tiles, tile = col % p.tiles;
        const int iy0 = int(tile / p.tiles_x * TILE) - int(p.padding);
        const int ix0 = int(tile % p.tiles_x * TILE) - int(p.padding);
        const int plane = int((n * p.channels + c) * p.height * p.width);
        [[unroll]] for (uint i = 0u; i < PATCH; ++i) {
            const int iy = iy0 + int(i);
            if (iy < 0 || iy >= int(p.height)) continue;
            [[unroll]] for (uint j = 0u; j < PATCH; ++j) {
                const int ix = ix0 + int(j);
                if (ix >= 0 && ix < int(p.width)) d[i][j] = LOAD_IMAGE1(x, plane + iy * int(p.width) + ix);
            }
        }
    }

    // B^T d (each column of d), then (B^T d) B (each row of that).
    float t[PATCH][PATCH];
    [[unroll]] for (uint j = 0u; j < PATCH; ++j) {
        float column[PATCH], out_column[PATCH];
        [[unroll]] for (uint i = 0u; i < PATCH; ++i) column[i] = d[i][j];
        transform(column, out_column);
        [[unroll]] for (uint i = 0u; i < PATCH; ++i) t[i][j] = out_column[i];
    }
    const uint plane_size = p.channels * p.padded_columns;
    const uint o = c * p.padded_columns + col;
    [[unroll]] for (uint i = 0u; i < PATCH; ++i) {
        float row[PATCH];
        transform(t[i], row);
        [[unroll]] for (uint j = 0u; j < PATCH; ++j) STORE1(v, (PATCH * i + j) * plane_size + o, row[j]);
    }
}
