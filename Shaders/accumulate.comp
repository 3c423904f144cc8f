#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// y[i] += x[i] for i < count where ACCUMULATE is 1 (one more contribution to a gradient), y[i] = x[i] where it is 0
// (the first). One invocation per element (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACCUMULATE = 1u;

INPUT_F32(0, x)
layout(binding = 1) buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint count;
} p;

void main() {
    const uint index = flat_invocation();
    if (index < p.count) y[index] = LOAD1(x, index) + (ACCUMULATE == 1u ? y[index] : 0.0);
}
