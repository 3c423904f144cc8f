import Foundation
import Kernels
import TestSupport
import Testing
import VulkanCompute

/// Runs each training kernel's check on a validated device in the texel family (inputs through texel views) and the
/// storage family (storage buffers), and expects it within float32's tolerance; `limits` emulates a smaller device.
private func expectTrainingChecksPass(_ checks: [KernelCheck], limits: LimitsMode = .device) throws {
    try withValidatedDevice(options: DeviceOptions(pipelineCacheDirectory: nil, limits: limits)) { device in
        let pipelines = KernelPipelines(device: device)
        for check in checks {
            for family in [KernelFamily.texel, .storage] {
                let seed = testSeed()
                let comparison = try check.run(on: device, pipelines: pipelines, seed: seed, family: family)
                #expect(
                    comparison.passes,
                    "\(check.op) \(check.shape) \(family) BOSSNET_TEST_SEED=\(seed): \(comparison)")
            }
        }
    }
}

@Test("gemm_train: transposed, batched, split reductions and batches, accumulation, edges of every tile")
func trainingGEMM() throws {
    // C[m][n] = A[m][k] B[k][n], plain row-major, edges that no tile divides.
    let plain = TrainingGEMM(
        m: 19, n: 37, k: 23, a: MatrixLayout(free: 23, inner: 1), b: MatrixLayout(free: 1, inner: 37),
        c: MatrixLayout(free: 1, inner: 37))
    // Both operands transposed, C transposed, batch of 3 with gaps between batches, alpha, accumulation.
    let transposed = TrainingGEMM(
        m: 17, n: 5, k: 33, batch: 3, a: MatrixLayout(free: 1, inner: 17, batchInnerStride: 17 * 33 + 2),
        b: MatrixLayout(free: 33, inner: 1, batchInnerStride: 5 * 33),
        c: MatrixLayout(free: 17, inner: 1, batchInnerStride: 90),
        alpha: 0.125, accumulate: true)
    // A weight gradient's shape: the reduction runs over 3 images of 10 pixels (k = 30, kInner = 10), and a
    // per-head batch split in two (2 images x 2 heads) with a base offset.
    let split = TrainingGEMM(
        m: 6, n: 18, k: 30, kInner: 10, a: MatrixLayout(free: 10, inner: 1, outer: 60),
        b: MatrixLayout(free: 10, inner: 1, outer: 180), c: MatrixLayout(free: 1, inner: 18))
    let heads = TrainingGEMM(
        m: 9, n: 9, k: 16, batch: 4, batchInner: 2,
        a: MatrixLayout(free: 1, inner: 9, batchInnerStride: 144, batchOuter: 3 * 2 * 144, base: 0),
        b: MatrixLayout(free: 1, inner: 9, batchInnerStride: 144, batchOuter: 3 * 2 * 144, base: 2 * 144),
        c: MatrixLayout(free: 1, inner: 9, batchInnerStride: 81, batchOuter: 162))
    // A weight gradient's reduction over more pixels than one dispatch may loop: three images of 80,000, two
    // dispatches, the second adding to the first.
    let long = TrainingGEMM(
        m: 3, n: 2, k: 240_000, kInner: 80_000, a: MatrixLayout(free: 80_000, inner: 1, outer: 240_000),
        b: MatrixLayout(free: 80_000, inner: 1, outer: 160_000), c: MatrixLayout(free: 1, inner: 2))
    #expect(long.steps(a: 0, b: 1, c: 2).count == 2)
    // Operands aligned for the vec4 fetches, as the convolutions' products are: the forward (weights along the
    // reduction, patches along the pixels; 2 images), the input gradient (weights transposed: along the rows, and
    // a reduction of 10 that ends in single steps), the weight gradient (both along the pixels, over 3 images), and
    // a mix with a scalar operand.
    let forward = TrainingGEMM(
        m: 20, n: 36, k: 24, batch: 2, a: MatrixLayout(free: 24, inner: 1),
        b: MatrixLayout(free: 1, inner: 36, batchInnerStride: 24 * 36),
        c: MatrixLayout(free: 1, inner: 36, batchInnerStride: 20 * 36))
    let inputGradient = TrainingGEMM(
        m: 12, n: 8, k: 10, batch: 2, a: MatrixLayout(free: 1, inner: 12),
        b: MatrixLayout(free: 1, inner: 8, batchInnerStride: 10 * 8),
        c: MatrixLayout(free: 1, inner: 8, batchInnerStride: 12 * 8), accumulate: true)
    let weightGradient = TrainingGEMM(
        m: 6, n: 12, k: 3 * 8, kInner: 8, a: MatrixLayout(free: 8, inner: 1, outer: 48),
        b: MatrixLayout(free: 8, inner: 1, outer: 96), c: MatrixLayout(free: 1, inner: 12))
    let mixed = TrainingGEMM(
        m: 9, n: 5, k: 12, a: MatrixLayout(free: 1, inner: 9), b: MatrixLayout(free: 12, inner: 1),
        c: MatrixLayout(free: 1, inner: 5))
    #expect(forward.fetches == (.alongReduction, .alongFree))
    #expect(inputGradient.fetches == (.alongFree, .alongFree))
    #expect(weightGradient.fetches == (.alongReduction, .alongReduction))
    #expect(mixed.fetches == (.scalar, .alongReduction))
    // A batch of matrix-vector products with a shared matrix (a 1x1 convolution over 1x1 images), one each side: run
    // as one matrix product.
    let columns = TrainingGEMM(
        m: 12, n: 1, k: 8, batch: 5, a: MatrixLayout(free: 8, inner: 1),
        b: MatrixLayout(free: 1, inner: 1, batchInnerStride: 8),
        c: MatrixLayout(free: 1, inner: 1, batchInnerStride: 12))
    let rows = TrainingGEMM(
        m: 1, n: 7, k: 6, batch: 3, a: MatrixLayout(free: 1, inner: 1, batchInnerStride: 6),
        b: MatrixLayout(free: 1, inner: 7), c: MatrixLayout(free: 1, inner: 1, batchInnerStride: 7), accumulate: true)
    #expect(columns.steps(a: 0, b: 1, c: 2).map(\.launch.groups.z) == [1])
    #expect(rows.steps(a: 0, b: 1, c: 2).map(\.launch.groups.z) == [1])
    #expect(plain.fetches == (.scalar, .scalar))
    let all = [plain, transposed, split, heads, long, forward, inputGradient, weightGradient, mixed, columns, rows]
    let transposes = [
        TransposedPlanes(batch: 3, rows: 12, columns: 49), TransposedPlanes(batch: 2, rows: 5, columns: 7, base: 35),
    ]
    try expectTrainingChecksPass(all.map { $0.check() } + transposes.map { $0.check() })
}

