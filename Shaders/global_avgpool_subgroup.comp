#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"

// @datapaths storage fp16
// (No texel-buffer build: no family runs this kernel on the texel path.)

// Global average pooling, one workgroup per plane: y[plane] = (1 / pixels) * sum_{q < pixels} x[plane * pixels + q],
// planes = batch * channels (NCHW: plane = n * C + c).
// The lanes stride over the plane (lane l reads q = l, l + W, l + 2W, ... for workgroup size W, four strides a loop
// step, unrolled: lavapipe ends an invocation after 65535 loop iterations in all), sum their values, add them across
// the subgroup (subgroupAdd), then lane 0 adds the subgroups' sums through shared memory and writes the mean.
// Correct for any subgroup size from 1 to 128 (up to 128 subgroups), and any workgroup size up to 128.
// Needs subgroup arithmetic in compute shaders (VkPhysicalDeviceSubgroupProperties: supportedStages has COMPUTE,
// supportedOperations has BASIC and ARITHMETIC).
// Grid: one workgroup per plane; plane = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x (the host may
// spread the planes over x and y); groups past `planes` do nothing.

layout(local_size_x_id = 0) in;

INPUT(0, x)  // R32F, NCHW input
OUTPUT(1, y)  // [planes]

layout(push_constant) uniform Push {
    uint planes;  // batch * channels
    uint pixels;  // H * W
} p;

shared float subgroup_sums[128];  // one per subgroup: at most 128 (workgroup <= 128, subgroup size >= 1)

void main() {
    const uint plane = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (plane >= p.planes) return;  // the same for the whole workgroup, so no barrier is skipped by only some lanes
    const uint lanes = gl_WorkGroupSize.x;
    const uint lane = gl_LocalInvocationID.x;
    const uint first = plane * p.pixels;

    float sum = 0.0;
    for (uint base = 0u; base < p.pixels; base += 4u * lanes) {
        [[unroll]] for (uint u = 0u; u < 4u; ++u) {
            const uint q = base + u * lanes + lane;
            if (q < p.pixels) sum += LOAD1(x, int(first + q));
        }
    }

    sum = subgroupAdd(sum);
    if (subgroupElect()) subgroup_sums[gl_SubgroupID] = sum;
    barrier();
    if (lane == 0u) {
        float total = 0.0;
        for (uint s = 0u; s < gl_NumSubgroups; ++s) total += subgroup_sums[s];
        STORE1(y, plane, total / float(p.pixels));
    }
}
