#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage
// @variant input INPUT_GRADIENT

// The two elementwise ends of squeeze-excite's gradient (y = x * g, g = sigmoid(z2) per image and channel; the
// products between them run on gemm_train.comp):
//   squeeze_excite_backward        dz2[plane] = g (1 - g) sum_q dy[plane][q] x[plane][q], one workgroup per plane
//                                  (image and channel), its lanes adding in shared memory;
//   squeeze_excite_backward_input  dx = dy g + dmeans[plane] / pixels (plus what dx holds where ACCUMULATE is 1), one
//                                  invocation per element.

layout(local_size_x_id = 0) in;  // a power of two, at most 128
layout(constant_id = 1) const uint ACCUMULATE = 0u;
// squeeze_excite_backward with planes of fewer pixels than a workgroup has lanes: one invocation per plane.
layout(constant_id = 2) const uint SMALL_PLANES = 0u;

INPUT_F32(0, dy)
INPUT_F32(1, gates)  // [planes]
#if defined(INPUT_GRADIENT)
INPUT_F32(2, dmeans)  // [planes]
layout(binding = 3) buffer DX { float dx[]; };
#else
INPUT_F32(2, x)
layout(binding = 3) writeonly buffer DZ { float dz[]; };  // [planes]
shared float partial[128];
#endif

layout(push_constant) uniform Push {
    uint planes, pixels;
} p;

void main() {
#if defined(INPUT_GRADIENT)
    const uint index = flat_invocation();
    if (index >= p.planes * p.pixels) return;
    const uint plane = index / p.pixels;
    const float g = LOAD1(dy, index) * LOAD1(gates, plane) + LOAD1(dmeans, plane) / float(p.pixels);
    dx[index] = g + (ACCUMULATE == 1u ? dx[index] : 0.0);
#else
    if (SMALL_PLANES == 1u) {
        const uint plane = flat_invocation();
        if (plane >= p.planes) return;
        float sum = 0.0;
        for (uint q = 0u; q < p.pixels; ++q) sum += LOAD1(dy, plane * p.pixels + q) * LOAD1(x, plane * p.pixels + q);
        dz[plane] = LOAD1(gates, plane) * (1.0 - LOAD1(gates, plane)) * sum;
        return;
    }
    const uint plane = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (plane >= p.planes) return;  // the same for the whole workgroup
    const uint lane = gl_LocalInvocationID.x, lanes = gl_WorkGroupSize.x;
    float sum = 0.0;
    for (uint q = lane; q < p.pixels; q += lanes) {
        sum += LOAD1(dy, plane * p.pixels + q) * LOAD1(x, plane * p.pixels + q);
    }
    partial[lane] = sum;
    WORKGROUP_SUM(partial, lane, lanes)
    if (lane == 0u) dz[plane] = LOAD1(gates, plane) * (1.0 - LOAD1(gates, plane)) * partial[0];
#endif
}