@Test(
    "convolution backward: input, weight and bias gradients of dense, 1x1 and depthwise convolutions at awkward shapes")
func convolutionBackward() throws {
    func dense(_ c: Int, _ h: Int, _ w: Int, _ m: Int, k: Int, s: Int, p: Int, n: Int = 2) -> ConvolutionGeometry {
        ConvolutionGeometry(
            batch: n, inChannels: c, outChannels: m, height: h, width: w, kernelSize: k, stride: s, padding: p,
            depthwise: false)
    }
    func depthwise(_ c: Int, _ h: Int, _ w: Int, k: Int, s: Int, p: Int) -> ConvolutionGeometry {
        ConvolutionGeometry(
            batch: 2, inChannels: c, outChannels: c, height: h, width: w, kernelSize: k, stride: s, padding: p,
            depthwise: true)
    }
    func chunked(_ geometry: ConvolutionGeometry) -> ConvolutionGeometry {
        var chunked = geometry
        chunked.patchImages = 2
        return chunked
    }
    // 5 channels x 3x3 taps x 5x5 output pixels of float32 patches an image.
    let imageBytes = 5 * 9 * 25 * 4
    for (maxBytes, images) in [(2 * imageBytes, 2), (2 * imageBytes - 1, 1), (100 * imageBytes, 3)] {
        #expect(dense(5, 9, 9, 7, k: 3, s: 2, p: 1, n: 3).fittingPatches(maxBytes: maxBytes).patchImages == images)
    }
    let checks = [
        dense(3, 13, 11, 10, k: 7, s: 2, p: 3).backwardCheck(),  // the stem's geometry, odd sides
        // 147-long patches and 12 output channels: the forward reads the weights transposed, four channels a fetch.
        dense(3, 13, 11, 12, k: 7, s: 2, p: 3).backwardCheck(),
        dense(6, 9, 7, 5, k: 3, s: 1, p: 1).backwardCheck(accumulate: true),
        dense(5, 9, 9, 7, k: 3, s: 2, p: 1).backwardCheck(),
        dense(19, 5, 3, 21, k: 1, s: 1, p: 0, n: 3).backwardCheck(accumulate: true),  // 1x1: no patches
        dense(8, 7, 7, 6, k: 1, s: 2, p: 0).backwardCheck(),  // a strided shortcut
        depthwise(5, 9, 7, k: 3, s: 1, p: 1).backwardCheck(),
        depthwise(3, 11, 10, k: 5, s: 2, p: 2).backwardCheck(accumulate: true),
        depthwise(6, 20, 20, k: 3, s: 1, p: 1).backwardCheck(),  // 800 values a channel: a 64-lane reduction
        // Patches made two images at a time (as where a batch's would pass the device's buffer range): 2 + 1 images,
        // the weight gradient added to by the second chunk, the input gradient of each chunk in its own images.
        chunked(dense(5, 9, 9, 7, k: 3, s: 2, p: 1, n: 3)).backwardCheck(accumulate: true),
        chunked(dense(3, 13, 11, 10, k: 7, s: 2, p: 3, n: 3)).backwardCheck(),
        chunked(dense(3, 13, 11, 8, k: 7, s: 2, p: 3, n: 3)).backwardCheck(accumulate: true),
        // Planes of 49 and 25 pixels (a 7x7 stage's): the products read pixel-major copies. A 3x3, a 1x1 reading
        // its input as its patches, and patches made in chunks.
        dense(8, 7, 7, 12, k: 3, s: 1, p: 1).backwardCheck(accumulate: true),
        dense(16, 7, 7, 8, k: 1, s: 1, p: 0, n: 3).backwardCheck(),
        chunked(dense(8, 5, 5, 4, k: 3, s: 1, p: 1, n: 3)).backwardCheck(accumulate: true),
        // 1x1 images (a 1x1 stage): the products run the batch as one matrix's columns.
        dense(16, 1, 1, 12, k: 1, s: 1, p: 0, n: 5).backwardCheck(accumulate: true),
    ]
    // The checks above pass on any correct path: these say the chunked and pixel-major paths are the ones taken.
    func kernels(_ geometry: ConvolutionGeometry) -> [String] {
        let forward = geometry.forwardSteps(
            input: 0, weights: 1, bias: nil, output: 2, scratch: Array(3..<(3 + geometry.forwardScratchCounts.count)))
        let backward = geometry.backwardSteps(
            ConvolutionGradients(
                input: 0, weights: 1, outputGradient: 2, inputGradient: 3, weightGradient: 4, biasGradient: nil,
                scratch: Array(5..<(5 + geometry.backwardScratchCounts.count))))
        return (forward + backward).map(\.launch.kernel)
    }
    let chunkedKernels = kernels(chunked(dense(5, 9, 9, 7, k: 3, s: 2, p: 1, n: 3)))
    #expect(chunkedKernels.filter { $0 == KernelName.im2col }.count == 4)  // 2 chunks, forward and backward
    #expect(chunkedKernels.filter { $0 == KernelName.col2im }.count == 2)
    #expect(kernels(dense(8, 7, 7, 12, k: 3, s: 1, p: 1)).filter { $0 == KernelName.transpose }.count == 3)
    #expect(!kernels(dense(8, 8, 8, 12, k: 3, s: 1, p: 1)).contains(KernelName.transpose))  // 64-pixel planes
    // The stem's 147-long patches: one transpose (the weights, once for both chunks) where the output channels are a
    // multiple of 4, none where they are not.
    #expect(
        kernels(chunked(dense(3, 13, 11, 8, k: 7, s: 2, p: 3, n: 3))).filter { $0 == KernelName.transpose }.count == 1)
    #expect(!kernels(dense(3, 13, 11, 10, k: 7, s: 2, p: 3)).contains(KernelName.transpose))
    try expectTrainingChecksPass(checks)
}

