#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// Channel-wise scaling (the last step of squeeze-excite) with an optional residual and an activation:
//   y[e] = act(x[e] * gate[e / pixels] + residual[e])     over the flat NCHW tensor, gate index = n * C + c
// Each invocation handles 4 consecutive elements. With VEC4 (pixels % 4 == 0, so the four share one channel) x and
// residual are RGBA32F views and y is stored as one vec4; otherwise element by element.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool VEC4 = false;
layout(constant_id = 2) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 3) const bool HAS_RESIDUAL = false;

INPUT(0, x)  // RGBA32F or R32F (see VEC4)
INPUT(1, gate)  // R32F, [N * C]
INPUT(2, residual)  // like x (bound to x when unused)
OUTPUT(3, y)

layout(push_constant) uniform Push {
    uint count;   // elements
    uint pixels;  // H * W
} p;

void main() {
    const uint q = flat_invocation();
    const uint e0 = q * 4u;
    if (e0 >= p.count) return;
    if (VEC4) {
        const float g = LOAD1(gate, int(e0 / p.pixels));
        vec4 v = LOAD4(x, int(q)) * g;
        if (HAS_RESIDUAL) v += LOAD4(residual, int(q));
        STORE4(y, q, activate(v, ACTIVATION));
    } else {
        for (uint j = 0u; j < 4u; ++j) {
            const uint e = e0 + j;
            if (e >= p.count) break;
            float v = LOAD1(x, int(e)) * LOAD1(gate, int(e / p.pixels));
            if (HAS_RESIDUAL) v += LOAD1(residual, int(e));
            STORE1(y, e, activate(v, ACTIVATION));
        }
    }
}
