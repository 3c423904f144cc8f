#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths storage
// (Training kernels read and write float32 storage buffers on every family.)

// The strided, batched matrix product the training kernels build on:
//   C[b](m, n) = alpha * sum_k A[b](m, k) * B[b](k, n)  (+ C[b](m, n) where ACCUMULATE is 1)
// for m < M, n < N, k < K, b < gl_NumWorkGroups.z. Every operand is addressed by strides, so transposes, the
// channels of one image, or a reduction that runs over images and pixels at once need no copies: the reduction
// index k splits as (k / kInner, k % kInner) and the batch index b as (b / batchInner, b % batchInner), each part
// with a stride of its own (TrainingGEMM in Kernels/TrainingGEMM.swift builds them).
// Each invocation computes a register tile of 8 x 4 outputs (TILE_M x TILE_N), reading its 8 + 4 operands per
// reduction step straight from memory (no shared memory or barriers: on lavapipe those cost more than they save),
// four steps an iteration; tiles are spread over x and y (flat_invocation). Rows and columns past the edge read the
// last valid one and are not stored. Each invocation loops about K / 4 times (lavapipe allows 65,535 iterations).
// The products of each group of four steps are summed apart and then added to the total (blocked summation: the
// rounding error grows far slower than with one running sum, as in the BLAS libraries PyTorch runs on).

layout(local_size_x_id = 0) in;  // 64
layout(constant_id = 1) const uint ACCUMULATE = 0u;

#define TILE_M 8u
#define TILE_N 4u

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

uint batchOffset(uint base, uint inner, uint outer, uint batch) {
    return base + (batch / p.batchInner) * outer + (batch % p.batchInner) * inner;
}

float acc[TILE_M][TILE_N];
float part[TILE_M][TILE_N];
uint rowsA[TILE_M];
uint columnsB[TILE_N];

// One reduction step at offsets ka (into A) and kb (into B).
void step(uint ka, uint kb) {
    float x[TILE_M];
    float y[TILE_N];
    [[unroll]] for (uint i = 0u; i < TILE_M; ++i) x[i] = a[rowsA[i] + ka];
    [[unroll]] for (uint j = 0u; j < TILE_N; ++j) y[j] = b[columnsB[j] + kb];
    [[unroll]] for (uint i = 0u; i < TILE_M; ++i) {
        [[unroll]] for (uint j = 0u; j < TILE_N; ++j) part[i][j] += x[i] * y[j];
    }
}

void flush() {
    [[unroll]] for (uint i = 0u; i < TILE_M; ++i) {
        [[unroll]] for (uint j = 0u; j < TILE_N; ++j) {
            acc[i][j] += part[i][j];
            part[i][j] = 0.0;
        }
    }
}

void main() {
    const uint tiles = (p.N + TILE_N - 1u) / TILE_N;
    const uint tile = flat_invocation();
    if (tile >= tiles * ((p.M + TILE_M - 1u) / TILE_M)) return;
    const uint batch = gl_WorkGroupID.z;
    const uint m0 = (tile / tiles) * TILE_M, n0 = (tile % tiles) * TILE_N;
    const uint aBase = batchOffset(p.aBase, p.aBatchInner, p.aBatchOuter, batch);
    const uint bBase = batchOffset(p.bBase, p.bBatchInner, p.bBatchOuter, batch);
    [[unroll]] for (uint i = 0u; i < TILE_M; ++i) rowsA[i] = aBase + min(m0 + i, p.M - 1u) * p.aFree;
    [[unroll]] for (uint j = 0u; j < TILE_N; ++j) columnsB[j] = bBase + min(n0 + j, p.N - 1u) * p.bFree;
    [[unroll]] for (uint i = 0u; i < TILE_M; ++i) {
        [[unroll]] for (uint j = 0u; j < TILE_N; ++j) {
            acc[i][j] = 0.0;
            part[i][j] = 0.0;
        }
    }
    for (uint outer = 0u; outer * p.kInner < p.K; ++outer) {
        uint ka = outer * p.aOuter, kb = outer * p.bOuter, inner = 0u;
        for (; inner + 4u <= p.kInner; inner += 4u) {
            step(ka, kb);
            step(ka + p.aInner, kb + p.bInner);
            step(ka + 2u * p.aInner, kb + 2u * p.bInner);
            step(ka + 3u * p.aInner, kb + 3u * p.bInner);
            ka += 4u * p.aInner;
            kb += 4u * p.bInner;
            flush();
        }
        for (; inner < p.kInner; ++inner) {
            step(ka, kb);
            ka += p.aInner;
            kb += p.bInner;
        }
        flush();
    }
    const uint cBase = batchOffset(p.cBase, p.cBatchInner, p.cBatchOuter, batch);
    [[unroll]] for (uint i = 0u; i < TILE_M; ++i) {
        [[unroll]] for (uint j = 0u; j < TILE_N; ++j) {
            const uint m = m0 + i, n = n0 + j;
            if (m >= p.M || n >= p.N) continue;
            const uint index = cBase + m * p.cRow + n * p.cColumn;
            c[index] = p.alpha * acc[i][j] + (ACCUMULATE == 1u ? c[index] : 0.0);
        }
    }
}
