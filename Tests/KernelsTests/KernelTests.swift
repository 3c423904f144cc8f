import Foundation
import Kernels
import TestSupport
import Testing
import VulkanCompute

/// Runs each check on a validated device with fresh random inputs in every kernel family (lavapipe has what each
/// needs), and expects it within that family's tolerance. `limits` emulates a smaller device; where `ran` is given,
/// every kernel a check ran must satisfy it (which variants the device gets).
private func expectAllPass(
    _ checks: [KernelCheck], families: [KernelFamily] = KernelFamily.allCases, limits: LimitsMode = .device,
    ran: ((String) -> Bool)? = nil
) throws {
    try withValidatedDevice(options: DeviceOptions(pipelineCacheDirectory: nil, limits: limits)) { device in
        let pipelines = KernelPipelines(device: device)
        for family in families {
            for check in checks {
                let seed = testSeed()
                let comparison = try check.run(on: device, pipelines: pipelines, seed: seed, family: family)
                #expect(
                    comparison.passes,
                    "\(family) \(check.op) \(check.shape) BOSSNET_TEST_SEED=\(seed): \(comparison) \(comparison.kernels)"
                )
                if let ran {
                    #expect(comparison.kernels.allSatisfy(ran), "\(family) \(check.shape): \(comparison.kernels)")
                }
            }
        }
    }
}

@Test("the tiled GEMM: every tile size, split-K on a long reduction over a small grid, edges of every tile")
func tiledGEMM() throws {
    var limits = DeviceLimits.vulkanMinimum
    limits.subgroupArithmetic = true
    let config = KernelConfig(family: .tiled, limits: limits)
    let small = Pointwise(batch: 1, inChannels: 19, pixels: 30, outChannels: 24)
    let medium = Pointwise(
        batch: 3, inChannels: 40, pixels: 25, outChannels: 60, epilogue: Epilogue(activation: .silu, hasResidual: true))
    let large = Pointwise(
        batch: 2, inChannels: 37, pixels: 100, outChannels: 130, epilogue: Epilogue(activation: .relu))
    let split = Conv2D(
        batch: 1, inChannels: 512, height: 2, width: 2, outChannels: 64, kernelSize: 3, padding: 1,
        epilogue: Epilogue(activation: .silu, hasResidual: true))
    #expect(small.asConvolution.tiled(config)?.tile == .small)
    #expect(medium.asConvolution.tiled(config)?.tile == .medium)
    #expect(large.asConvolution.tiled(config)?.tile == .large)
    #expect((split.tiled(config)?.splits ?? 1) > 1)
    // Under the spec's minimum limits every tile fits; a device with 64 invocations per workgroup gets none of the
    // 128-lane tiles.
    var tiny = limits
    tiny.maxComputeWorkGroupInvocations = 64
    #expect(large.asConvolution.tiled(KernelConfig(family: .tiled, limits: tiny))?.tile == .small)
    // Subgroups of 128 (some mobile GPUs): no 64-lane tile that would leave half of each subgroup idle.
    var wide = limits
    wide.subgroupSize = 128
    #expect(small.asConvolution.tiled(KernelConfig(family: .tiled, limits: wide))?.tile == .medium)
    #expect(KernelConfig(family: .tiled, limits: wide).lanes == 128 && config.lanes == 64)
    // The classifier at batch 1 and 4: a GEMV (with a residual and an activation, to exercise the epilogue).
    let gemv = Pointwise.linear(batch: 1, inFeatures: 2048, outFeatures: 1000)
    let gemv4 = Pointwise(
        batch: 4, inChannels: 37, pixels: 1, outChannels: 70, epilogue: Epilogue(activation: .silu, hasResidual: true))
    #expect(
        gemv.usesGEMV && gemv4.usesGEMV
            && !Pointwise(batch: 1, inChannels: 8, pixels: 2, outChannels: 8).usesGEMV)
    try expectAllPass(
        [small.check(), medium.check(), large.check(), split.check(), gemv.check(), gemv4.check()],
        families: [.tiled, .fp16, .fp16math])
}

