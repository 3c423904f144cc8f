#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// y[i] = x[i] * scale[i / per_image] for i < count: each image's values times its own scale (stochastic depth's
// gradient through a branch it kept, scaled, or dropped). One invocation per element (flat_invocation).

layout(local_size_x_id = 0) in;

INPUT_F32(0, x)
layout(binding = 1) writeonly buffer Y { float y[]; };
INPUT_SMALL(2, scale)  // [batch]

layout(push_constant) uniform Push {
    uint count, per_image;
} p;

void main() {
    const uint index = flat_invocation();
    if (index < p.count) y[index] = LOAD1(x, index) * LOAD_SMALL(scale, index / p.per_image);
}
