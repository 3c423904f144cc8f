// Helpers shared by every kernel. Included with #include "common.glsl".
#ifndef BOSSNET_COMMON_GLSL
#define BOSSNET_COMMON_GLSL

// Data paths. ShaderEmbed builds every kernel three times, and the planner picks one per dispatch:
//   <name>          reads through uniform texel buffers (samplerBuffer): the fast path on lavapipe, but a view may
//                   hold no more than maxTexelBufferElements texels (65,536 on the smallest devices);
//   <name>_storage  reads through storage buffers (STORAGE_BUFFERS), limited only by maxStorageBufferRange;
//   <name>_fp16     storage buffers of 16-bit floats (STORAGE_BUFFERS and FP16_STORAGE) for activations and weights,
//                   float32 arithmetic; needs storageBuffer16BitAccess.
// Kernels declare their buffers with INPUT / OUTPUT (activations and weights: 16-bit on the fp16 path) or
// INPUT_F32 / OUTPUT_F32 (always float32: softmax statistics), and touch them only through LOAD1 / LOAD4 (one value,
// or the i-th group of four) and STORE1 / STORE4. Each binding may be read both ways; the host binds a texel view of
// the matching format (R32F for LOAD1, RGBA32F for LOAD4) on the texel path.
// One binding seen two ways: element by element (name_s) and four at a time (name_v).
#define BUFFER_PAIR(access, b, name, T, T4) \
    layout(binding = b) access buffer name##_Scalars { T name##_s[]; }; \
    layout(binding = b) access buffer name##_Vectors { T4 name##_v[]; };
#if defined(STORAGE_BUFFERS)
#if defined(FP16_STORAGE)
#extension GL_EXT_shader_16bit_storage : require
#define ELEMENT float16_t
#define ELEMENT4 f16vec4
#else
#define ELEMENT float
#define ELEMENT4 vec4
#endif
#define INPUT(b, name) BUFFER_PAIR(readonly, b, name, ELEMENT, ELEMENT4)
#define INPUT_F32(b, name) BUFFER_PAIR(readonly, b, name, float, vec4)
#define LOAD1(name, i) float(name##_s[i])
#define LOAD4(name, i) vec4(name##_v[i])
#else
#define ELEMENT float
#define ELEMENT4 vec4
#define INPUT(b, name) layout(binding = b) uniform samplerBuffer name;
#define INPUT_F32(b, name) layout(binding = b) uniform samplerBuffer name;
#define LOAD1(name, i) texelFetch(name, int(i)).x
#define LOAD4(name, i) texelFetch(name, int(i))
#endif
// Small per-channel arrays (a folded BatchNorm's scale and shift, biases: at most a few thousand values) are float32
// texel buffers on every path: the spec guarantees only 4 storage buffers per shader stage, and with them every kernel
// keeps its storage buffers to 4 (16 texel buffers are guaranteed).
#define INPUT_SMALL(b, name) layout(binding = b) uniform samplerBuffer name;
#define LOAD_SMALL(name, i) texelFetch(name, int(i)).x
#define OUTPUT(b, name) BUFFER_PAIR(writeonly, b, name, ELEMENT, ELEMENT4)
#define OUTPUT_F32(b, name) BUFFER_PAIR(writeonly, b, name, float, vec4)
#define STORE1(name, i, value) name##_s[i] = ELEMENT(value)
#define STORE4(name, i, value) name##_v[i] = ELEMENT4(value)
#define STORE1_F32(name, i, value) name##_s[i] = float(value)

// Inputs read through storage texel buffers (imageBuffer of a fixed format: r32f or rgba32f) on the texel path, and
// storage buffers on the others: lavapipe inlines imageLoad, where every texelFetch is a call (and a call amid the
// multiply-adds makes its compiler save and restore every live register). The host binds them with readImage.
#if defined(STORAGE_BUFFERS)
#define IMAGE_INPUT(b, name, format) INPUT(b, name)
#define LOAD_IMAGE1(name, i) LOAD1(name, i)
#define LOAD_IMAGE4(name, i) LOAD4(name, i)
#else
#define IMAGE_INPUT(b, name, format) layout(binding = b, format) uniform readonly imageBuffer name;
#define LOAD_IMAGE1(name, i) imageLoad(name, int(i)).x
#define LOAD_IMAGE4(name, i) imageLoad(name, int(i))
#endif
// The packed weights of the register-tiled kernels (pointwise, conv2d): blocks of WEIGHT_BLOCK output channels, each
// [K][WEIGHT_BLOCK / 4] vec4s (GEMMWeights in Epilogue.swift), so that a workgroup's weights are one contiguous range.
#define WEIGHTS(b, name) IMAGE_INPUT(b, name, rgba32f)
#define LOAD_WEIGHTS4(name, i) LOAD_IMAGE4(name, i)
#define WEIGHT_BLOCK 32u
// The vec4 of output channels m .. m + 3 (m a multiple of 4) at reduction step k of K; step k + 1 is WEIGHT_BLOCK / 4
// vec4s on.
#define WEIGHT_INDEX(k, m, K) int(((m) / WEIGHT_BLOCK * (K) + (k)) * (WEIGHT_BLOCK / 4u) + (m) % WEIGHT_BLOCK / 4u)