@Test(
    "train-mode BatchNorm: statistics, running update, forward with residual, activation and stochastic depth, and its gradients"
)
func batchNormKernels() throws {
    let odd = BatchNormTraining(batch: 3, channels: 5, pixels: 37)
    let wide = BatchNormTraining(batch: 2, channels: 9, pixels: 200)
    var checks = [
        odd.forwardCheck(activation: .silu, residual: true), wide.forwardCheck(activation: .relu, residual: false),
        BatchNormTraining(batch: 1, channels: 4, pixels: 1).forwardCheck(activation: .identity, residual: false),
        // 150 values a channel over 16 lanes: each lane's next value is 5 images and 1 pixel on, with a carry.
        BatchNormTraining(batch: 50, channels: 3, pixels: 3).forwardCheck(activation: .relu, residual: false),
    ]
    checks.append(
        BatchNormTraining(batch: 50, channels: 3, pixels: 3).backwardCheck(activation: .silu, residual: false))
    for activation in Activation.allCases {
        checks.append(odd.backwardCheck(activation: activation, residual: activation == .silu))
    }
    checks.append(wide.backwardCheck(activation: .relu, residual: true, accumulate: true))
    for activation in Activation.allCases {
        let epilogue = EpilogueTraining(batch: 2, channels: 3, pixels: 29, activation: activation, batchNorm: false)
        checks.append(epilogue.check(residual: activation != .identity))
    }
    // Stochastic depth: three images (one branch dropped, two scaled), with and without a BatchNorm.
    checks += [
        odd.forwardCheck(activation: .relu, residual: true, dropPath: true),
        odd.backwardCheck(activation: .silu, residual: true, dropPath: true),
        EpilogueTraining(batch: 3, channels: 4, pixels: 7, activation: .relu, batchNorm: false)
            .check(residual: true, dropPath: true),
    ]
    try expectTrainingChecksPass(checks)
}