@Test("conv2d matches the CPU reference: k 1/3/5/7, stride 1/2, odd sizes, batch 1 and 3")
func conv2d() throws {
    try expectAllPass(
        [
            Conv2D(
                batch: 1, inChannels: 3, height: 13, width: 11, outChannels: 10, kernelSize: 7, stride: 2, padding: 3,
                epilogue: Epilogue(activation: .relu)),
            Conv2D(
                batch: 3, inChannels: 5, height: 9, width: 9, outChannels: 17, kernelSize: 3, stride: 1, padding: 1,
                epilogue: Epilogue(activation: .relu, hasResidual: true)),
            Conv2D(
                batch: 1, inChannels: 4, height: 8, width: 7, outChannels: 9, kernelSize: 5, stride: 2, padding: 2,
                epilogue: Epilogue(activation: .silu)),
            Conv2D(
                batch: 2, inChannels: 7, height: 6, width: 5, outChannels: 8, kernelSize: 1, stride: 2, padding: 0,
                epilogue: Epilogue(activation: .sigmoid)),
            Conv2D(
                batch: 1, inChannels: 6, height: 15, width: 15, outChannels: 12, kernelSize: 3, stride: 2, padding: 1),
            // Multiples of 16 output channels: the 16-channel register tile (RegisterTiles).
            Conv2D(
                batch: 2, inChannels: 9, height: 7, width: 7, outChannels: 48, kernelSize: 3, stride: 1, padding: 1,
                epilogue: Epilogue(activation: .silu, hasResidual: true)),
            Conv2D(
                batch: 1, inChannels: 3, height: 17, width: 17, outChannels: 32, kernelSize: 7, stride: 2, padding: 3,
                epilogue: Epilogue(activation: .relu)),
            // Three blocks of packed weights (GEMMWeights), the last one half empty.
            Conv2D(
                batch: 1, inChannels: 4, height: 9, width: 9, outChannels: 80, kernelSize: 5, stride: 2, padding: 2,
                epilogue: Epilogue(activation: .relu)),
            // Output widths of whole tiles (the row-window path): the stem's 7x7 stride 2 over two images, a 5x5 at
            // stride 1, a 3x3 at stride 2 over three images, each with padding on every side.
            Conv2D(
                batch: 2, inChannels: 3, height: 16, width: 16, outChannels: 32, kernelSize: 7, stride: 2, padding: 3,
                epilogue: Epilogue(activation: .relu)),
            Conv2D(
                batch: 1, inChannels: 5, height: 12, width: 8, outChannels: 16, kernelSize: 5, stride: 1, padding: 2),
            Conv2D(
                batch: 3, inChannels: 4, height: 8, width: 16, outChannels: 8, kernelSize: 3, stride: 2, padding: 1,
                epilogue: Epilogue(activation: .silu, hasResidual: true)),
        ].map { $0.check() })
}

/// Checks for the kernels that share fetches across a subgroup by shuffles (conv2d_shuffle, pointwise_shuffle,
/// attention_rows_shuffle, attention_shuffle): two workgroups of columns, the second ragged (its last lanes past the
/// end still take part in the shuffles); 8-, 16- and 32-channel tiles (four, two and one reduction steps a fetch, an
/// odd window); token counts below 8 and past a multiple of 8.
private let shuffleChecks = [
    // (3x3 at stride 1 runs as Winograd, whose GEMMs are pointwise_shuffle; these run conv2d_shuffle.)
    Conv2D(
        batch: 1, inChannels: 5, height: 39, width: 39, outChannels: 16, kernelSize: 3, stride: 2, padding: 1,
        epilogue: Epilogue(activation: .relu, hasResidual: true)
    ).check(),
    Conv2D(batch: 2, inChannels: 3, height: 15, width: 15, outChannels: 24, kernelSize: 5, stride: 1, padding: 2)
        .check(),
    Pointwise(batch: 3, inChannels: 24, pixels: 100, outChannels: 32, epilogue: Epilogue(activation: .silu)).check(),
    // 32-channel tiles in three blocks of packed weights (GEMMWeights).
    Pointwise(batch: 1, inChannels: 19, pixels: 36, outChannels: 96).check(),
    Pointwise(
        batch: 7, inChannels: 30, pixels: 49, outChannels: 40, epilogue: Epilogue(activation: .relu, hasResidual: true)
    ).check(),
    Attention(batch: 3, heads: 2, tokens: 49, activation: .silu).check(),
    Attention(batch: 1, heads: 1, tokens: 7).check(),
]

