#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage

// A depthwise convolution's weight gradient: for channel c and tap (ky, kx),
//   dw[c][ky][kx] = sum_{n, oy, ox} dy[n][c][oy][ox] * x[n][c][oy * stride - pad + ky][ox * stride - pad + kx]
// (taps over the padding add nothing). One workgroup per channel (spread over x and y): its lanes share out the
// batch's output pixels (FOR_CHANNEL_VALUES), each reading dy once for every tap, then each tap's partial sums are
// added in shared memory.
layout(local_size_x_id = 0) in;  // a power of two, at most 128
layout(constant_id = 1) const uint KSIZE = 3u;

INPUT_F32(0, dy)
INPUT_F32(1, x)
layout(binding = 2) writeonly buffer DW { float dw[]; };

layout(push_constant) uniform Push {
    uint batch, channels, height, width, outHeight, outWidth, stride, pad;
    uint first;  // unused (the push constants of the window kernels, shared with im2col.comp)
} p;

shared float partial[128];

void main() {
    const uint c = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (c >= p.channels) return;  // the same for the whole workgroup
    const uint lane = gl_LocalInvocationID.x, lanes = gl_WorkGroupSize.x;
    float sums[KSIZE * KSIZE];
    [[unroll]] for (uint t = 0u; t < KSIZE * KSIZE; ++t) sums[t] = 0.0;
    FOR_CHANNEL_VALUES(c, p.batch, p.channels, p.outHeight * p.outWidth, lane, lanes, {
        const float g = LOAD1(dy, at);
        const uint plane = (n_ * p.channels + c) * p.height * p.width;
        const int y0 = int((q_ / p.outWidth) * p.stride) - int(p.pad);
        const int x0 = int((q_ % p.outWidth) * p.stride) - int(p.pad);
        [[unroll]] for (uint ky = 0u; ky < KSIZE; ++ky) {
            const int iy = y0 + int(ky);
            if (iy < 0 || iy >= int(p.height)) continue;
            [[unroll]] for (uint kx = 0u; kx < KSIZE; ++kx) {
                const int ix = x0 + int(kx);
                if (ix < 0 || ix >= int(p.width)) continue;
                sums[ky * KSIZE + kx] += g * LOAD1(x, plane + uint(iy) * p.width + uint(ix));
            }
        }
    })
    [[unroll]] for (uint t = 0u; t < KSIZE * KSIZE; ++t) {
        partial[lane] = sums[t];
        WORKGROUP_SUM(partial, lane, lanes)
        if (lane == 0u) dw[c * KSIZE * KSIZE + t] = partial[0];
    }
}
