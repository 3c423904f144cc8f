#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage

// The model EMA's update (timm's ModelEma; Kernels.updateAverage is the reference) over elements
// [first, first + count): average = average decay + (1 - decay) value. One invocation per element.

layout(local_size_x_id = 0) in;

layout(binding = 0) buffer Average { float average[]; };
layout(binding = 1) readonly buffer Values { float values[]; };

layout(push_constant) uniform Push {
    uint first, count;
    float decay;
} p;

void main() {
    const uint i = flat_invocation();
    if (i >= p.count) return;
    const uint at = p.first + i;
    average[at] = average[at] * p.decay + (1.0 - p.decay) * values[at];
}