@Test(
    "with subgroup shuffles (lavapipe has them) conv2d, pointwise and attention run their _shuffle kernels, correctly")
func withShuffles() throws {
    try withValidatedDevice { device in
        #expect(device.limits.sharesFetchesAcrossSubgroup, "\(device.limits)")
    }
    try expectAllPass(shuffleChecks, families: [.texel, .storage], ran: { $0.contains("_shuffle") })
}

@Test(
    "without subgroup shuffles (the spec's minimum limits) conv2d, pointwise and attention run their plain kernels, correctly"
)
func withoutShuffles() throws {
    try expectAllPass(
        shuffleChecks, families: [.texel, .storage], limits: .minimum, ran: { !$0.contains("_shuffle") })
}

/// Winograd F(2x2, 3x3) for every 3x3, stride-1 convolution of the register-tiled families: output sides odd and
/// even (a last tile half outside the image), padding 0, 1 and 2, batch 1 to 3, 8-, 16- and 32-channel tiles of the
/// products' GEMMs (with shuffles on lavapipe; without under the minimum limits), a ragged second workgroup of
/// columns, residuals and activations.
private let winogradChecks = [
    Conv2D(
        batch: 3, inChannels: 5, height: 9, width: 9, outChannels: 17, kernelSize: 3, padding: 1,
        epilogue: Epilogue(activation: .relu, hasResidual: true)),
    Conv2D(
        batch: 2, inChannels: 9, height: 7, width: 7, outChannels: 48, kernelSize: 3, padding: 1,
        epilogue: Epilogue(activation: .silu, hasResidual: true)),
    Conv2D(batch: 1, inChannels: 16, height: 13, width: 10, outChannels: 32, kernelSize: 3, padding: 0),
    Conv2D(
        batch: 1, inChannels: 3, height: 6, width: 5, outChannels: 8, kernelSize: 3, padding: 2,
        epilogue: Epilogue(activation: .sigmoid)),
    Conv2D(batch: 1, inChannels: 12, height: 40, width: 40, outChannels: 64, kernelSize: 3, padding: 1),
]

/// F(4x4, 3x3), for outputs of at least 16 tiles of 4x4 an image: output sides 1, 2 and 3 past a multiple of 4 and
/// exact, padding 0, 1 and 2, batch 1 to 4, 8-, 16- and 32-channel tiles, a ragged second workgroup of columns (75
/// column tiles in two workgroups of 40 lanes), residuals and activations.
private let largeTileWinogradChecks = [
    Conv2D(
        batch: 4, inChannels: 5, height: 13, width: 13, outChannels: 17, kernelSize: 3, padding: 1,
        epilogue: Epilogue(activation: .relu, hasResidual: true)),
    Conv2D(
        batch: 2, inChannels: 9, height: 18, width: 14, outChannels: 48, kernelSize: 3, padding: 1,
        epilogue: Epilogue(activation: .silu, hasResidual: true)),
    Conv2D(batch: 1, inChannels: 16, height: 30, width: 23, outChannels: 32, kernelSize: 3, padding: 0),
    Conv2D(
        batch: 3, inChannels: 3, height: 13, width: 17, outChannels: 8, kernelSize: 3, padding: 2,
        epilogue: Epilogue(activation: .sigmoid)),
    Conv2D(batch: 3, inChannels: 4, height: 40, width: 40, outChannels: 16, kernelSize: 3, padding: 1),
]

