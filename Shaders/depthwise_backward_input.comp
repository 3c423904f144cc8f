#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage

// A depthwise convolution's input gradient: each input element gathers the outputs whose window covers it,
//   dx[n][c][iy][ix] = sum over (ky, kx) with oy = (iy + pad - ky) / stride, ox = (ix + pad - kx) / stride whole and
//                      inside the output of w[c][ky][kx] * dy[n][c][oy][ox]
// (plus what dx holds where ACCUMULATE is 1). One invocation per input element (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint KSIZE = 3u;
layout(constant_id = 2) const uint ACCUMULATE = 0u;

INPUT_F32(0, dy)
INPUT_F32(1, w)  // [channels][KSIZE][KSIZE]
layout(binding = 2) buffer DX { float dx[]; };

layout(push_constant) uniform Push {
    uint batch, channels, height, width, outHeight, outWidth, stride, pad;
    uint first;  // unused (the push constants of the window kernels, shared with im2col.comp)
} p;

void main() {
    const uint index = flat_invocation();
    if (index >= p.batch * p.channels * p.height * p.width) return;
    const uint ix = index % p.width, iy = (index / p.width) % p.height;
    const uint plane = index / (p.width * p.height), c = plane % p.channels;
    float sum = 0.0;
    if (p.stride == 1u) {
        // Stride 1 (the positional convolutions): output (iy + pad - ky, ix + pad - kx), no division.
        [[unroll]] for (uint ky = 0u; ky < KSIZE; ++ky) {
            const int oy = int(iy + p.pad) - int(ky);
            if (oy < 0 || oy >= int(p.outHeight)) continue;
            [[unroll]] for (uint kx = 0u; kx < KSIZE; ++kx) {
                const int ox = int(ix + p.pad) - int(kx);
                if (ox < 0 || ox >= int(p.outWidth)) continue;
                const uint at = (plane * p.outHeight + uint(oy)) * p.outWidth + uint(ox);
                sum += LOAD1(w, (c * KSIZE + ky) * KSIZE + kx) * LOAD1(dy, at);
            }
        }
        dx[index] = sum + (ACCUMULATE == 1u ? dx[index] : 0.0);
        return;
    }
    for (uint ky = 0u; ky < KSIZE; ++ky) {
        const int sy = int(iy + p.pad) - int(ky);
        if (sy < 0 || sy % int(p.stride) != 0 || sy / int(p.stride) >= int(p.outHeight)) continue;
        for (uint kx = 0u; kx < KSIZE; ++kx) {
            const int sx = int(ix + p.pad) - int(kx);
            if (sx < 0 || sx % int(p.stride) != 0 || sx / int(p.stride) >= int(p.outWidth)) continue;
            const uint at = (plane * p.outHeight + uint(sy / int(p.stride))) * p.outWidth + uint(sx / int(p.stride));
            sum += LOAD1(w, (c * KSIZE + ky) * KSIZE + kx) * LOAD1(dy, at);
        }
    }
    dx[index] = sum + (ACCUMULATE == 1u ? dx[index] : 0.0);
}
