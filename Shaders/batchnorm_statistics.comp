#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// A train-mode BatchNorm's batch statistics, and its running statistics moved toward them:
//   statistics[c] = mean, statistics[channels + c] = biased variance of channel c over the batch and the pixels
//   (m = batch * pixels values; the variance in a second pass, around the mean, as no float32 sum of squares can be
//   trusted), running[c] = (1 - momentum) running[c] + momentum mean,
//   running[channels + c] = (1 - momentum) running[channels + c] + momentum variance * m / (m - 1).
// One workgroup per channel.

layout(local_size_x_id = 0) in;  // a power of two, at most 128

INPUT_F32(0, x)
layout(binding = 1) writeonly buffer Statistics { float statistics[]; };
layout(binding = 2) buffer Running { float running[]; };

layout(push_constant) uniform Push {
    uint batch, channels, pixels;
    float momentum;
} p;

shared float partial[128];

void main() {
    const uint c = gl_WorkGroupID.x, lane = gl_LocalInvocationID.x, lanes = gl_WorkGroupSize.x;
    const float count = float(p.batch * p.pixels);
    float sum = 0.0;
    FOR_CHANNEL_VALUES(c, p.batch, p.channels, p.pixels, lane, lanes, sum += LOAD1(x, at);)
    partial[lane] = sum;
    WORKGROUP_SUM(partial, lane, lanes)
    const float mean = partial[0] / count;
    barrier();  // every lane has read partial[0] before it is overwritten
    float squares = 0.0;
    FOR_CHANNEL_VALUES(c, p.batch, p.channels, p.pixels, lane, lanes, {
        const float d = LOAD1(x, at) - mean;
        squares += d * d;
    })
    partial[lane] = squares;
    WORKGROUP_SUM(partial, lane, lanes)
    if (lane == 0u) {
        const float variance = partial[0] / count;
        statistics[c] = mean;
        statistics[p.channels + c] = variance;
        running[c] = (1.0 - p.momentum) * running[c] + p.momentum * mean;
        const float unbiased = variance * count / max(count - 1.0, 1.0);
        running[p.channels + c] = (1.0 - p.momentum) * running[p.channels + c] + p.momentum * unbiased;
    }
}