/// `convolutions` pass in the texel and storage families, with subgroup shuffles (lavapipe) and without (the spec's
/// minimum limits), having run only kernels that `ran` accepts (and, without shuffles, no `_shuffle` kernel).
private func expectWinogradPasses(_ convolutions: [Conv2D], ran: @escaping (String) -> Bool) throws {
    let checks = convolutions.map { $0.check() }
    try expectAllPass(checks, families: [.texel, .storage], ran: ran)
    try expectAllPass(
        checks, families: [.texel, .storage], limits: .minimum, ran: { ran($0) && !$0.contains("_shuffle") })
}

@Test(
    "3x3 stride-1 convolutions run as Winograd F(2x2, 3x3) or F(4x4, 3x3) in the texel and storage families and match the reference"
)
func winograd() throws {
    try expectWinogradPasses(winogradChecks) { $0.hasPrefix("winograd_") || $0.hasPrefix("pointwise") }
    // F(2x2, 3x3) for the small ones above (fewer than 16 tiles of 4x4 an image), F(4x4, 3x3) for these; an
    // image's choice, and so its outputs' bits, do not depend on the batch.
    #expect(winogradChecks.map { Winograd($0)?.tile } == [2, 2, 2, 2, 4])
    #expect(largeTileWinogradChecks.allSatisfy { Winograd($0)?.tile == 4 })
    func tiles(_ conv: Conv2D) -> Set<Int?> {
        Set(
            (1...8).map { batch in
                var conv = conv
                conv.batch = batch
                return Winograd(conv)?.tile
            })
    }
    #expect(tiles(winogradChecks[0]) == [2] && tiles(largeTileWinogradChecks[0]) == [4])
    try expectWinogradPasses(largeTileWinogradChecks) {
        $0.hasPrefix("winograd_") ? $0.contains("_f4") : $0.hasPrefix("pointwise")
    }
    // The direct family runs them on the direct kernel.
    try expectAllPass(winogradChecks.map { $0.check() }, families: [.direct], ran: { $0.hasPrefix("conv2d") })
    // Each check ran all three steps; the tiled families keep their implicit GEMM.
    let conv = winogradChecks[0]
    let texel = KernelConfig(family: .texel, limits: .vulkanMinimum)
    #expect(
        conv.steps(input: 0, weights: 1, affine: 2, residual: 3, output: 4, scratch: [5, 6], config: texel)
            .map(\.launch.kernel) == ["winograd_input", "pointwise", "winograd_output"])
    #expect(conv.winograd(texel.with(.tiled)) == nil && conv.scratchCounts(texel.with(.tiled)).isEmpty)
    #expect(conv.winograd(texel.with(.direct)) == nil && conv.scratchCounts(texel.with(.direct)).isEmpty)
    #expect(
        Conv2D(batch: 1, inChannels: 3, height: 8, width: 8, outChannels: 8, kernelSize: 3, stride: 2, padding: 1)
            .winograd(texel) == nil)
}

@Test("Winograd's filter transform: a 3x3 filter of ones becomes a a^T with a = G (1, 1, 1)")
func winogradFilterTransform() throws {
    // F(2x2, 3x3): a = (1, 1.5, 0.5, 1).
    let small = Conv2D(batch: 1, inChannels: 1, height: 4, width: 4, outChannels: 1, kernelSize: 3, padding: 1)
    let f2 = try #require(Winograd(small))
    #expect((f2.tile, f2.tilesX, f2.tilesY, f2.columns, f2.paddedColumns) == (2, 2, 2, 4, 4))
    expectFilterOfOnes(f2, a: [1, 1.5, 0.5, 1])
    // F(4x4, 3x3): G's rows summed, 1/4, -3/6, -1/6, 7/24, 1/8, 1.
    let large = Conv2D(batch: 2, inChannels: 1, height: 16, width: 16, outChannels: 1, kernelSize: 3, padding: 1)
    let f4 = try #require(Winograd(large))
    #expect((f4.tile, f4.positions, f4.tilesX, f4.columns) == (4, 36, 4, 32))
    expectFilterOfOnes(f4, a: [0.25, -0.5, -1.0 / 6, 7.0 / 24, 0.125, 1])
}

