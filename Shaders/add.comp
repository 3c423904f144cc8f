#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Elementwise add with an activation: y[i] = act(a[i] + b[i]) for i < count.
//
// Inputs are read as vec4 texels (RGBA32F texel buffers, whose range the host rounds up to whole vec4s); each
// invocation handles VEC4_PER_INVOCATION vec4s spaced one workgroup apart, so neighbouring invocations touch
// neighbouring memory. The last, partial vec4 is stored element by element so nothing past `count` is written.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const uint VEC4_PER_INVOCATION = 4;

INPUT(0, a)
INPUT(1, b)
OUTPUT(2, y)

layout(push_constant) uniform Push {
    uint count;  // number of floats
} p;

void main() {
    const uint local = gl_WorkGroupSize.x;
    const uint first = gl_WorkGroupID.x * local * VEC4_PER_INVOCATION + gl_LocalInvocationID.x;
    const uint full = p.count / 4u, vec4s = (p.count + 3u) / 4u;
    for (uint k = 0u; k < VEC4_PER_INVOCATION; ++k) {
        const uint q = first + k * local;
        if (q >= vec4s) break;
        const vec4 v = activate(LOAD4(a, int(q)) + LOAD4(b, int(q)), ACTIVATION);
        if (q < full) {
            STORE4(y, q, v);
        } else if (q == full) {
            for (uint e = 0u; e < p.count - 4u * full; ++e) STORE1(y, 4u * q + e, v[e]);
        }
    }
}