// The register tiles of the GEMM-like kernels (pointwise, conv2d): acc[0 .. ROWS) += weights * XV, one reduction
// step, where WQ (an expression of q_) is the vec4 q_ of the step's ROWS / 4 vec4s of weights (ROWS, a
// specialization constant, is the tile's output channels; the kernel includes GL_EXT_control_flow_attributes).
#define ACCUMULATE_WITH(WQ, XV)                                                                                        \
    [[unroll]] for (uint q_ = 0u; q_ < ROWS / 4u; ++q_) {                                                            \
        const vec4 wq_ = WQ;                                                                                         \
        acc[4u * q_] += wq_.x * (XV); acc[4u * q_ + 1u] += wq_.y * (XV);                                             \
        acc[4u * q_ + 2u] += wq_.z * (XV); acc[4u * q_ + 3u] += wq_.w * (XV);                                        \
    }

// Each lane fetching the step's weights: the packed vec4s starting at START.
#define ACCUMULATE_ROWS(W, START, XV) ACCUMULATE_WITH(LOAD_WEIGHTS4(W, (START) + int(q_)), XV)

// The weights already fetched across the first 8 lanes of the subgroup (SHUFFLE_WEIGHTS kernels): lane FIRST + q
// holds the step's vec4 q, and it reaches every lane by a shuffle. Weights are the same for every lane of a
// workgroup, so the lanes fetch 8 different vec4s at once (8 / (ROWS / 4) reduction steps) and share them, instead of
// each lane fetching the same ROWS / 4: on lavapipe a fetch is per lane and a constant-index shuffle is one
// instruction.
#define ACCUMULATE_SHUFFLED(WV, FIRST, XV) ACCUMULATE_WITH(subgroupShuffle(WV, (FIRST) + q_), XV)

// Activation codes; the Swift mirror is Kernels.Activation.
#define ACT_IDENTITY 0u
#define ACT_RELU 1u
#define ACT_SILU 2u
#define ACT_SIGMOID 3u

// sigmoid(x) = 1 / (1 + e^-x); silu(x) = x * sigmoid(x).
float activate(float x, uint act) {
    if (act == ACT_RELU) return max(x, 0.0);
    if (act == ACT_SILU) return x / (1.0 + exp(-x));
    if (act == ACT_SIGMOID) return 1.0 / (1.0 + exp(-x));
    return x;
}

vec4 activate(vec4 x, uint act) {
    if (act == ACT_RELU) return max(x, vec4(0.0));
    if (act == ACT_SILU) return x / (vec4(1.0) + exp(-x));
    if (act == ACT_SIGMOID) return vec4(1.0) / (vec4(1.0) + exp(-x));
    return x;
}

// d act(x) / dx, as Kernels.Activation.derivative computes it.
float activation_derivative(float x, uint act) {
    if (act == ACT_RELU) return x > 0.0 ? 1.0 : 0.0;
    const float s = 1.0 / (1.0 + exp(-x));
    if (act == ACT_SILU) return s * (1.0 + x * (1.0 - s));
    if (act == ACT_SIGMOID) return s * (1.0 - s);
    return 1.0;
}

// The lanes' partial sums in `partial` (one per lane of a workgroup of a power of two lanes) added in shared memory
// into partial[0]; every lane must call it, and may read partial[0] after.
#define WORKGROUP_SUM(partial, lane, lanes)                                                                           \
    barrier();                                                                                                       \
    for (uint half_ = (lanes) / 2u; half_ > 0u; half_ /= 2u) {                                                       \
        if ((lane) < half_) partial[lane] += partial[(lane) + half_];                                                \
        barrier();                                                                                                   \
    }

