#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage
// @variant total TOTAL
// @variant clip CLIP

// Clipping gradients by their global L2 norm (torch.nn.utils.clip_grad_norm_; Kernels.clipByGlobalNorm is the
// reference), in three steps over a buffer of partial sums:
//   gradient_norm        workgroup w adds the squares of elements [first + w * CHUNK, first + (w + 1) * CHUNK) of the
//                        gradients (clamped to first + count) into partials[slot + w], its lanes adding in shared
//                        memory (once per gradient tensor or arena, each into slots of its own);
//   gradient_norm_total  one invocation adds the `slot` partials: partials[slot] = norm (their sum's square root),
//                        partials[slot + 1] = min(1, maxNorm / (norm + 1e-6)), the coefficient;
//   gradient_norm_clip   scales elements [first, first + count) by the coefficient, partials[slot + 1].

layout(local_size_x_id = 0) in;  // a power of two, at most 128
layout(constant_id = 1) const uint CHUNK = 16384u;

#if defined(CLIP)
layout(binding = 0) readonly buffer Partials { float partials[]; };
layout(binding = 1) buffer Gradients { float gradients[]; };
#elif defined(TOTAL)
layout(binding = 0) buffer Partials { float partials[]; };
#else
layout(binding = 0) readonly buffer Gradients { float gradients[]; };
layout(binding = 1) writeonly buffer Partials { float partials[]; };
shared float partial[128];
#endif

layout(push_constant) uniform Push {
    uint first, count, slot;
    float maxNorm;
} p;

void main() {
#if defined(CLIP)
    const uint i = flat_invocation();
    if (i < p.count) gradients[p.first + i] *= partials[p.slot + 1u];
#elif defined(TOTAL)
    if (flat_invocation() != 0u) return;
    float total = 0.0;
    for (uint s = 0u; s < p.slot; ++s) total += partials[s];
    const float norm = sqrt(total);
    partials[p.slot] = norm;
    partials[p.slot + 1u] = min(1.0, p.maxNorm / (norm + 1e-6));
#else
    const uint w = gl_WorkGroupID.x, lane = gl_LocalInvocationID.x, lanes = gl_WorkGroupSize.x;
    const uint begin = p.first + w * CHUNK, end = min(begin + CHUNK, p.first + p.count);
    float sum = 0.0;
    for (uint at = begin + lane; at < end; at += lanes) sum += gradients[at] * gradients[at];
    partial[lane] = sum;
    WORKGROUP_SUM(partial, lane, lanes)
    if (lane == 0u) partials[p.slot + w] = partial[0];
#endif
}