/// The packed transform of a 3x3 filter of ones: each of the positions one block of 32 channels over C = 1, a[i] a[j]
/// first (within float32's rounding of it: values a float holds exactly must match exactly), zeros in the padding.
private func expectFilterOfOnes(_ winograd: Winograd, a: [Double]) {
    let packed = winograd.packWeights([Float](repeating: 1, count: 9))
    let (block, patch) = (RegisterTiles.weightBlock, winograd.patch)
    #expect(packed.count == winograd.weightCount && packed.count == patch * patch * block)
    for i in 0..<patch {
        for j in 0..<patch {
            let start = (patch * i + j) * block, exact = a[i] * a[j]
            #expect(abs(Double(packed[start]) - exact) <= abs(exact) * 0x1p-24, "U[\(i)][\(j)] = \(packed[start])")
            #expect(packed[(start + 1)..<(start + block)].allSatisfy { $0 == 0 })
        }
    }
}

@Test("pointwise and linear match the CPU reference: odd channels, pixels with and without vec4 reads")
func pointwise() throws {
    try expectAllPass(
        [
            Pointwise(batch: 1, inChannels: 13, pixels: 49, outChannels: 19, epilogue: Epilogue(activation: .silu)),
            Pointwise(
                batch: 3, inChannels: 16, pixels: 36, outChannels: 24,
                epilogue: Epilogue(activation: .relu, hasResidual: true)),
            Pointwise(batch: 2, inChannels: 33, pixels: 20, outChannels: 8, epilogue: Epilogue(activation: .sigmoid)),
            Pointwise(
                batch: 3, inChannels: 7, pixels: 9, outChannels: 5,
                epilogue: Epilogue(activation: .identity, hasResidual: true)),
            // Linear layers run as a GEMV in every family, four images a workgroup: here one to three workgroups of
            // images, the last one ragged, with an epilogue.
            Pointwise.linear(batch: 3, inFeatures: 67, outFeatures: 37),
            Pointwise.linear(batch: 1, inFeatures: 128, outFeatures: 100),
            Pointwise(
                batch: 9, inChannels: 37, pixels: 1, outChannels: 70,
                epilogue: Epilogue(activation: .silu, hasResidual: true)),
            // Multiples of 16 output channels (the 16-channel register tile), by columns and by vec4 reads.
            Pointwise(
                batch: 2, inChannels: 21, pixels: 49, outChannels: 48,
                epilogue: Epilogue(activation: .silu, hasResidual: true)),
            Pointwise(batch: 3, inChannels: 18, pixels: 16, outChannels: 32, epilogue: Epilogue(activation: .relu)),
            Pointwise.linear(batch: 8, inFeatures: 40, outFeatures: 64),
            // Pixels 1, 2 and 3 past a multiple of 4 (49, 6, 7, 9), channels a multiple of 4, several images.
            Pointwise(
                batch: 3, inChannels: 20, pixels: 49, outChannels: 32,
                epilogue: Epilogue(activation: .silu, hasResidual: true)),
            Pointwise(batch: 2, inChannels: 12, pixels: 6, outChannels: 24, epilogue: Epilogue(activation: .relu)),
            Pointwise(batch: 5, inChannels: 8, pixels: 7, outChannels: 16),
            Pointwise(batch: 1, inChannels: 36, pixels: 9, outChannels: 8, epilogue: Epilogue(activation: .sigmoid)),
        ].map { $0.check() })
}

