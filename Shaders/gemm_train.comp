#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// @datapaths texel storage
// @variant vec4 VEC4_OPERANDS
// (Float32 on every path: the fp16 families run the storage build.)

// The strided, batched matrix product the training kernels build on:
//   C[b](m, n) = alpha * sum_k A[b](m, k) * B[b](k, n)  (+ C[b](m, n) where ACCUMULATE is 1)
// for m < M, n < N, k < K, b < gl_NumWorkGroups.z. Every operand is addressed by strides, so transposes, the
// channels of one image, or a reduction that runs over images and pixels at once need no copies: the reduction
// index k splits as (k / kInner, k % kInner) and the batch index b as (b / batchInner, b % batchInner), each part
// with a stride of its own (TrainingGEMM in Kernels/TrainingGEMM.swift builds them).
//
// Each invocation computes a register tile of 16 x 4 outputs (TILE_M x TILE_N), reading its operands straight from
// memory (no shared memory or barriers: on lavapipe those cost more than they save), four reduction steps at a time:
// B's four columns, then A's rows four at a time, each group used as it arrives.
// Each operand is fetched one of three ways (A_FETCH, B_FETCH; TrainingGEMM chooses where the layout allows):
//   FETCH_SCALAR     one value per fetch (any strides);
//   FETCH_REDUCTION  a vec4 of four consecutive reduction steps of one row or column (inner stride 1);
//   FETCH_FREE       a vec4 of four consecutive rows or columns at one reduction step (free stride 1).
// The vector fetches need every other stride and the base to be multiples of 4 (the binding is then read as vec4s:
// RGBA32F on the texel path). The four products of each group of steps are summed apart (a dot product) and then added
// to the total: blocked summation, whose rounding error grows far slower than one running sum's, as in the BLAS
// libraries PyTorch runs on. A reduction whose inner part is not a multiple of 4 ends each part with single steps
// (never with FETCH_REDUCTION). Rows and columns past the edge read the last valid one (the last whole group of four
// for FETCH_FREE) and are not stored. gemm_train_vec4 (VEC4_OPERANDS: both operands fetched four at a time) reads them
// as RGBA32F imageBuffers on the texel path, which lavapipe inlines where each texelFetch is a call. Tiles are spread
// over x and y (flat_invocation); each invocation loops about K / 4 times (lavapipe allows 65,535 iterations).

layout(local_size_x_id = 0) in;  // 64
layout(constant_id = 1) const uint ACCUMULATE = 0u;
layout(constant_id = 2) const uint A_FETCH = 0u;
layout(constant_id = 3) const uint B_FETCH = 0u;

#define FETCH_SCALAR 0u
#define FETCH_REDUCTION 1u
#define FETCH_FREE 2u
#define TILE_M 16u
#define TILE_N 4u

#if defined(VEC4_OPERANDS)
IMAGE_INPUT(0, a, rgba32f)
IMAGE_INPUT(1, b, rgba32f)
#define FETCH_VEC4(name, i) LOAD_IMAGE4(name, i)
#define FETCH_ONE(name, i) LOAD_IMAGE1(name, i)  // never reached: both operands are fetched as vec4s
#else
INPUT_F32(0, a)
INPUT_F32(1, b)
#define FETCH_VEC4(name, i) LOAD4(name, i)
#define FETCH_ONE(name, i) LOAD1(name, i)
#endif
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
// The element offset of each row of A and column of B at reduction step 0.
uint rowsA[TILE_M];
uint columnsB[TILE_N];

