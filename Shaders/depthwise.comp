#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Depthwise convolution (groups = channels), k x k (k <= 7), stride s (1 or 2), zero padding, fused epilogue:
//   y[n][c][oy][ox] = epilogue( sum_{ky,kx} w[c][ky][kx] * x[n][c][oy*s - pad + ky][ox*s - pad + kx] )
// Each invocation computes 4 neighbouring outputs of one row; per kernel row it fetches the input span those four
// windows cover once ((4 - 1) * s + k values) and reuses it.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3;
layout(constant_id = 2) const uint STRIDE = 1;
layout(constant_id = 3) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 4) const bool HAS_RESIDUAL = false;

INPUT(0, x)  // R32F, NCHW input
INPUT(1, w)  // R32F, weights [C][k][k]
INPUT_SMALL(2, affine)  // R32F, scale[0..C) then shift[0..C)
INPUT(3, residual)  // R32F, same shape as y (bound to x when unused)
OUTPUT(4, y)

layout(push_constant) uniform Push {
    uint batch, channels, in_height, in_width;
    uint out_height, out_width, padding;
} p;

const uint SPAN_MAX = 3u * 2u + 7u;

void main() {
    // Work items: (n, c, oy, group of 4 ox), the group of 4 fastest.
    const uint groups_per_row = (p.out_width + 3u) / 4u;
    const uint item = flat_invocation();
    if (item >= p.batch * p.channels * p.out_height * groups_per_row) return;
    const uint ox0 = (item % groups_per_row) * 4u;
    const uint row = item / groups_per_row;  // (n * C + c) * OH + oy
    const uint oy = row % p.out_height;
    const uint plane = row / p.out_height;   // n * C + c
    const uint c = plane % p.channels;

    const int in_base = int(plane * p.in_height * p.in_width);
    const int ix0 = int(ox0 * STRIDE) - int(p.padding);
    const uint span = 3u * STRIDE + KSIZE;
    vec4 acc = vec4(0.0);
    for (uint ky = 0u; ky < KSIZE; ++ky) {
        const int iy = int(oy * STRIDE + ky) - int(p.padding);
        if (iy < 0 || iy >= int(p.in_height)) continue;
        float line[SPAN_MAX];
        for (uint t = 0u; t < span; ++t) {
            const int ix = ix0 + int(t);
            const bool inside = ix >= 0 && ix < int(p.in_width);
            const float v = LOAD1(x, inside ? in_base + iy * int(p.in_width) + ix : 0);
            line[t] = inside ? v : 0.0;
        }
        for (uint kx = 0u; kx < KSIZE; ++kx) {
            const float wv = LOAD1(w, int((c * KSIZE + ky) * KSIZE + kx));
            acc += wv * vec4(line[kx], line[STRIDE + kx], line[2u * STRIDE + kx], line[3u * STRIDE + kx]);
        }
    }

    const float scale = LOAD_SMALL(affine, int(c));
    const float shift = LOAD_SMALL(affine, int(p.channels + c));
    const uint out_row = row * p.out_width;
    for (uint j = 0u; j < 4u; ++j) {
        if (ox0 + j >= p.out_width) break;
        const uint o = out_row + ox0 + j;
        const float res = HAS_RESIDUAL ? LOAD1(residual, int(o)) : 0.0;
        STORE1(y, o, epilogue(acc[j], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
    }
}
