#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// Global average pooling: y[n][c] = (1 / (H*W)) * sum_{p} x[n][c][p].
// One invocation per (n, c) plane. With VEC4_INPUT (H*W % 4 == 0) x is an RGBA32F view read four values a fetch.
// The loops step 8 fetches at a time (unrolled): lavapipe ends an invocation after 65535 loop iterations in all.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool VEC4_INPUT = false;

INPUT(0, x)  // NCHW input, RGBA32F or R32F (see VEC4_INPUT)
OUTPUT(1, y)

layout(push_constant) uniform Push {
    uint planes;  // batch * channels
    uint pixels;  // H * W
} p;

void main() {
    const uint plane = flat_invocation();
    if (plane >= p.planes) return;
    float sum = 0.0;
    if (VEC4_INPUT) {
        const int first = int(plane * p.pixels / 4u), count = int(p.pixels / 4u);
        vec4 sum4 = vec4(0.0);
        int q = 0;
        for (; q + 8 <= count; q += 8) {
            vec4 block = vec4(0.0);  // summed apart first: fewer additions to the running total, less rounding
            [[unroll]] for (int u = 0; u < 8; ++u) block += LOAD4(x, first + q + u);
            sum4 += block;
        }
        for (; q < count; ++q) sum4 += LOAD4(x, first + q);
        sum = sum4.x + sum4.y + sum4.z + sum4.w;
    } else {
        // Four running sums, as in the vec4 path, over blocks of 32 values.
        const int first = int(plane * p.pixels), count = int(p.pixels);
        vec4 sum4 = vec4(0.0);
        int q = 0;
        for (; q + 32 <= count; q += 32) {
            vec4 block = vec4(0.0);
            [[unroll]] for (int u = 0; u < 32; u += 4) {
                block += vec4(LOAD1(x, first + q + u), LOAD1(x, first + q + u + 1),
                              LOAD1(x, first + q + u + 2), LOAD1(x, first + q + u + 3));
            }
            sum4 += block;
        }
        for (; q < count; ++q) sum4.x += LOAD1(x, first + q);
        sum = sum4.x + sum4.y + sum4.z + sum4.w;
    }
    STORE1(y, plane, sum / float(p.pixels));
}
