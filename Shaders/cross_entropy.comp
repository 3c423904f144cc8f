#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage

// The training loss per image and its gradient, for logits and target distributions [batch][classes]:
//   losses[n] = -sum_j t[n][j] log softmax(logits[n])[j],
//   dlogits[n][j] = (softmax(logits[n])[j] sum_j' t[n][j'] - t[n][j]) / batch,
// the log-softmax stabilised by the row's largest logit. One invocation per image (flat_invocation).

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer Logits { float logits[]; };
layout(binding = 1) readonly buffer Targets { float targets[]; };
layout(binding = 2) writeonly buffer Gradient { float gradient[]; };
layout(binding = 3) writeonly buffer Losses { float losses[]; };

layout(push_constant) uniform Push {
    uint batch, classes;
} p;

void main() {
    const uint n = flat_invocation();
    if (n >= p.batch) return;
    const uint first = n * p.classes;
    float largest = logits[first];
    for (uint j = 1u; j < p.classes; ++j) largest = max(largest, logits[first + j]);
    float total = 0.0, mass = 0.0;
    for (uint j = 0u; j < p.classes; ++j) {
        total += exp(logits[first + j] - largest);
        mass += targets[first + j];
    }
    const float logTotal = log(total) + largest;
    float loss = 0.0;
    for (uint j = 0u; j < p.classes; ++j) {
        const float logProbability = logits[first + j] - logTotal;
        loss -= targets[first + j] * logProbability;
        gradient[first + j] = (exp(logProbability) * mass - targets[first + j]) / float(p.batch);
    }
    losses[n] = loss;
}
