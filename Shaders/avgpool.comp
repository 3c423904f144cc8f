#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Average pooling 2x2, stride 2, ceil_mode, no padding, windows that run over the edge averaging only the elements
// inside (count_include_pad = False):
//   y[n][c][oy][ox] = mean of x[n][c][iy][ix] over iy in [2oy, min(2oy+2, H)), ix in [2ox, min(2ox+2, W)).
// Output size is ceil(H / 2) x ceil(W / 2). Each invocation computes 4 neighbouring outputs of one row.

layout(local_size_x_id = 0) in;

INPUT(0, x)  // R32F, NCHW input
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
