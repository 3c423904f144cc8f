#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage

// Winograd F(2x2, 3x3), step 1 of 3 (Sources/Kernels/Winograd.swift): the input transform of a 3x3, stride-1
// convolution. The output is cut into 2x2 tiles; tile (ty, tx) of image n reads the 4x4 input patch d whose corner is
// (2 ty - pad, 2 tx - pad) (zeros outside the image) and becomes V = B^T d B, 16 values, where
//   B^T = | 1  0 -1  0 |
//         | 0  1  1  0 |
//         | 0 -1  1  0 |
//         | 0  1  0 -1 |
// Written as v[xi][c][col] (xi = 4 row + column of V, col = n * tiles + tile, columns padded to a multiple of 4 with
// zeros), the 16 matrices the products' GEMMs read. One invocation per (channel, column), columns fastest.

layout(local_size_x_id = 0) in;

IMAGE_INPUT(0, x, r32f)  // R32F, NCHW input
OUTPUT(1, v)  // [16][C][padded_columns]

layout(push_constant) uniform Push {
    uint channels, height, width, padding;
    uint tiles_x, tiles;  // tiles per row and per image
    uint columns, padded_columns;  // batch * tiles, and that rounded up to 4
} p;

void main() {
    const uint item = flat_invocation();
    if (item >= p.channels * p.padded_columns) return;
    const uint c = item / p.padded_columns, col = item % p.padded_columns;

    float d[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; ++i) {
        [[unroll]] for (uint j = 0u; j < 4u; ++j) d[i][j] = 0.0;
    }
    if (col < p.columns) {
        const uint n = col / p.tiles, tile = col % p.tiles;
        const int iy0 = int(tile / p.tiles_x * 2u) - int(p.padding);
        const int ix0 = int(tile % p.tiles_x * 2u) - int(p.padding);
        const int plane = int((n * p.channels + c) * p.height * p.width);
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            const int iy = iy0 + int(i);
            if (iy < 0 || iy >= int(p.height)) continue;
            [[unroll]] for (uint j = 0u; j < 4u; ++j) {
                const int ix = ix0 + int(j);
                if (ix >= 0 && ix < int(p.width)) d[i][j] = LOAD_IMAGE1(x, plane + iy * int(p.width) + ix);
            }
        }
    }

    // B^T d (rows), then (B^T d) B (columns).
    float t[4][4];
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        t[0][j] = d[0][j] - d[2][j];
        t[1][j] = d[1][j] + d[2][j];
        t[2][j] = d[2][j] - d[1][j];
        t[3][j] = d[1][j] - d[3][j];
    }
    const uint plane_size = p.channels * p.padded_columns;
    const uint o = c * p.padded_columns + col;
    [[unroll]] for (uint i = 0u; i < 4u; ++i) {
        STORE1(v, (4u * i + 0u) * plane_size + o, t[i][0] - t[i][2]);
        STORE1(v, (4u * i + 1u) * plane_size + o, t[i][1] + t[i][2]);
        STORE1(v, (4u * i + 2u) * plane_size + o, t[i][2] - t[i][1]);
        STORE1(v, (4u * i + 3u) * plane_size + o, t[i][1] - t[i][3]);
    }
}
