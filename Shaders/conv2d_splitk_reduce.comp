#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

// @datapaths storage fp16
// (No texel-buffer build: no family runs this kernel on the texel path.)

// Second pass of a split-K convolution (conv2d_tiled_splitk writes the partial sums): adds the splits and applies
// the fused epilogue,
//   y[n][m][p] = epilogue( sum_{z < splits} partial[z][m][col] ),   col = n * pixels + p,
// i.e. act(sum * scale[m] + shift[m]) or, with HAS_RESIDUAL, act(sum * scale[m] + shift[m] + residual[n][m][p]).
// partial is float32 [splits][M][columns] (columns = batch * pixels, pixels = output pixels per image); y and residual
// are NCHW [batch][M][pixels], element (n * M + m) * pixels + p.
// One invocation per output element, in y's order (consecutive invocations read consecutive columns).
// Grid: ceil(M * columns / workgroup size) workgroups, spread over x and y (flat_invocation()).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ACTIVATION = ACT_IDENTITY;
layout(constant_id = 2) const bool HAS_RESIDUAL = false;

INPUT_F32(0, partial)  // R32F, [splits][M][columns]
INPUT_SMALL(1, affine)  // R32F, scale[0..M) then shift[0..M)
INPUT(2, residual)  // R32F, same shape as y (bound to something else when unused)
OUTPUT(3, y)  // [batch][M][pixels]

layout(push_constant) uniform Push {
    uint out_channels;  // M
    uint columns;  // batch * pixels
    uint pixels;  // output pixels per image
    uint splits;
} p;

void main() {
    const uint o = flat_invocation();
    const uint M = p.out_channels;
    if (o >= M * p.columns) return;
    const uint per_image = M * p.pixels;
    const uint n = o / per_image, r = o % per_image;
    const uint m = r / p.pixels, pixel = r % p.pixels;
    const uint col = n * p.pixels + pixel;
    const uint split_stride = M * p.columns;

    float sum = 0.0;
    uint at = m * p.columns + col;
    for (uint z = 0u; z < p.splits; ++z, at += split_stride) sum += LOAD1(partial, int(at));

    const float scale = LOAD_SMALL(affine, int(m));
    const float shift = LOAD_SMALL(affine, int(M + m));
    const float res = HAS_RESIDUAL ? LOAD1(residual, int(o)) : 0.0;
    STORE1(y, o, epilogue(sum, scale, shift, res, HAS_RESIDUAL, ACTIVATION));
}
