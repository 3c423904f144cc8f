#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Max pooling, k x k, stride s, padding that never wins (out-of-range positions are skipped, as PyTorch pads with
// -inf):  y[n][c][oy][ox] = max over in-range (iy, ix) of the window of x[n][c][iy][ix].
// Each invocation computes 4 neighbouring outputs of one row.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3;
layout(constant_id = 2) const uint STRIDE = 2;

INPUT(0, x)  // R32F, NCHW input
OUTPUT(1, y)

layout(push_constant) uniform Push {
    uint planes;  // batch * channels
    uint in_height, in_width, out_height, out_width, padding;
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

    for (uint j = 0u; j < 4u; ++j) {
        const uint ox = ox0 + j;
        if (ox >= p.out_width) break;
        float best = -1.0 / 0.0;
        for (uint ky = 0u; ky < KSIZE; ++ky) {
            const int iy = int(oy * STRIDE + ky) - int(p.padding);
            if (iy < 0 || iy >= int(p.in_height)) continue;
            for (uint kx = 0u; kx < KSIZE; ++kx) {
                const int ix = int(ox * STRIDE + kx) - int(p.padding);
                if (ix < 0 || ix >= int(p.in_width)) continue;
                best = max(best, LOAD1(x, in_base + iy * int(p.in_width) + ix));
            }
        }
        STORE1(y, row * p.out_width + ox, best);
    }
}
