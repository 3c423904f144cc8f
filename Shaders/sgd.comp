#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage

// One step of SGD with momentum (dampening 0) over elements [first, first + count), as torch.optim.SGD computes it
// (Kernels.SGD is the reference):
//   d = g + weightDecay param;  buffer = d on the first step, else buffer momentum + d;
//   param -= lr (d + momentum buffer where NESTEROV is 1, else buffer).
// One invocation per element (flat_invocation).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NESTEROV = 0u;

layout(binding = 0) buffer Parameters { float parameters[]; };
layout(binding = 1) readonly buffer Gradients { float gradients[]; };
layout(binding = 2) buffer Momentum { float momentumBuffer[]; };

layout(push_constant) uniform Push {
    uint first, count, firstStep;
    float learningRate, momentum, weightDecay;
} p;

void main() {
    const uint i = flat_invocation();
    if (i >= p.count) return;
    const uint at = p.first + i;
    const float d = gradients[at] + p.weightDecay * parameters[at];
    const float buffer_ = p.firstStep == 1u ? d : momentumBuffer[at] * p.momentum + d;
    momentumBuffer[at] = buffer_;
    parameters[at] -= p.learningRate * (NESTEROV == 1u ? d + p.momentum * buffer_ : buffer_);
}
