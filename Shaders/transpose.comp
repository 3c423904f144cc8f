#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths texel storage

// A batch of matrices transposed: y[z][c][r] = x[base + z * rows * columns + r * columns + c] for r < rows,
// c < columns, z < batch. The training products read an operand so where its own layout would be fetched one value
// at a time (a 7x7 stage's planes of 49 pixels: TransposedPlanes in Kernels/TrainingGEMM.swift). One invocation per
// element of y: r along x, c the workgroup's y, z its z (no division); the writes are consecutive, the reads gathered.

layout(local_size_x_id = 0) in;

INPUT_F32(0, x)
layout(binding = 1) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint batch, rows, columns, base;
} p;

void main() {
    const uint r = gl_GlobalInvocationID.x, c = gl_WorkGroupID.y, z = gl_WorkGroupID.z;
    if (r >= p.rows) return;
    y[(z * p.columns + c) * p.rows + r] = LOAD1(x, p.base + (z * p.rows + r) * p.columns + c);
}
