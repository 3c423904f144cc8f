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
// Each invocation takes four consecutive elements, as one vec4 where they are a whole aligned group (the same
// arithmetic, element by element), else one by one.

layout(local_size_x_id = 0) in;

layout(binding = 0) buffer Parameters { float parameters[]; };
layout(binding = 0) buffer Parameters4 { vec4 parameters4[]; };
layout(binding = 1) readonly buffer Gradients { float gradients[]; };
layout(binding = 1) readonly buffer Gradients4 { vec4 gradients4[]; };
layout(binding = 2) buffer Averages { float averages[]; };
layout(binding = 2) buffer Averages4 { vec4 averages4[]; };
layout(binding = 3) buffer SquareAverages { float squareAverages[]; };
layout(binding = 3) buffer SquareAverages4 { vec4 squareAverages4[]; };

layout(push_constant) uniform Push {
    uint first, count;
    float decay, beta1, beta2, stepSize, correction2Root, epsilon;
} p;

// The step of one element or four (T float or vec4) at index `at` of arrays P, G, M and V.
#define ADAMW_STEP(T, P, G, M, V, at)                                                                                 \
    {                                                                                                                \
        const T g = G[at];                                                                                           \
        const T m = M[at] + (g - M[at]) * (1.0 - p.beta1);                                                           \
        const T v = V[at] * p.beta2 + (1.0 - p.beta2) * g * g;                                                       \
        M[at] = m;                                                                                                   \
        V[at] = v;                                                                                                   \
        P[at] = P[at] * p.decay - p.stepSize * (m / (sqrt(v) / p.correction2Root + p.epsilon));                      \
    }

void main() {
    const uint i = flat_invocation() * 4u;
    if (i >= p.count) return;
    const uint at = p.first + i;
    if (at % 4u == 0u && i + 4u <= p.count) {
        ADAMW_STEP(vec4, parameters4, gradients4, averages4, squareAverages4, at / 4u)
        return;
    }
    for (uint j = at; j < p.first + min(i + 4u, p.count); ++j) {
        ADAMW_STEP(float, parameters, gradients, averages, squareAverages, j)
    }
}
