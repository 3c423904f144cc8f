#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// The pooling gradients, gathered per input element (no two invocations write one element):
//   MODE 0, max pooling (KSIZE, stride, pad): dx gets dy of every output whose window covers it and picked it, as
//           MODE 3 recorded;
//   MODE 1, 2x2 average pooling in ceil mode: dx = dy of its window / the window's inputs inside the image;
//   MODE 2, global average pooling: dx = dy of its plane / (height * width);
//   MODE 3, max pooling's choices, one invocation per output: which input of its window the forward picked (the first
//           largest value in row order), as the offset iy * width + ix within the plane, into dx (a float holds it
//           exactly: planes are far smaller than 2^24), which MODE 0 then reads as x.
// Where ACCUMULATE is 1 the gradient is added to what dx holds. One invocation per input element (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0u;
layout(constant_id = 2) const uint ACCUMULATE = 0u;

INPUT_F32(0, x)  // max pooling's input (MODE 3), or its choices (MODE 0); unread by the others
INPUT_F32(1, dy)
layout(binding = 2) buffer DX { float dx[]; };

layout(push_constant) uniform Push {
    uint planes, height, width, outHeight, outWidth, ksize, stride, pad;
} p;

// The offset within its plane of the input output (oy, ox) of `plane` picked: the first largest of its window.
uint winner(uint plane, uint oy, uint ox) {
    float best = 0.0;
    uint chosen = 0xFFFFFFFFu;
    for (uint ky = 0u; ky < p.ksize; ++ky) {
        const int iy = int(oy * p.stride + ky) - int(p.pad);
        if (iy < 0 || iy >= int(p.height)) continue;
        for (uint kx = 0u; kx < p.ksize; ++kx) {
            const int ix = int(ox * p.stride + kx) - int(p.pad);
            if (ix < 0 || ix >= int(p.width)) continue;
            const uint offset = uint(iy) * p.width + uint(ix);
            const float value = LOAD1(x, plane * p.height * p.width + offset);
            if (chosen == 0xFFFFFFFFu || value > best) {
                best = value;
                chosen = offset;
            }
        }
    }
    return chosen;
}

// The sum of dy over the outputs whose windows cover input (iy, ix) of `plane` and picked it.
float maxGradient(uint plane, uint iy, uint ix) {
    const uint offset = iy * p.width + ix;
    // Outputs oy with oy * stride - pad <= iy < oy * stride - pad + ksize, likewise ox.
    const int firstY = max(int(iy + p.pad + p.stride) - int(p.ksize), 0) / int(p.stride);
    const int firstX = max(int(ix + p.pad + p.stride) - int(p.ksize), 0) / int(p.stride);
    const uint lastY = min((iy + p.pad) / p.stride, p.outHeight - 1u);
    const uint lastX = min((ix + p.pad) / p.stride, p.outWidth - 1u);
    float sum = 0.0;
    for (uint oy = uint(firstY); oy <= lastY; ++oy) {
        for (uint ox = uint(firstX); ox <= lastX; ++ox) {
            const uint at = (plane * p.outHeight + oy) * p.outWidth + ox;
            if (uint(LOAD1(x, at)) == offset) sum += LOAD1(dy, at);
        }
    }
    return sum;
}

void main() {
    const uint index = flat_invocation();
    if (MODE == 3u) {
        if (index >= p.planes * p.outHeight * p.outWidth) return;
        const uint ox = index % p.outWidth, oy = (index / p.outWidth) % p.outHeight;
        dx[index] = float(winner(index / (p.outWidth * p.outHeight), oy, ox));
        return;
    }
    if (index >= p.planes * p.height * p.width) return;
    const uint ix = index % p.width, iy = (index / p.width) % p.height, plane = index / (p.width * p.height);
    float g;
    if (MODE == 0u) {
        g = maxGradient(plane, iy, ix);
    } else if (MODE == 1u) {
        const uint oy = iy / 2u, ox = ix / 2u;
        const uint inside = (min(2u * oy + 2u, p.height) - 2u * oy) * (min(2u * ox + 2u, p.width) - 2u * ox);
        g = LOAD1(dy, (plane * p.outHeight + oy) * p.outWidth + ox) / float(inside);
    } else {
        g = LOAD1(dy, plane) / float(p.height * p.width);
    }
    dx[index] = g + (ACCUMULATE == 1u ? dx[index] : 0.0);
}