@Test("depthwise matches the CPU reference: 3x3, 5x5, 7x7, stride 1 and 2 on odd sizes")
func depthwise() throws {
    try expectAllPass(
        [
            Depthwise(
                batch: 3, channels: 5, height: 9, width: 11, kernelSize: 3, stride: 1, padding: 1,
                epilogue: Epilogue(activation: .relu)),
            Depthwise(
                batch: 1, channels: 7, height: 13, width: 13, kernelSize: 3, stride: 2, padding: 1,
                epilogue: Epilogue(activation: .silu, hasResidual: true)),
            Depthwise(batch: 1, channels: 6, height: 15, width: 9, kernelSize: 5, stride: 2, padding: 2),
            Depthwise(
                batch: 2, channels: 3, height: 7, width: 7, kernelSize: 5, stride: 1, padding: 2,
                epilogue: Epilogue(activation: .sigmoid)),
            Depthwise(batch: 1, channels: 4, height: 10, width: 6, kernelSize: 7, stride: 1, padding: 3),
        ].map { $0.check() })
}

@Test("max, average and global average pooling match the CPU reference")
func pooling() throws {
    try expectAllPass([
        MaxPool(batch: 1, channels: 3, height: 13, width: 11).check(),
        MaxPool(batch: 3, channels: 2, height: 16, width: 16).check(),
        MaxPool(batch: 1, channels: 1, height: 2, width: 1).check(),
        AvgPool(batch: 1, channels: 3, height: 7, width: 7).check(),
        AvgPool(batch: 3, channels: 2, height: 8, width: 6).check(),
        AvgPool(batch: 1, channels: 5, height: 5, width: 9).check(),
        AvgPool(batch: 2, channels: 2, height: 1, width: 1).check(),
        // Four values a fetch: output rows of whole vec4s (W % 8 == 0), and of 4k + 2 (W = 12, 28: the last group of a
        // row has two outputs).
        AvgPool(batch: 2, channels: 3, height: 8, width: 16).check(),
        AvgPool(batch: 1, channels: 2, height: 6, width: 12).check(),
        AvgPool(batch: 2, channels: 1, height: 4, width: 28).check(),
        GlobalAvgPool(batch: 1, channels: 5, pixels: 49).check(),
        GlobalAvgPool(batch: 3, channels: 7, pixels: 36).check(),
        GlobalAvgPool(batch: 2, channels: 3, pixels: 1).check(),
    ])
}

@Test("squeeze-excite matches the CPU reference, with ReLU and SiLU inside, with and without a fused residual")
func squeezeExcite() throws {
    try expectAllPass(
        [
            SqueezeExcite(batch: 1, channels: 24, pixels: 49, reduced: 6, innerActivation: .relu),
            SqueezeExcite(
                batch: 3, channels: 16, pixels: 36, reduced: 4, innerActivation: .silu,
                epilogue: Epilogue(activation: .silu, hasResidual: true)),
            SqueezeExcite(
                batch: 2, channels: 33, pixels: 9, reduced: 5, innerActivation: .relu,
                epilogue: Epilogue(activation: .relu, hasResidual: true)),
            // fc1 a value a fetch and fc2 four; both four, with more reduced channels than lanes (BossNet's stage 4).
            SqueezeExcite(batch: 1, channels: 18, pixels: 16, reduced: 8, innerActivation: .relu),
            SqueezeExcite(batch: 2, channels: 512, pixels: 4, reduced: 128, innerActivation: .relu),
        ].map { $0.check() })
}

@Test("attention matches the CPU reference: 1 to 3 heads, token counts up to 401")
func attention() throws {
    try expectAllPass(
        [
            Attention(batch: 1, heads: 1, tokens: 7),
            Attention(batch: 3, heads: 2, tokens: 49, activation: .silu),
            Attention(batch: 1, heads: 3, tokens: 100, activation: .relu),
            Attention(batch: 1, heads: 1, tokens: 401),
        ].map { $0.check() })
}

