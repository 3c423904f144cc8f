#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// A depthwise convolution's training forward, on its weights as the optimizer updates them ([channels][KSIZE][KSIZE],
// no packing) and without epilogue (its BatchNorm runs apart in training):
//   y[n][c][oy][ox] = sum_{ky, kx} w[c][ky][kx] x[n][c][oy * stride - pad + ky][ox * stride - pad + kx]
// (taps over the padding add nothing). One invocation per output element (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3u;

INPUT_F32(0, x)
INPUT_F32(1, w)
layout(binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint batch, channels, height, width, outHeight, outWidth, stride, pad;
    uint first;  // unused (the push constants of the window kernels, shared with im2col.comp)
} p;

void main() {
    const uint index = flat_invocation();
    if (index >= p.batch * p.channels * p.outHeight * p.outWidth) return;
    const uint ox = index % p.outWidth, oy = (index / p.outWidth) % p.outHeight;
    const uint plane = index / (p.outWidth * p.outHeight), c = plane % p.channels;
    float sum = 0.0;
    for (uint ky = 0u; ky < KSIZE; ++ky) {
        const int iy = int(oy * p.stride + ky) - int(p.pad);
        if (iy < 0 || iy >= int(p.height)) continue;
        for (uint kx = 0u; kx < KSIZE; ++kx) {
            const int ix = int(ox * p.stride + kx) - int(p.pad);
            if (ix < 0 || ix >= int(p.width)) continue;
            const uint at = (plane * p.height + uint(iy)) * p.width + uint(ix);
            sum += LOAD1(w, (c * KSIZE + ky) * KSIZE + kx) * LOAD1(x, at);
        }
    }
    y[index] = sum;
}