// Four reduction steps from offset k (inner stride `inner`) of the operand `name` fetched as `MODE`: OUT[i] holds
// steps 0..3 of row (or column) FIRST + i of the tile, for i < COUNT (a multiple of 4), whose offsets are in STARTS.
// (Its own names end in _, so that FIRST may name a loop variable of the caller.)
#define FETCH4(name, MODE, STARTS, FIRST, COUNT, k, inner, OUT)                                                        \
    if (MODE == FETCH_REDUCTION) {                                                                                     \
        [[unroll]] for (uint i_ = 0u; i_ < COUNT; ++i_) OUT[i_] = FETCH_VEC4(name, (STARTS[FIRST + i_] + k) >> 2u);    \
    } else if (MODE == FETCH_FREE) {                                                                                   \
        [[unroll]] for (uint g_ = 0u; g_ < COUNT; g_ += 4u) {                                                          \
            [[unroll]] for (uint s_ = 0u; s_ < 4u; ++s_) {                                                             \
                const vec4 v_ = FETCH_VEC4(name, (STARTS[FIRST + g_] + k + s_ * inner) >> 2u);                         \
                OUT[g_][s_] = v_.x; OUT[g_ + 1u][s_] = v_.y; OUT[g_ + 2u][s_] = v_.z; OUT[g_ + 3u][s_] = v_.w;         \
            }                                                                                                          \
        }                                                                                                              \
    } else {                                                                                                           \
        [[unroll]] for (uint i_ = 0u; i_ < COUNT; ++i_) {                                                              \
            const uint at_ = STARTS[FIRST + i_] + k;                                                                   \
            OUT[i_] = vec4(FETCH_ONE(name, at_), FETCH_ONE(name, at_ + inner), FETCH_ONE(name, at_ + 2u * inner),      \
                          FETCH_ONE(name, at_ + 3u * inner));                                                          \
        }                                                                                                              \
    }

// One reduction step (never FETCH_REDUCTION): OUT[i] is row (or column) i's value.
#define FETCH1(name, MODE, STARTS, COUNT, k, OUT)                                                                     \
    if (MODE == FETCH_FREE) {                                                                                         \
        [[unroll]] for (uint g = 0u; g < COUNT; g += 4u) {                                                            \
            const vec4 v = FETCH_VEC4(name, (STARTS[g] + k) >> 2u);                                                   \
            OUT[g] = v.x; OUT[g + 1u] = v.y; OUT[g + 2u] = v.z; OUT[g + 3u] = v.w;                                    \
        }                                                                                                             \
    } else {                                                                                                          \
        [[unroll]] for (uint i = 0u; i < COUNT; ++i) OUT[i] = FETCH_ONE(name, STARTS[i] + k);                         \
    }

// Four reduction steps: B's columns fetched once, A's rows four at a time, each group used at once (fewer values
// live than with the whole tile's rows fetched first).
void steps4(uint ka, uint kb) {
    vec4 y[TILE_N];
    FETCH4(b, B_FETCH, columnsB, 0u, TILE_N, kb, p.bInner, y)
    [[unroll]] for (uint g = 0u; g < TILE_M; g += 4u) {
        vec4 x[4];
        FETCH4(a, A_FETCH, rowsA, g, 4u, ka, p.aInner, x)
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            [[unroll]] for (uint j = 0u; j < TILE_N; ++j) acc[g + i][j] += dot(x[i], y[j]);
        }
    }
}

void step1(uint ka, uint kb) {
    float x[TILE_M];
    float y[TILE_N];
    FETCH1(a, A_FETCH, rowsA, TILE_M, ka, x)
    FETCH1(b, B_FETCH, columnsB, TILE_N, kb, y)
    [[unroll]] for (uint i = 0u; i < TILE_M; ++i) {
        [[unroll]] for (uint j = 0u; j < TILE_N; ++j) acc[i][j] += x[i] * y[j];
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
        [[unroll]] for (uint j = 0u; j < TILE_N; ++j) acc[i][j] = 0.0;
    }
    for (uint outer = 0u; outer * p.kInner < p.K; ++outer) {
        uint ka = outer * p.aOuter, kb = outer * p.bOuter, inner = 0u;
        for (; inner + 4u <= p.kInner; inner += 4u) {
            steps4(ka, kb);
            ka += 4u * p.aInner;
            kb += 4u * p.bInner;
        }
        for (; inner < p.kInner; ++inner) {
            step1(ka, kb);
            ka += p.aInner;
            kb += p.bInner;
        }
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