/// lavapipe ends an invocation after 65535 loop iterations in all; kernels whose loops grow with the shape must stay
/// under that (before the attention kernels unrolled their channel loops, 499 tokens or more came out unwritten).
@Test("long reductions complete: attention over 520 tokens, conv2d over 1500 channels of 7x7, pooling 300001 pixels")
func longLoops() throws {
    try expectAllPass([
        Attention(batch: 1, heads: 1, tokens: 520).check(),
        Conv2D(batch: 1, inChannels: 1500, height: 3, width: 3, outChannels: 8, kernelSize: 7, padding: 3).check(),
        GlobalAvgPool(batch: 1, channels: 2, pixels: 300_001).check(),
        Pointwise(batch: 1, inChannels: 4099, pixels: 5, outChannels: 8).check(),
    ])
}

@Test("the references compute known values")
func referenceKnownValues() {
    // 2x2 input, 3x3 kernel of ones, padding 1: each output sums its in-range neighbours.
    let conv = Conv2D(batch: 1, inChannels: 1, height: 2, width: 2, outChannels: 1, kernelSize: 3, padding: 1)
    #expect(
        conv.reference(input: [1, 2, 3, 4], weights: [Float](repeating: 1, count: 9), scale: [2], shift: [1]) == [
            21, 21, 21, 21,
        ])
    // Average pooling on 3x3 with ceil mode: the corner window holds one element, the edges two.
    let avg = AvgPool(batch: 1, channels: 1, height: 3, width: 3)
    #expect(avg.reference(input: [1, 2, 3, 4, 5, 6, 7, 8, 9]) == [3, 4.5, 7.5, 9])
    // Max pooling never lets the padding win.
    let max = MaxPool(batch: 1, channels: 1, height: 2, width: 2)
    #expect(max.reference(input: [-4, -3, -2, -1]) == [-1])
    // Attention with one token returns its value.
    var qkv = [Float](repeating: 0, count: 3 * 64)
    for c in 0..<64 { qkv[128 + c] = Float(c) }
    #expect(Attention(batch: 1, heads: 1, tokens: 1).reference(qkv: qkv) == (0..<64).map(Float.init))
    // Two tokens, one channel of q and k non-zero: query 0 attends almost only to key 1 (logit 8 * 8 / 8 = 8 vs 0),
    // query 1 evenly. Query i gathers the values of the keys j with weight attn[i][j]: output 0 = a00 v0 + a01 v1.
    var two = [Float](repeating: 0, count: 3 * 64 * 2)
    two[0] = 8  // q[0][0]
    two[128 + 1] = 8  // k[0][1]
    two[256] = 1  // v[0][0]
    two[257] = 3  // v[0][1]
    let attention = Attention(batch: 1, heads: 1, tokens: 2).reference(qkv: two)
    let a01 = 1 / (1 + exp(-8.0))
    #expect(abs(Double(attention[0]) - (1 * (1 - a01) + 3 * a01)) < 1e-6)
    #expect(abs(Double(attention[1]) - (1 * 0.5 + 3 * 0.5)) < 1e-6)
}

/// Each output of a k x k window as one sum over its taps in (channel, ky, kx) order: the form the references had
/// before their loops were turned for speed, which they must still match bit for bit.
private func windowSums(
    input: [Float], weights: [Float], channels: Int, height: Int, width: Int, k: Int, stride: Int, padding: Int,
    depthwise: Bool
) -> [Double] {
    let oh = windowOutputSize(height, kernel: k, stride: stride, padding: padding)
    let ow = windowOutputSize(width, kernel: k, stride: stride, padding: padding)
    let outputs = depthwise ? channels : 3
    var sums: [Double] = []
    for m in 0..<outputs {
        for oy in 0..<oh {
            for ox in 0..<ow {
                var sum = 0.0
                for c in depthwise ? m..<(m + 1) : 0..<channels {
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                            guard (0..<height).contains(iy) && (0..<width).contains(ix) else { continue }
                            let weight =
                                depthwise
                                ? weights[(c * k + ky) * k + kx] : weights[((m * channels + c) * k + ky) * k + kx]
                            sum += Double(weight) * Double(input[(c * height + iy) * width + ix])
                        }
                    }
                }
                sums.append(sum)
            }
        }
    }
    return sums
}