@Test("pooling backward: max (the stem's 3x3 s2 p1, odd sides), 2x2 average in ceil mode, global average")
func poolingBackward() throws {
    try expectTrainingChecksPass([
        MaxPool(batch: 2, channels: 3, height: 11, width: 9, kernelSize: 3, stride: 2, padding: 1).backwardCheck(),
        MaxPool(batch: 1, channels: 2, height: 8, width: 8, kernelSize: 2, stride: 2, padding: 0).backwardCheck(),
        AvgPool(batch: 2, channels: 3, height: 7, width: 9).backwardCheck(),
        GlobalAvgPool(batch: 3, channels: 5, pixels: 49).backwardCheck(),
    ])
}

@Test("attention backward: the to_qkv gradient per image and head, tokens no tile divides")
func attentionBackward() throws {
    try expectTrainingChecksPass([
        Attention(batch: 2, heads: 2, tokens: 13).backwardCheck(),
        Attention(batch: 1, heads: 4, tokens: 49).backwardCheck(),
    ])
}

@Test("squeeze-excite backward: the input's and both layers' gradients, ReLU and SiLU inside")
func squeezeExciteBackward() throws {
    try expectTrainingChecksPass([
        SqueezeExcite(batch: 3, channels: 20, pixels: 37, reduced: 5, innerActivation: .relu).backwardCheck(),
        SqueezeExcite(batch: 2, channels: 9, pixels: 130, reduced: 3, innerActivation: .silu)
            .backwardCheck(accumulate: true),
    ])
}

@Test("optimizers on the device: AdamW with and without decay, SGD (first step, Nesterov), the EMA, clipping")
func optimizerKernels() throws {
    let clipping = GradientClipping(
        maxNorm: 5, ranges: [ElementRange(first: 7, count: 40_000), ElementRange(count: 300)])
    try expectTrainingChecksPass([
        AdamW(learningRate: 0.1, weightDecay: 0.05).check(count: 333, decays: true),
        AdamW(learningRate: 0.1, weightDecay: 0.05).check(count: 70, decays: false),
        // Aligned starts: whole groups of four as vec4s, then a tail of 2 (and of 1).
        AdamW(learningRate: 0.1, weightDecay: 0.05).check(count: 336, decays: true, first: 0),
        AdamW(learningRate: 0.1, weightDecay: 0.05).check(count: 71, decays: false, first: 4),
        // More than 65,535 workgroups of 64: the grid spreads over y (a 512x1024x3x3 weight).
        AdamW(learningRate: 0.1, weightDecay: 0.05).check(count: 4_718_592, decays: true),
        SGD(learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4).check(count: 101, firstStep: true),
        SGD(learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4, nesterov: true).check(count: 101, firstStep: false),
        ModelAverage(decay: 0.9).check(count: 65),
        clipping.check(scale: 1),  // norm about 115: clipped
        clipping.check(scale: 0.01),  // norm about 1.2: left alone
    ])
}

@Test("cross-entropy on the device: label smoothing and soft targets, the loss and the logits' gradient")
func crossEntropyKernel() throws {
    try expectTrainingChecksPass([
        CrossEntropy(batch: 5, classes: 1000).check(smoothing: 0.1),
        CrossEntropy(batch: 3, classes: 37).check(smoothing: nil),
    ])
}
