#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// The pooling gradients, gathered per input element (no two invocations write one element):
//   MODE 0, max pooling (KSIZE, stride, pad): dx gets dy of every output whose window covers it and picks it, the
//           first largest value of the window in row order, as the forward picks;
//   MODE 1, 2x2 average pooling in ceil mode: dx = dy of its window / the window's inputs inside the image;
//   MODE 2, global average pooling: dx = dy of its plane / (height * width).
// Where ACCUMULATE is 1 the gradient is added to what dx holds. One invocation per input element (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0u;
layout(constant_id = 2) const uint ACCUMULATE = 0u;

INPUT_F32(0, x)  // max pooling's input (unread by the others)
INPUT_F32(1, dy)
layout(binding = 2) buffer DX { float dx[]; };

layout(push_constant) uniform Push {
    uint planes, height, width, outHeight, outWidth, ksize, stride, pad;
} p;

// Whether input `index` (row iy, column ix of `plane`) is the first largest of output (oy, ox)'s window.
bool wins(uint plane, uint oy, uint ox, uint index) {
    float best = 0.0;
    uint winner = 0xFFFFFFFFu;
    for (uint ky = 0u; ky < p.ksize; ++ky) {
        const int iy = int(oy * p.stride + ky) - int(p.pad);
        if (iy < 0 || iy >= int(p.height)) continue;
        for (uint kx = 0u; kx < p.ksize; ++kx) {
            const int ix = int(ox * p.stride + kx) - int(p.pad);
            if (ix < 0 || ix >= int(p.width)) continue;
            const uint at = (plane * p.height + uint(iy)) * p.width + uint(ix);
            if (winner == 0xFFFFFFFFu || LOAD1(x, at) > best) {
                best = LOAD1(x, at);
                winner = at;
            }
        }
    }
    return winner == index;
}

float maxGradient(uint plane, uint iy, uint ix, uint index) {
    float sum = 0.0;
    for (uint ky = 0u; ky < p.ksize; ++ky) {
        const int sy = int(iy + p.pad) - int(ky);
        if (sy < 0 || sy % int(p.stride) != 0 || sy / int(p.stride) >= int(p.outHeight)) continue;
        for (uint kx = 0u; kx < p.ksize; ++kx) {
            const int sx = int(ix + p.pad) - int(kx);
            if (sx < 0 || sx % int(p.stride) != 0 || sx / int(p.stride) >= int(p.outWidth)) continue;
            const uint oy = uint(sy / int(p.stride)), ox = uint(sx / int(p.stride));
            if (wins(plane, oy, ox, index)) sum += LOAD1(dy, (plane * p.outHeight + oy) * p.outWidth + ox);
        }
    }
    return sum;
}

void main() {
    const uint index = flat_invocation();
    if (index >= p.planes * p.height * p.width) return;
    const uint ix = index % p.width, iy = (index / p.width) % p.height, plane = index / (p.width * p.height);
    float g;
    if (MODE == 0u) {
        g = maxGradient(plane, iy, ix, index);
    } else if (MODE == 1u) {
        const uint oy = iy / 2u, ox = ix / 2u;
        const uint inside = (min(2u * oy + 2u, p.height) - 2u * oy) * (min(2u * ox + 2u, p.width) - 2u * ox);
        g = LOAD1(dy, (plane * p.outHeight + oy) * p.outWidth + ox) / float(inside);
    } else {
        g = LOAD1(dy, plane) / float(p.height * p.width);
    }
    dx[index] = g + (ACCUMULATE == 1u ? dx[index] : 0.0);
}
