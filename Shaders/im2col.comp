#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage

// The patches a dense convolution's outputs read, for its weight gradient:
//   col[n][(c * KSIZE + ky) * KSIZE + kx][oy * outW + ox]
//     = x[first + n][c][oy * stride - pad + ky][ox * stride - pad + kx]
// (0 over the padding). One invocation per input channel and output pixel of each image, spread over x and y
// (flat_invocation), writing that pixel's KSIZE x KSIZE taps of the channel.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3u;

INPUT_F32(0, x)
layout(binding = 1) writeonly buffer Col { float col[]; };

layout(push_constant) uniform Push {
    uint batch, channels, height, width, outHeight, outWidth, stride, pad;
    uint first;  // the image of x (dx) that image 0 of the patches is: a chunk of the batch
} p;

void main() {
    const uint index = flat_invocation();
    const uint pixels = p.outHeight * p.outWidth, taps = KSIZE * KSIZE;
    if (index >= p.batch * p.channels * pixels) return;
    const uint pixel = index % pixels, plane = index / pixels;  // plane: n * channels + c
    const uint c = plane % p.channels, n = plane / p.channels;
    const int y0 = int((pixel / p.outWidth) * p.stride) - int(p.pad);
    const int x0 = int((pixel % p.outWidth) * p.stride) - int(p.pad);
    const uint start = ((n * p.channels + c) * taps) * pixels + pixel;  // col[n][c * taps][pixel]
    [[unroll]] for (uint ky = 0u; ky < KSIZE; ++ky) {
        const int iy = y0 + int(ky);
        [[unroll]] for (uint kx = 0u; kx < KSIZE; ++kx) {
            const int ix = x0 + int(kx);
            const bool inside = iy >= 0 && iy < int(p.height) && ix >= 0 && ix < int(p.width);
            const uint at = ((p.first * p.channels + plane) * p.height + uint(iy)) * p.width + uint(ix);
            col[start + (ky * KSIZE + kx) * pixels] = inside ? LOAD1(x, at) : 0.0;
        }
    }
}
