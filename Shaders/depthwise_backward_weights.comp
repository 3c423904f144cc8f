#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// A depthwise convolution's weight gradient: for channel c and tap (ky, kx),
//   dw[c][ky][kx] = sum_{n, oy, ox} dy[n][c][oy][ox] * x[n][c][oy * stride - pad + ky][ox * stride - pad + kx]
// (taps over the padding add nothing). One workgroup per weight (c * KSIZE * KSIZE + tap, spread over x and y); its
// lanes stride over the output pixels of each image, then add their partial sums in shared memory.

layout(local_size_x_id = 0) in;  // a power of two, at most 128
layout(constant_id = 1) const uint KSIZE = 3u;

INPUT_F32(0, dy)
INPUT_F32(1, x)
layout(binding = 2) writeonly buffer DW { float dw[]; };

layout(push_constant) uniform Push {
    uint batch, channels, height, width, outHeight, outWidth, stride, pad;
} p;

shared float partial[128];

void main() {
    const uint weight = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (weight >= p.channels * KSIZE * KSIZE) return;  // the same for the whole workgroup
    const uint c = weight / (KSIZE * KSIZE), ky = (weight / KSIZE) % KSIZE, kx = weight % KSIZE;
    const uint lane = gl_LocalInvocationID.x, lanes = gl_WorkGroupSize.x, pixels = p.outHeight * p.outWidth;
    float sum = 0.0;
    for (uint n = 0u; n < p.batch; ++n) {
        const uint plane = n * p.channels + c;
        for (uint q = lane; q < pixels; q += lanes) {
            const int iy = int((q / p.outWidth) * p.stride + ky) - int(p.pad);
            const int ix = int((q % p.outWidth) * p.stride + kx) - int(p.pad);
            if (iy < 0 || iy >= int(p.height) || ix < 0 || ix >= int(p.width)) continue;
            sum += LOAD1(dy, plane * pixels + q) * LOAD1(x, (plane * p.height + uint(iy)) * p.width + uint(ix));
        }
    }
    partial[lane] = sum;
    WORKGROUP_SUM(partial, lane, lanes)
    if (lane == 0u) dw[weight] = partial[0];
}
