#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_NV_cooperative_matrix : require
#include "common.glsl"

// @datapaths storage fp16
// (No texel-buffer build: no family runs this kernel on the texel path.)

// Compile (each data path; glslang 12 has GL_NV_cooperative_matrix but not GL_KHR_cooperative_matrix):
//   glslangValidator -V --target-env vulkan1.1 -IShaders [-DSTORAGE_BUFFERS [-DFP16_STORAGE]] Shaders/conv2d_coopmat.comp -o conv2d_coopmat.spv
//   spirv-val --target-env vulkan1.1 conv2d_coopmat.spv
// All three data paths compile and validate (the tiles are converted to float16_t on their way into shared memory, so
// the buffers' element type does not matter). Device requirements: VK_NV_cooperative_matrix with cooperativeMatrix
// and a 16x16x16 fp16 x fp16 + fp32 -> fp32 subgroup-scope shape (vkGetPhysicalDeviceCooperativeMatrixPropertiesNV),
// shaderFloat16 (Float16 capability), subgroup basic operations in compute, subgroup size 32 (NVIDIA); plus
// storageBuffer16BitAccess on the fp16 path.
//
// Pointwise (1x1, stride 1, no padding) convolution and the linear layer as a GEMM on cooperative matrices, with the
// fused epilogue of pointwise.comp:
//   y[n][m][p] = epilogue( sum_c w[m][c] * x[n][c][p] )      for p < pixels (= H * W, 1 for linear)
// GEMM view: rows m < M = out_channels, columns col = n * pixels + p < batch * pixels, k = c < in_channels.
// Workgroup (X, Y) computes the 64 x 64 output tile rows [Y*64, +64) x columns [X*64, +64). It has 4 subgroups of 32
// lanes (workgroup size 128 = constant 0; the host must use this kernel only when subgroupSize is 32, so that
// gl_NumSubgroups is 4); subgroup s owns the 32 x 32 quadrant rows 32*(s / 2), columns 32*(s % 2): 2 x 2 fragments of
// 16 x 16 float32 accumulators.
// For each 16-slice of k, the workgroup copies A = w (16 k x 64 m, one vec4 = four channels a fetch) and B = x (16 k x
// 64 columns) into shared memory as float16_t (zero past M / K / the last column), barrier, then each subgroup does
// acc[i][j] += A[i] * B[j] with 16x16x16 fp16 fragments (A read column-major from As[k][m], B row-major from Bs[k][col]).
// After the last slice each subgroup stores one accumulator fragment at a time into its own 16 x 16 float32 patch of
// shared memory, and its 32 lanes apply the epilogue to the patch's 256 values (8 each) and store them.
// Layouts: as pointwise.comp. x NCHW (R32F, LOAD1); w packed [C][Mpad] (Mpad = M rounded up to 8, zero-filled) read
// as the vec4 of channels 4q .. 4q+3 at c * m_vec4 + q (RGBA32F, LOAD4); affine = scale[0..M) then shift[0..M);
// residual has y's shape (read only when HAS_RESIDUAL); y [batch][M][pixels].
// Shared memory: As 16*64*2 + Bs 16*64*2 + 4 patches 16*16*4 = 2048 + 2048 + 4096 = 8192 bytes.
// Grid: x = ceil(batch * pixels / 64), y = ceil(M / 64).

layout(local_size_x_id = 0) in;  // must be 128: 4 subgroups of 32
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const bool HAS_RESIDUAL = false;

INPUT(0, x)  // R32F, NCHW input
INPUT(1, w)  // RGBA32F, packed weights [C][Mpad]
INPUT_SMALL(2, affine)  // R32F, scale[0..M) then shift[0..M)
INPUT(3, residual)  // R32F, same shape as y (bound to x when unused)
OUTPUT(4, y)  // [batch][M][pixels]

layout(push_constant) uniform Push {
    uint batch, in_channels, pixels, out_channels;
    uint m_vec4;  // Mpad / 4
} p;

const uint BM = 64u, BN = 64u, BK = 16u;  // workgroup tile
const uint F = 16u;  // fragment side
const uint LANES = 128u;
const uint SUBGROUP = 32u;

shared float16_t As[BK * BM];  // As[kk * BM + mm] = w[m0 + mm][k0 + kk]  (A column-major, leading dimension BM)
shared float16_t Bs[BK * BN];  // Bs[kk * BN + nn] = x-column (col0 + nn) at channel k0 + kk  (B row-major)
shared float Cs[4u * F * F];  // one 16 x 16 patch per subgroup, row-major