@Test(
    "convolution references equal the tap-by-tap sum bit for bit, windows wider than the plane included",
    arguments: [(5, 7, 3, 1, 1), (6, 5, 3, 2, 1), (2, 3, 7, 1, 3), (2, 3, 7, 2, 3), (1, 1, 5, 2, 2), (9, 4, 5, 3, 2)])
func windowReferences(height: Int, width: Int, k: Int, stride: Int, padding: Int) {
    var random = SeededRandom(seed: UInt64(height * 1000 + width * 100 + k * 10 + stride))
    let channels = 2, input = random.floats(channels * height * width)
    let ones = [Float](repeating: 1, count: 3), zeros = [Float](repeating: 0, count: 3)
    let conv = Conv2D(
        batch: 1, inChannels: channels, height: height, width: width, outChannels: 3, kernelSize: k, stride: stride,
        padding: padding)
    let convWeights = random.floats(conv.weightCount)
    #expect(
        conv.reference(input: input, weights: convWeights, scale: ones, shift: zeros)
            == windowSums(
                input: input, weights: convWeights, channels: channels, height: height, width: width, k: k,
                stride: stride, padding: padding, depthwise: false
            ).map(Float.init))
    let depthwise = Depthwise(
        batch: 1, channels: channels, height: height, width: width, kernelSize: k, stride: stride, padding: padding)
    let depthwiseWeights = random.floats(depthwise.weightCount)
    #expect(
        depthwise.reference(input: input, weights: depthwiseWeights, scale: ones, shift: zeros)
            == windowSums(
                input: input, weights: depthwiseWeights, channels: channels, height: height, width: width, k: k,
                stride: stride, padding: padding, depthwise: true
            ).map(Float.init))
}

@Test("grids never pass 65535 workgroups in a dimension and cover every item")
func gridSplit() {
    for items in [1, 64, 65, 65535 * 64, 65535 * 64 + 1, 10_000_000] {
        let groups = Grid.flat(items: items, localSize: 64)
        #expect(groups.x <= 65535 && groups.y <= 65535)
        #expect(groups.x * groups.y * 64 >= items)
    }
}

@Test("validate's shared references: computed once per check and input bits, and each family's result unchanged")
func sharedReferences() throws {
    try withValidatedDevice { device in
        let memo = ReferenceMemo()
        var computed = 0
        func reference(_ check: String, _ inputs: [[Float]?]) -> [Float] {
            KernelRunner(device: device, references: memo, check: check).reference(reading: inputs) {
                computed += 1
                return [Float(computed)]
            }
        }
        #expect(reference("conv2d a", [[1, 2], nil]) == [1])
        #expect(reference("conv2d a", [[1, 2], nil]) == [1] && computed == 1)
        #expect(reference("conv2d a", [[1, 2.0000002], nil]) == [2])
        #expect(reference("conv2d a", [[1, 2], []]) == [3])
        #expect(reference("conv2d b", [[1, 2], nil]) == [4])

        // A float32 family and a 16-bit one read different values: each compares with its own reference.
        let conv = Conv2D(batch: 1, inChannels: 5, height: 6, width: 7, outChannels: 8, kernelSize: 3, padding: 1)
        let shared = ReferenceMemo()
        for family in [KernelFamily.texel, .fp16, .storage] {
            let alone = try conv.check().run(on: device, seed: 3, family: family)
            let withMemo = try conv.check().run(on: device, seed: 3, family: family, references: shared)
            #expect(withMemo.relativeL2 == alone.relativeL2, "\(family)")
        }
    }
}
