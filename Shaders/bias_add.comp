#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage

// A bias added in place to every pixel of its channel: y[n][c][q] += bias[c]. One invocation per element.

layout(local_size_x_id = 0) in;

layout(binding = 0) buffer Y { float y[]; };
INPUT_SMALL(1, bias)

layout(push_constant) uniform Push {
    uint count, channels, pixels;
} p;

void main() {
    const uint index = flat_invocation();
    if (index < p.count) y[index] += LOAD_SMALL(bias, (index / p.pixels) % p.channels);
}
