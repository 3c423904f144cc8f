#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Average pooling 2x2, stride 2, ceil_mode, no padding, windows that run over the edge averaging only the elements
// inside (count_include_pad = False):
//   y[n][c][oy][ox] = mean of x[n][c][iy][ix] over iy in [2oy, min(2oy+2, H)), ix in [2ox, min(2ox+2, W)).
// Output size is ceil(H / 2) x ceil(W / 2). Each invocation computes 4 neighbouring outputs of one row.
// With VEC4_INPUT (W % 4 == 0 and H even: every window whole, and each input row a run of whole texels) x is an
// RGBA32F view and one fetch brings two windows' row: 4 fetches for 4 outputs instead of 16; their stores are one vec4
// where the output row is a run of whole vec4s too (W % 8 == 0).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool VEC4_INPUT = false;

INPUT(0, x)  // NCHW input, RGBA32F or R32F (see VEC4_INPUT)
OUTPUT(1, y)

layout(push_constant) uniform Push {
    uint planes;  // batch * channels
    uint in_height, in_width, out_height, out_width;
} p;

void main() {
    const uint groups_per_row = (p.out_width + 3u) / 4u;
    const uint item = flat_invocation();
    if (item >= p.planes * p.out_height * groups_per_row) return;
    const uint ox0 = (item % groups_per_row) * 4u;
    const uint row = item / groups_per_row;
    const uint oy = row % p.out_height;
    const uint plane = row / p.out_height;
    const int in_base = int(plane * p.in_height * p.in_width);
    const uint iy0 = 2u * oy, iy1 = min(iy0 + 2u, p.in_height);

    if (VEC4_INPUT) {
        // Texels of the two input rows under outputs ox0, ox0 + 1 (t) and ox0 + 2, ox0 + 3 (t + 1: absent at the end of
        // a row of 4k + 2 outputs).
        const int t = (in_base + int(iy0 * p.in_width + 2u * ox0)) / 4, below = int(p.in_width / 4u);
        const bool four = ox0 + 2u < p.out_width;
        const vec4 a = LOAD4(x, t) + LOAD4(x, t + below);
        const vec4 b = four ? LOAD4(x, t + 1) + LOAD4(x, t + 1 + below) : vec4(0.0);
        const vec4 mean = 0.25 * vec4(a.x + a.y, a.z + a.w, b.x + b.y, b.z + b.w);
        const uint o = row * p.out_width + ox0;
        if (p.out_width % 4u == 0u) {
            STORE4(y, o / 4u, mean);
        } else {
            for (uint j = 0u; j < (four ? 4u : 2u); ++j) STORE1(y, o + j, mean[j]);
        }
        return;
    }
    for (uint j = 0u; j < 4u; ++j) {
        const uint ox = ox0 + j;
        if (ox >= p.out_width) break;
        const uint ix0 = 2u * ox, ix1 = min(ix0 + 2u, p.in_width);
        float sum = 0.0;
        for (uint iy = iy0; iy < iy1; ++iy)
            for (uint ix = ix0; ix < ix1; ++ix)
                sum += LOAD1(x, in_base + int(iy * p.in_width + ix));
        STORE1(y, row * p.out_width + ox, sum / float((iy1 - iy0) * (ix1 - ix0)));
    }
}
