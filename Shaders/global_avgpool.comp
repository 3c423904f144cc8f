#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Global average pooling: y[n][c] = (1 / (H*W)) * sum_{p} x[n][c][p].
// One invocation per (n, c) plane. With VEC4_INPUT (H*W % 4 == 0) x is an RGBA32F view read four values a fetch.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool VEC4_INPUT = false;

layout(binding = 0) uniform samplerBuffer x;  // NCHW input, RGBA32F or R32F (see VEC4_INPUT)
layout(binding = 1) writeonly buffer Output { float y[]; };

layout(push_constant) uniform Push {
    uint planes;  // batch * channels
    uint pixels;  // H * W
} p;

void main() {
    const uint plane = flat_invocation();
    if (plane >= p.planes) return;
    float sum = 0.0;
    if (VEC4_INPUT) {
        const int first = int(plane * p.pixels / 4u);
        vec4 sum4 = vec4(0.0);
        for (int q = 0; q < int(p.pixels / 4u); ++q) sum4 += texelFetch(x, first + q);
        sum = sum4.x + sum4.y + sum4.z + sum4.w;
    } else {
        const int first = int(plane * p.pixels);
        for (int q = 0; q < int(p.pixels); ++q) sum += texelFetch(x, first + q).x;
    }
    y[plane] = sum / float(p.pixels);
}