// Runs BODY once for each of channel c's values over the batch and the pixels, spread over the workgroup's lanes: lane
// l visits values l, l + lanes, ... of the batch x pixels of them, image by image, with `at` the value's index in an
// NCHW tensor ((n * channels + c) * pixels + q; BODY may read n_ and q_ too). Every lane is busy whatever the pixels
// per image (one, in a 1x1 stage), and no value needs a division: the lane steps its image and pixel and carries.
#define FOR_CHANNEL_VALUES(c, batch, channels, pixels, lane, lanes, BODY)                                             \
    {                                                                                                                \
        const uint imageStep_ = (lanes) / (pixels), pixelStep_ = (lanes) % (pixels);                                 \
        uint n_ = (lane) / (pixels), q_ = (lane) % (pixels);                                                         \
        while (n_ < (batch)) {                                                                                       \
            const uint at = (n_ * (channels) + (c)) * (pixels) + q_;                                                 \
            BODY                                                                                                     \
            q_ += pixelStep_;                                                                                        \
            n_ += imageStep_;                                                                                        \
            if (q_ >= (pixels)) {                                                                                    \
                q_ -= (pixels);                                                                                      \
                ++n_;                                                                                                \
            }                                                                                                        \
        }                                                                                                            \
    }

// The elementwise training kernels' invocations each take ELEMENTS_PER_INVOCATION consecutive elements of an NCHW
// tensor of `count` elements with `channels` channels of `pixels` values: FOR_CHANNEL_RUN runs BODY for each with
// `index` its index and `c` its channel, running LOAD_CHANNEL (which loads what BODY needs of channel c) first and
// again wherever the channel changes, so that per-channel values are read and the channel found (one division) once
// per invocation, not per element.
#define ELEMENTS_PER_INVOCATION 4u
#define FOR_CHANNEL_RUN(count, channels, pixels, LOAD_CHANNEL, BODY)                                                 \
    {                                                                                                                \
        const uint first_ = flat_invocation() * ELEMENTS_PER_INVOCATION;                                             \
        uint c = (first_ / (pixels)) % (channels), q_ = first_ % (pixels);                                           \
        LOAD_CHANNEL                                                                                                 \
        for (uint index = first_; index < min(first_ + ELEMENTS_PER_INVOCATION, (count)); ++index) {                 \
            if (q_ == (pixels)) {                                                                                    \
                q_ = 0u;                                                                                             \
                c = c + 1u == (channels) ? 0u : c + 1u;                                                              \
                LOAD_CHANNEL                                                                                         \
            }                                                                                                        \
            BODY                                                                                                     \
            ++q_;                                                                                                    \
        }                                                                                                            \
    }

// The train-mode BatchNorm of the epilogue kernels (epilogue_forward.comp, epilogue_backward.comp: bindings
// statistics, gamma and beta, push constants channels and epsilon) inside FOR_CHANNEL_RUN: LOAD_NORMALISATION
// loads channel c's mean, 1 / sqrt(var + eps), gamma and beta into float mean, inverse, scale and shift, and
// NORMALISED(v) is gamma (v - mean) / sqrt(var + eps) + beta; both are empty without BATCHNORM.
#if defined(BATCHNORM)
#define LOAD_NORMALISATION                                                                                           \
    mean = LOAD_SMALL(statistics, c);                                                                                \
    inverse = inversesqrt(LOAD_SMALL(statistics, p.channels + c) + p.epsilon);                                       \
    scale = LOAD_SMALL(gamma, c);                                                                                    \
    shift = LOAD_SMALL(beta, c);
#define NORMALISED(v) (((v) - mean) * inverse * scale + shift)
#else
#define LOAD_NORMALISATION
#define NORMALISED(v) (v)
#endif

// Index of this invocation when a 1-D range of work is dispatched as a 2-D grid of workgroups (the host splits the
// groups over x and y because many devices allow only 65535 workgroups per dimension). A macro, not a function: a
// function defined here, before the kernel's `layout(local_size_x_id = ...) in`, sees gl_WorkGroupSize as (1, 1, 1),
// and every row of groups past the first then lands on the wrong elements.
#define flat_invocation() (gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x)

// The fused epilogue of every producing kernel: per-channel scale and shift (a folded BatchNorm, or a bias), then
// either act(v) or, with a residual, act(v + residual).
float epilogue(float acc, float scale, float shift, float residual_value, bool has_residual, uint act) {
    float v = acc * scale + shift;
    return activate(has_residual ? v + residual_value : v, act);
}

vec4 epilogue(vec4 acc, float scale, float shift, vec4 residual_value, bool has_residual, uint act) {
    vec4 v = acc * scale + shift;
    return activate(has_residual ? v + residual_value : v, act);
}

#endif
