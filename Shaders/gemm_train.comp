#version 450
#extension GL_EXT_control_flow_attributes : require

// @datapaths storage
// (Training kernels read and write float32 storage buffers on every family.)

// The strided, batched matrix product the training kernels build on:
//   C[b](m, n) = alpha * sum_k A[b](m, k) * B[b](k, n)  (+ C[b](m, n) where ACCUMULATE is 1)
// for m < M, n < N, k < K, b < gl_NumWorkGroups.z. Every operand is addressed by strides, so transposes, the
// channels of one image, or a reduction that runs over images and pixels at once need no copies: the reduction
// index k splits as (k / kInner, k % kInner) and the batch index b as (b / batchInner, b % batchInner), each part
// with a stride of its own (TrainingGEMM in Kernels/TrainingGEMM.swift builds them).
// Tiles of 16 x 16 outputs per workgroup of 64 invocations, 2 x 2 outputs each; the operands pass through shared
// memory 16 reduction steps at a time, so each invocation loops K / 16 times (lavapipe allows 65,535 iterations).

layout(local_size_x_id = 0) in;  // 64
layout(constant_id = 1) const uint ACCUMULATE = 0u;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) buffer C { float c[]; };

// Each operand's strides (a*, b*): along its free dimension (m for A, n for B), along the reduction's inner and outer
// parts, and over the batch's inner and outer parts, plus the offset of its first element; C's by row and column.
layout(push_constant) uniform Push {
    uint M, N, K, kInner, batchInner;
    float alpha;
    uint aFree, aInner, aOuter, aBatchInner, aBatchOuter, aBase;
    uint bFree, bInner, bOuter, bBatchInner, bBatchOuter, bBase;
    uint cRow, cColumn, cBatchInner, cBatchOuter, cBase;
} p;

shared float tileA[16][17];  // [m][k]
shared float tileB[16][17];  // [k][n]

uint batchOffset(uint base, uint inner, uint outer, uint batch) {
    return base + (batch / p.batchInner) * outer + (batch % p.batchInner) * inner;
}

void main() {
    const uint lane = gl_LocalInvocationID.x;
    const uint batch = gl_WorkGroupID.z;
    const uint m0 = gl_WorkGroupID.y * 16u, n0 = gl_WorkGroupID.x * 16u;
    const uint row = (lane / 8u) * 2u, column = (lane % 8u) * 2u;
    const uint aBase = batchOffset(p.aBase, p.aBatchInner, p.aBatchOuter, batch);
    const uint bBase = batchOffset(p.bBase, p.bBatchInner, p.bBatchOuter, batch);
    float acc[2][2] = float[2][2](float[2](0.0, 0.0), float[2](0.0, 0.0));
    for (uint k0 = 0u; k0 < p.K; k0 += 16u) {
        [[unroll]] for (uint e = 0u; e < 4u; ++e) {
            const uint item = lane + 64u * e, r = item / 16u, q = item % 16u;
            const uint am = m0 + r, ak = k0 + q;
            const uint aIndex = aBase + am * p.aFree + (ak / p.kInner) * p.aOuter + (ak % p.kInner) * p.aInner;
            tileA[r][q] = (am < p.M && ak < p.K) ? a[aIndex] : 0.0;
            const uint bk = k0 + r, bn = n0 + q;
            const uint bIndex = bBase + bn * p.bFree + (bk / p.kInner) * p.bOuter + (bk % p.kInner) * p.bInner;
            tileB[r][q] = (bk < p.K && bn < p.N) ? b[bIndex] : 0.0;
        }
        barrier();
        [[unroll]] for (uint k = 0u; k < 16u; ++k) {
            const float a0 = tileA[row][k], a1 = tileA[row + 1u][k];
            const float b0 = tileB[k][column], b1 = tileB[k][column + 1u];
            acc[0][0] += a0 * b0; acc[0][1] += a0 * b1;
            acc[1][0] += a1 * b0; acc[1][1] += a1 * b1;
        }
        barrier();
    }
    const uint cBase = batchOffset(p.cBase, p.cBatchInner, p.cBatchOuter, batch);
    [[unroll]] for (uint i = 0u; i < 2u; ++i) {
        [[unroll]] for (uint j = 0u; j < 2u; ++j) {
            const uint m = m0 + row + i, n = n0 + column + j;
            if (m >= p.M || n >= p.N) continue;
            const uint index = cBase + m * p.cRow + n * p.cColumn;
            c[index] = p.alpha * acc[i][j] + (ACCUMULATE == 1u ? c[index] : 0.0);
        }
    }
}
