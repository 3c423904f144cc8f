#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// The excitation of squeeze-excite, from the per-channel means s[n][c] (global average pool) to the gates:
//   h[j]    = act(b1[j] + sum_c w1[j][c] * s[n][c])        j < R (reduced channels)
//   gate[c] = sigmoid(b2[c] + sum_j w2[c][j] * h[j])      c < C
// One workgroup per image; h lives in shared memory between the two layers.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_RELU;  // inside SE: ReLU for BossNet, SiLU for MBConv

const uint MAX_REDUCED = 1024u;

INPUT(0, s)  // R32F, [N][C] channel means
INPUT(1, w1)  // R32F, [R][C]
INPUT_SMALL(2, b1)  // R32F, [R]
INPUT(3, w2)  // R32F, [C][R]
INPUT_SMALL(4, b2)  // R32F, [C]
OUTPUT(5, gate)

layout(push_constant) uniform Push {
    uint channels, reduced;
} p;

shared float hidden[MAX_REDUCED];

void main() {
    const uint n = gl_WorkGroupID.x;
    const uint lane = gl_LocalInvocationID.x, lanes = gl_WorkGroupSize.x;
    const int means = int(n * p.channels);
    for (uint j = lane; j < p.reduced; j += lanes) {
        float sum = LOAD_SMALL(b1, int(j));
        const int row = int(j * p.channels);
        for (uint c = 0u; c < p.channels; ++c) sum += LOAD1(w1, row + int(c)) * LOAD1(s, means + int(c));
        hidden[j] = activate(sum, ACTIVATION);
    }
    barrier();
    for (uint c = lane; c < p.channels; c += lanes) {
        float sum = LOAD_SMALL(b2, int(c));
        const int row = int(c * p.reduced);
        for (uint j = 0u; j < p.reduced; ++j) sum += LOAD1(w2, row + int(j)) * hidden[j];
        STORE1(gate, means + int(c), activate(sum, ACT_SIGMOID));
    }
}
