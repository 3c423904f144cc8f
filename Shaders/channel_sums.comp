#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// Each channel's sum over the batch and the pixels, sums[c] = sum_{n, q} x[n][c][q] (plus what sums holds where
// ACCUMULATE is 1): a bias's gradient. One workgroup per channel; its lanes stride over the channel's values, then
// add their partial sums in shared memory, lane 0 writing.

layout(local_size_x_id = 0) in;  // a power of two, at most 128
layout(constant_id = 1) const uint ACCUMULATE = 0u;

INPUT_F32(0, x)
layout(binding = 1) buffer Sums { float sums[]; };

layout(push_constant) uniform Push {
    uint batch, channels, pixels;
} p;

shared float partial[128];

void main() {
    const uint c = gl_WorkGroupID.x, lane = gl_LocalInvocationID.x, lanes = gl_WorkGroupSize.x;
    float sum = 0.0;
    FOR_CHANNEL_VALUES(c, p.batch, p.channels, p.pixels, lane, lanes, sum += LOAD1(x, at);)
    partial[lane] = sum;
    WORKGROUP_SUM(partial, lane, lanes)
    if (lane == 0u) sums[c] = partial[0] + (ACCUMULATE == 1u ? sums[c] : 0.0);
}
