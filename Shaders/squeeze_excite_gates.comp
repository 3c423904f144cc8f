#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// The excitation of squeeze-excite, from the per-channel means s[n][c] (global average pool) to the gates:
//   h[j]    = act(b1[j] + sum_c w1[j][c] * s[n][c])        j < R (reduced channels)
//   gate[c] = sigmoid(b2[c] + sum_j w2[c][j] * h[j])      c < C
// One workgroup per image; h lives in shared memory between the two layers.
// With VEC4_FC1 (C % 4 == 0) s and w1 are RGBA32F views, with VEC4_FC2 (R % 4 == 0) w2 is: four multiply-adds a fetch.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_RELU;  // inside SE: ReLU for BossNet, SiLU for MBConv
layout(constant_id = 2) const bool VEC4_FC1 = false;
layout(constant_id = 3) const bool VEC4_FC2 = false;

const uint MAX_REDUCED = 1024u;

INPUT(0, s)  // [N][C] channel means, RGBA32F or R32F (see VEC4_FC1)
INPUT(1, w1)  // [R][C], like s
INPUT_SMALL(2, b1)  // R32F, [R]
INPUT(3, w2)  // [C][R], RGBA32F or R32F (see VEC4_FC2)
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
        if (VEC4_FC1) {
            vec4 sum4 = vec4(0.0);
            for (int c4 = 0; c4 < int(p.channels / 4u); ++c4) sum4 += LOAD4(w1, row / 4 + c4) * LOAD4(s, means / 4 + c4);
            sum += (sum4.x + sum4.y) + (sum4.z + sum4.w);
        } else {
            for (uint c = 0u; c < p.channels; ++c) sum += LOAD1(w1, row + int(c)) * LOAD1(s, means + int(c));
        }
        hidden[j] = activate(sum, ACTIVATION);
    }
    barrier();
    for (uint c = lane; c < p.channels; c += lanes) {
        float sum = LOAD_SMALL(b2, int(c));
        const int row = int(c * p.reduced);
        if (VEC4_FC2) {
            vec4 sum4 = vec4(0.0);
            for (int j4 = 0; j4 < int(p.reduced / 4u); ++j4) {
                const int j = 4 * j4;
                sum4 += LOAD4(w2, row / 4 + j4) * vec4(hidden[j], hidden[j + 1], hidden[j + 2], hidden[j + 3]);
            }
            sum += (sum4.x + sum4.y) + (sum4.z + sum4.w);
        } else {
            for (uint j = 0u; j < p.reduced; ++j) sum += LOAD1(w2, row + int(j)) * hidden[j];
        }
        STORE1(gate, means + int(c), activate(sum, ACT_SIGMOID));
    }
}
