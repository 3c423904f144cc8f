#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage

// A dense convolution's input gradient from the gradient of its patches (the transpose of im2col.comp): each input
// element gathers the patchSize entries that read it,
//   dx[first + n][c][iy][ix] = sum over (ky, kx) with oy = (iy + pad - ky) / stride, ox = (ix + pad - kx) / stride
//                              whole and inside the output of dcol[n][(c * KSIZE + ky) * KSIZE + kx][oy * outW + ox],
// so no two invocations write one element (no atomics; the same sum on every run). Where ACCUMULATE is 1 the sum is
// added to what dx holds (an input with several consumers). One invocation per input element (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3u;
layout(constant_id = 2) const uint ACCUMULATE = 0u;

INPUT_F32(0, dcol)
layout(binding = 1) buffer DX { float dx[]; };

layout(push_constant) uniform Push {
    uint batch, channels, height, width, outHeight, outWidth, stride, pad;
    uint first;  // the image of x (dx) that image 0 of the patches is: a chunk of the batch
} p;

void main() {
    const uint index = flat_invocation();
    if (index >= p.batch * p.channels * p.height * p.width) return;
    const uint ix = index % p.width, iy = (index / p.width) % p.height;
    const uint c = (index / (p.width * p.height)) % p.channels, n = index / (p.width * p.height * p.channels);
    const uint pixels = p.outHeight * p.outWidth, patchSize = p.channels * KSIZE * KSIZE;
    float sum = 0.0;
    if (p.stride == 1u) {
        // Stride 1: output (iy + pad - ky, ix + pad - kx), no division.
        [[unroll]] for (uint ky = 0u; ky < KSIZE; ++ky) {
            const int oy = int(iy + p.pad) - int(ky);
            if (oy < 0 || oy >= int(p.outHeight)) continue;
            [[unroll]] for (uint kx = 0u; kx < KSIZE; ++kx) {
                const int ox = int(ix + p.pad) - int(kx);
                if (ox < 0 || ox >= int(p.outWidth)) continue;
                const uint pixel = uint(oy) * p.outWidth + uint(ox);
                sum += LOAD1(dcol, (n * patchSize + (c * KSIZE + ky) * KSIZE + kx) * pixels + pixel);
            }
        }
    }
    for (uint ky = 0u; ky < KSIZE && p.stride != 1u; ++ky) {
        const int sy = int(iy + p.pad) - int(ky);
        if (sy < 0 || sy % int(p.stride) != 0 || sy / int(p.stride) >= int(p.outHeight)) continue;
        for (uint kx = 0u; kx < KSIZE; ++kx) {
            const int sx = int(ix + p.pad) - int(kx);
            if (sx < 0 || sx % int(p.stride) != 0 || sx / int(p.stride) >= int(p.outWidth)) continue;
            const uint pixel = uint(sy / int(p.stride)) * p.outWidth + uint(sx / int(p.stride));
            sum += LOAD1(dcol, (n * patchSize + (c * KSIZE + ky) * KSIZE + kx) * pixels + pixel);
        }
    }
    const uint at = p.first * p.channels * p.height * p.width + index;
    dx[at] = sum + (ACCUMULATE == 1u ? dx[at] : 0.0);
}
