#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// The patches a dense convolution's outputs read, for its weight gradient:
//   col[n][(c * KSIZE + ky) * KSIZE + kx][oy * outW + ox] = x[n][c][oy * stride - pad + ky][ox * stride - pad + kx]
// (0 over the padding). One invocation per element of col, spread over x and y (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3u;

INPUT_F32(0, x)
layout(binding = 1) writeonly buffer Col { float col[]; };

layout(push_constant) uniform Push {
    uint batch, channels, height, width, outHeight, outWidth, stride, pad;
} p;

void main() {
    const uint index = flat_invocation();
    const uint pixels = p.outHeight * p.outWidth, patchSize = p.channels * KSIZE * KSIZE;
    if (index >= p.batch * patchSize * pixels) return;
    const uint pixel = index % pixels, entry = (index / pixels) % patchSize, n = index / (pixels * patchSize);
    const uint c = entry / (KSIZE * KSIZE), ky = (entry / KSIZE) % KSIZE, kx = entry % KSIZE;
    const int iy = int((pixel / p.outWidth) * p.stride + ky) - int(p.pad);
    const int ix = int((pixel % p.outWidth) * p.stride + kx) - int(p.pad);
    const bool inside = iy >= 0 && iy < int(p.height) && ix >= 0 && ix < int(p.width);
    col[index] = inside ? LOAD1(x, ((n * p.channels + c) * p.height + uint(iy)) * p.width + uint(ix)) : 0.0;
}
