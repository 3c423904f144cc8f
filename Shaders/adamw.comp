#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage

// One AdamW step over elements [first, first + count) of a parameter arena and its gradient and moment arenas, as
// torch.optim.AdamW's single-tensor step computes it (Kernels.AdamW is the reference):
//   param *= decay                                  (decay = 1 - lr * weight decay, 1 where the parameter takes none)
//   m += (g - m) (1 - beta1);  v = v beta2 + (1 - beta2) g^2
//   param -= stepSize m / (sqrt(v) / correction2Root + eps)   (stepSize = lr / (1 - beta1^t),
//                                                              correction2Root = sqrt(1 - beta2^t))
// One invocation per element (flat_invocation).

layout(local_size_x_id = 0) in;

layout(binding = 0) buffer Parameters { float parameters[]; };
layout(binding = 1) readonly buffer Gradients { float gradients[]; };
layout(binding = 2) buffer Averages { float averages[]; };
layout(binding = 3) buffer SquareAverages { float squareAverages[]; };

layout(push_constant) uniform Push {
    uint first, count;
    float decay, beta1, beta2, stepSize, correction2Root, epsilon;
} p;

void main() {
    const uint i = flat_invocation();
    if (i >= p.count) return;
    const uint at = p.first + i;
    const float g = gradients[at];
    const float m = averages[at] + (g - averages[at]) * (1.0 - p.beta1);
    const float v = squareAverages[at] * p.beta2 + (1.0 - p.beta2) * g * g;
    averages[at] = m;
    squareAverages[at] = v;
    parameters[at] = parameters[at] * p.decay - p.stepSize * (m / (sqrt(v) / p.correction2Root + p.epsilon));
}
