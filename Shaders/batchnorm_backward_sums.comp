#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// A train-mode BatchNorm's parameter gradients from the gradient dpre of its output (activation_backward_batchnorm):
//   dbeta[c] = sum dpre, dgamma[c] = sum dpre * xhat, xhat = (x - mean[c]) / sqrt(var[c] + eps),
// over the batch and the pixels. One workgroup per channel.

layout(local_size_x_id = 0) in;  // a power of two, at most 128

INPUT_F32(0, x)
INPUT_F32(1, dpre)
layout(binding = 2) writeonly buffer DGamma { float dgamma[]; };
layout(binding = 3) writeonly buffer DBeta { float dbeta[]; };
INPUT_SMALL(4, statistics)  // [mean][variance], channels each

layout(push_constant) uniform Push {
    uint batch, channels, pixels;
    float epsilon;
} p;

shared float partial[128];
shared float partialScaled[128];

void main() {
    const uint c = gl_WorkGroupID.x, lane = gl_LocalInvocationID.x, lanes = gl_WorkGroupSize.x;
    const float mean = LOAD_SMALL(statistics, c);
    const float inverse = inversesqrt(LOAD_SMALL(statistics, p.channels + c) + p.epsilon);
    float sum = 0.0, scaled = 0.0;
    FOR_CHANNEL_VALUES(c, p.batch, p.channels, p.pixels, lane, lanes, {
        const float d = LOAD1(dpre, at);
        sum += d;
        scaled += d * (LOAD1(x, at) - mean) * inverse;
    })
    partial[lane] = sum;
    partialScaled[lane] = scaled;
    WORKGROUP_SUM(partial, lane, lanes)
    WORKGROUP_SUM(partialScaled, lane, lanes)
    if (lane == 0u) {
        dbeta[c] = partial[0];
        dgamma[c] = partialScaled[0];
    }
}