void main() {
    const uint lane = gl_LocalInvocationID.x;
    const uint M = p.out_channels;
    const uint columns = p.batch * p.pixels;
    const uint K = p.in_channels;
    const uint m0 = gl_WorkGroupID.y * BM;
    const uint col0 = gl_WorkGroupID.x * BN;

    // The column of B this lane gathers (rows b_row, b_row + 2, ..., b_row + 14 of each slice).
    const uint b_col = lane % BN, b_row = lane / BN;
    const uint gather_col = col0 + b_col;
    const bool gather_valid = gather_col < columns;
    const uint gather_base = gather_valid ? (gather_col / p.pixels) * K * p.pixels + gather_col % p.pixels : 0u;

    const uint subgroup = gl_SubgroupID;
    const uint sub_row = (subgroup / 2u) * 32u, sub_col = (subgroup % 2u) * 32u;
    fcoopmatNV<32, gl_ScopeSubgroup, F, F> acc[2][2];
    [[unroll]] for (uint i = 0u; i < 2u; ++i) {
        [[unroll]] for (uint j = 0u; j < 2u; ++j) acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, F, F>(0.0);
    }

    for (uint k0 = 0u; k0 < K; k0 += BK) {
        // A: 16 x 64 weights = 256 vec4s, two per lane.
        [[unroll]] for (uint u = 0u; u < 2u; ++u) {
            const uint v = lane + u * LANES;
            const uint kk = v / (BM / 4u), mm = (v % (BM / 4u)) * 4u;
            const uint k = k0 + kk, q = (m0 + mm) / 4u;
            const bool inside = k < K && q < p.m_vec4;
            const vec4 value = LOAD4(w, inside ? int(k * p.m_vec4 + q) : 0);
            const f16vec4 a = f16vec4(inside ? value : vec4(0.0));
            As[kk * BM + mm] = a.x;
            As[kk * BM + mm + 1u] = a.y;
            As[kk * BM + mm + 2u] = a.z;
            As[kk * BM + mm + 3u] = a.w;
        }
        // B: 16 x 64 values, eight per lane.
        [[unroll]] for (uint u = 0u; u < BK * BN / LANES; ++u) {
            const uint kk = b_row + u * (LANES / BN);
            const uint k = k0 + kk;
            const bool inside = gather_valid && k < K;
            const float value = LOAD1(x, inside ? int(gather_base + k * p.pixels) : 0);
            Bs[kk * BN + b_col] = float16_t(inside ? value : 0.0);
        }
        barrier();

        fcoopmatNV<16, gl_ScopeSubgroup, F, F> a[2], b[2];
        [[unroll]] for (uint i = 0u; i < 2u; ++i) coopMatLoadNV(a[i], As, sub_row + i * F, BM, true);
        [[unroll]] for (uint j = 0u; j < 2u; ++j) coopMatLoadNV(b[j], Bs, sub_col + j * F, BN, false);
        [[unroll]] for (uint i = 0u; i < 2u; ++i) {
            [[unroll]] for (uint j = 0u; j < 2u; ++j) acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
        }
        barrier();
    }

    // Epilogue: one fragment at a time through this subgroup's patch of shared memory.
    const uint patch_base = subgroup * F * F;
    const uint sub_lane = gl_SubgroupInvocationID;
    [[unroll]] for (uint i = 0u; i < 2u; ++i) {
        [[unroll]] for (uint j = 0u; j < 2u; ++j) {
            coopMatStoreNV(acc[i][j], Cs, patch_base, F, false);
            subgroupBarrier();
            [[unroll]] for (uint e = 0u; e < F * F / SUBGROUP; ++e) {
                const uint t = sub_lane + e * SUBGROUP;  // patch element: row t / 16, column t % 16
                const uint m = m0 + sub_row + i * F + t / F;
                const uint col = col0 + sub_col + j * F + t % F;
                if (m < M && col < columns) {
                    const uint o = ((col / p.pixels) * M + m) * p.pixels + col % p.pixels;
                    const float scale = LOAD_SMALL(affine, int(m));
                    const float shift = LOAD_SMALL(affine, int(M + m));
                    const float res = HAS_RESIDUAL ? LOAD1(residual, int(o)) : 0.0;
                    STORE1(y, o, epilogue(Cs[patch_base + t], scale, shift, res, HAS_RESIDUAL, ACTIVATION));
                }
            }
            subgroupBarrier();  // the patch is read before the next fragment overwrites it
        }
    }
}
