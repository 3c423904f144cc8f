import Foundation
import VulkanCompute

// Convolutions in training on the device (the references are in ConvolutionBackward.swift), on their weights as the
// optimizer keeps them (`[M][C][k][k]`, no packing). A dense convolution's forward is the weights times the patches
// its outputs read (im2col), its weight gradient is one product of the output gradient with the patches its outputs read (im2col), reducing over
// images and pixels at once; its input gradient is the weights' transpose times the output gradient, folded back
// from patches to pixels (col2im). A 1x1, stride-1 convolution without padding reads its input as its patches, so it
// needs neither. Depthwise convolutions gather per element. Biases are channel sums of the output gradient.

/// Where a convolution's backward reads and writes.
public struct ConvolutionGradients<Resource> {
    public var input: Resource
    public var weights: Resource
    public var outputGradient: Resource
    /// Where the input gradient goes; `nil` where nothing needs it (the network's first layer).
    public var inputGradient: Resource?
    public var weightGradient: Resource
    public var biasGradient: Resource?
    /// Buffers of ``ConvolutionGeometry/backwardScratchCounts`` floats.
    public var scratch: [Resource]
    /// Adds the input gradient to what ``inputGradient`` holds (an input with several consumers).
    public var accumulateInput = false

    public init(
        input: Resource, weights: Resource, outputGradient: Resource, inputGradient: Resource?,
        weightGradient: Resource, biasGradient: Resource?, scratch: [Resource], accumulateInput: Bool = false
    ) {
        (self.input, self.weights, self.outputGradient, self.inputGradient) =
            (input, weights, outputGradient, inputGradient)
        (self.weightGradient, self.biasGradient, self.scratch, self.accumulateInput) =
            (weightGradient, biasGradient, scratch, accumulateInput)
    }
}

extension ConvolutionGeometry {
    /// Whether the input is its own patch matrix (1x1, stride 1, no padding): no im2col or col2im.
    private var readsInputAsPatches: Bool { kernelSize == 1 && stride == 1 && padding == 0 }

    fileprivate var patchSize: Int { inChannels * kernelSize * kernelSize }
    fileprivate var outPixels: Int { outHeight * outWidth }

    /// Images per chunk of patches (see ``patchImages``).
    private var chunk: Int { max(1, min(patchImages, batch)) }

    /// The chunks of the batch whose patches are made at once: (first image, images).
    private var chunks: [(first: Int, count: Int)] {
        Swift.stride(from: 0, to: batch, by: chunk).map { ($0, min(chunk, batch - $0)) }
    }

    /// The same convolution with ``patchImages`` lowered so that one chunk's patches take at most `maxBytes` (a
    /// device's `maxStorageBufferRange`).
    public func fittingPatches(maxBytes: Int) -> ConvolutionGeometry {
        var fitted = self
        fitted.patchImages = max(1, min(batch, maxBytes / max(1, 4 * patchSize * outPixels)))
        return fitted
    }

    /// Whether the products read pixel-major copies of the patches and of the output gradient: a dense convolution
    /// whose output planes are no multiple of 4 pixels (a 7x7 stage), where the channel-major planes would be fetched
    /// one value at a time. The copies (``TransposedPlanes``) are small beside the products. (Planes of one pixel
    /// are already both: their products run the batch as one matrix instead.)
    fileprivate var pixelMajor: Bool {
        !depthwise && outPixels > 1 && outPixels % 4 != 0 && patchSize % 4 == 0 && outChannels % 4 == 0
    }

    /// Whether the forward reads the weights from a transposed copy (`[patch][out]`), four output channels a fetch:
    /// where the patch's length is no multiple of 4 (the stem's 3 x 7 x 7 = 147), so the weights' rows cannot be
    /// fetched four values at a time, and the patches are read along pixels.
    fileprivate var transposedWeights: Bool {
        !depthwise && !pixelMajor && patchSize % 4 != 0 && outChannels % 4 == 0
    }

    /// The images of one pass: a chunk's where the patches are made (im2col), else the whole batch.
    private var passImages: Int { readsInputAsPatches ? batch : chunk }

    /// Floats of scratch the backward needs, a pass's worth: a dense convolution's patches and their gradient (where
    /// it makes them), then the pixel-major patches and output gradient (where ``pixelMajor``).
    public var backwardScratchCounts: [Int] {
        guard !depthwise else { return [] }
        let patches = readsInputAsPatches ? [] : [chunk * patchSize * outPixels, chunk * patchSize * outPixels]
        let pixelMajorCopies = [passImages * outPixels * patchSize, passImages * outPixels * outChannels]
        return patches + (pixelMajor ? pixelMajorCopies : [])
    }

    /// Floats of scratch the training forward needs, a pass's worth: a dense convolution's patches (where it makes
    /// them), then the pixel-major patches (where ``pixelMajor``) or the transposed weights (where
    /// ``transposedWeights``).
    public var forwardScratchCounts: [Int] {
        guard !depthwise else { return [] }
        return (readsInputAsPatches ? [] : [chunk * patchSize * outPixels])
            + (pixelMajor ? [passImages * outPixels * patchSize] : [])
            + (transposedWeights ? [outChannels * patchSize] : [])
    }

    /// The training forward, `output = conv(input, weights) + bias`.
    public func forwardSteps<Resource>(
        input: Resource, weights: Resource, bias: Resource?, output: Resource, scratch: [Resource]
    ) -> [KernelStep<Resource>] {
        let biasSteps =
            bias.map { BiasAdd(count: outputCount, channels: outChannels, pixels: outPixels).steps($0, to: output) }
            ?? []
        if depthwise {
            typealias Spec = ShaderConstants.depthwise_train
            let launch = windowLaunch(
                KernelName.depthwise_train, windowConstants((Spec.LOCAL_SIZE_X, Spec.KSIZE, nil)), items: outputCount)
            return [
                KernelStep(launch, [.readFloat32(input), .readFloat32(weights), .writeFloat32(output)])
            ] + biasSteps
        }
        let (patch, pixels) = (patchSize, outPixels)
        var steps: [KernelStep<Resource>] = []
        // w[m][e], or its transposed copy w[e][m].
        var (weightRows, weightLayout) = (weights, MatrixLayout(free: patch, inner: 1))
        if transposedWeights {
            let copy = scratch[scratch.count - 1]
            steps += TransposedPlanes(batch: 1, rows: outChannels, columns: patch).steps(weights, into: copy)
            (weightRows, weightLayout) = (copy, MatrixLayout(free: 1, inner: outChannels))
        }
        for (first, count) in readsInputAsPatches ? [(0, batch)] : chunks {
            var patches = readsInputAsPatches ? input : scratch[0]
            if !readsInputAsPatches { steps += im2colSteps(input: input, patches: patches, first: first, count: count) }
            // y[n][m][p] = sum_e w[m][e] patches[n][e][p], for the pass's images, the patches read pixel-major
            // (patches[n][p][e]) where ``pixelMajor``.
            var patchLayout = MatrixLayout(free: 1, inner: pixels, batchInnerStride: patch * pixels)
            if pixelMajor {
                let copy = scratch[scratch.count - 1]
                steps += TransposedPlanes(batch: count, rows: patch, columns: pixels).steps(patches, into: copy)
                (patches, patchLayout) = (copy, MatrixLayout(free: patch, inner: 1, batchInnerStride: pixels * patch))
            }
            let product = TrainingGEMM(
                m: outChannels, n: pixels, k: patch, batch: count, a: weightLayout, b: patchLayout,
                c: MatrixLayout(
                    free: 1, inner: pixels, batchInnerStride: outChannels * pixels, base: first * outChannels * pixels))
            steps += product.steps(a: weightRows, b: patches, c: output)
        }
        return steps + biasSteps
    }

    /// The patches of images `first ..< first + count`, from image 0 of `patches`.
    private func im2colSteps<Resource>(input: Resource, patches: Resource, first: Int, count: Int)
        -> [KernelStep<Resource>]
    {
        typealias Spec = ShaderConstants.im2col
        let launch = windowLaunch(
            KernelName.im2col, windowConstants((Spec.LOCAL_SIZE_X, Spec.KSIZE, nil)),
            items: count * inChannels * outPixels, images: (first, count))
        return [KernelStep(launch, [.readFloat32(input), .writeFloat32(patches)])]
    }

    /// The backward's dispatches.
    public func backwardSteps<Resource>(_ g: ConvolutionGradients<Resource>) -> [KernelStep<Resource>] {
        let bias =
            g.biasGradient.map {
                ChannelSums(batch: batch, channels: outChannels, pixels: outPixels).steps(
                    values: g.outputGradient, sums: $0)
            } ?? []
        return (depthwise ? depthwiseSteps(g) : denseSteps(g)) + bias
    }

    /// The shape push constants of the im2col, col2im and depthwise backward kernels; mirrors their `Push`.
    struct WindowPush: BitwiseCopyable {
        var batch, channels, height, width, outHeight, outWidth, stride, pad: UInt32
        /// The image of the input that image 0 of the patches is (im2col and col2im run a chunk of the batch).
        var first: UInt32
    }

    /// A launch of one of the window kernels (im2col, col2im, the depthwise ones), `items` workgroups of `lanes`,
    /// over the images `images` says (the whole batch where `nil`).
    private func windowLaunch(
        _ kernel: String, _ specialization: [UInt32: SpecializationValue], items: Int, lanes: Int = 64,
        images: (first: Int, count: Int)? = nil
    ) -> KernelLaunch {
        let push = WindowPush(
            batch: UInt32(images?.count ?? batch), channels: UInt32(inChannels), height: UInt32(height),
            width: UInt32(width), outHeight: UInt32(outHeight), outWidth: UInt32(outWidth), stride: UInt32(stride),
            pad: UInt32(padding), first: UInt32(images?.first ?? 0))
        return KernelLaunch(
            kernel: kernel, specialization: specialization, pushConstants: push,
            groups: Grid.flat(items: items, localSize: lanes))
    }

    /// The specialization of a window kernel whose constants are LOCAL_SIZE_X, KSIZE and (where given) ACCUMULATE.
    private func windowConstants(_ ids: (local: UInt32, size: UInt32, accumulate: UInt32?), accumulate: Bool = false)
        -> [UInt32: SpecializationValue]
    {
        var constants: [UInt32: SpecializationValue] = [ids.local: .uint(64), ids.size: .uint(UInt32(kernelSize))]
        if let id = ids.accumulate { constants[id] = .uint(accumulate ? 1 : 0) }
        return constants
    }

    private func denseSteps<Resource>(_ g: ConvolutionGradients<Resource>) -> [KernelStep<Resource>] {
        guard !readsInputAsPatches else { return denseChunkSteps(g, first: 0, count: batch) }
        return chunks.flatMap { denseChunkSteps(g, first: $0.first, count: $0.count) }
    }

    /// The weight gradient (added to from the second chunk on) and the input gradient of images
    /// `first ..< first + count`.
    private func denseChunkSteps<Resource>(_ g: ConvolutionGradients<Resource>, first: Int, count: Int)
        -> [KernelStep<Resource>]
    {
        var steps: [KernelStep<Resource>] = []
        let patches = readsInputAsPatches ? g.input : g.scratch[0]
        if !readsInputAsPatches { steps += im2colSteps(input: g.input, patches: patches, first: first, count: count) }
        let products = ChunkProducts(geometry: self, count: count, dyBase: first * outChannels * outPixels)
        var (patchSource, dySource) = (patches, g.outputGradient)
        if pixelMajor {
            let (patchCopy, dyCopy) = (g.scratch[g.scratch.count - 2], g.scratch[g.scratch.count - 1])
            steps += TransposedPlanes(batch: count, rows: patchSize, columns: outPixels).steps(patches, into: patchCopy)
            steps += TransposedPlanes(batch: count, rows: outChannels, columns: outPixels, base: products.dyBase).steps(
                g.outputGradient, into: dyCopy)
            (patchSource, dySource) = (patchCopy, dyCopy)
        }
        var weights = products.weights
        weights.accumulate = first > 0
        steps += weights.steps(a: dySource, b: patchSource, c: g.weightGradient)
        guard let inputGradient = g.inputGradient else { return steps }
        // dPatches straight into dx where the input is its own patches.
        let direct = readsInputAsPatches
        var patchGradient = products.patchGradient
        patchGradient.accumulate = direct && g.accumulateInput
        steps += patchGradient.steps(a: g.weights, b: dySource, c: direct ? inputGradient : g.scratch[1])
        if !direct {
            typealias Spec = ShaderConstants.col2im
            let launch = windowLaunch(
                KernelName.col2im,
                windowConstants((Spec.LOCAL_SIZE_X, Spec.KSIZE, Spec.ACCUMULATE), accumulate: g.accumulateInput),
                items: count * inChannels * height * width, images: (first, count))
            let binding: KernelBinding = g.accumulateInput ? .readWrite(inputGradient) : .writeFloat32(inputGradient)
            steps.append(KernelStep(launch, [.readFloat32(g.scratch[1]), binding]))
        }
        return steps
    }

    private func depthwiseSteps<Resource>(_ g: ConvolutionGradients<Resource>) -> [KernelStep<Resource>] {
        typealias WeightsSpec = ShaderConstants.depthwise_backward_weights
        typealias InputSpec = ShaderConstants.depthwise_backward_input
        var weightsConstants = windowConstants((WeightsSpec.LOCAL_SIZE_X, WeightsSpec.KSIZE, nil))
        weightsConstants[WeightsSpec.LOCAL_SIZE_X] = .uint(
            UInt32(Grid.reductionLanes(values: batch * outHeight * outWidth)))
        let weightsLaunch = windowLaunch(
            KernelName.depthwise_backward_weights, weightsConstants, items: outChannels, lanes: 1)
        var steps = [
            KernelStep(
                weightsLaunch, [.readFloat32(g.outputGradient), .readFloat32(g.input), .writeFloat32(g.weightGradient)]
            )

        ]
        if let inputGradient = g.inputGradient {
            let launch = windowLaunch(
                KernelName.depthwise_backward_input,
                windowConstants(
                    (InputSpec.LOCAL_SIZE_X, InputSpec.KSIZE, InputSpec.ACCUMULATE), accumulate: g.accumulateInput),
                items: inputCount)
            let binding: KernelBinding = g.accumulateInput ? .readWrite(inputGradient) : .writeFloat32(inputGradient)
            steps.append(
                KernelStep(launch, [.readFloat32(g.outputGradient), .readFloat32(g.weights), binding]))
        }
        return steps
    }
}

/// A bias added in place to every pixel of its channel. Kernel: Shaders/bias_add.comp.
public struct BiasAdd: Hashable, Sendable {
    public var count: Int
    public var channels: Int
    public var pixels: Int

    public init(count: Int, channels: Int, pixels: Int) {
        (self.count, self.channels, self.pixels) = (count, channels, pixels)
    }

    /// Mirrors `Push` in Shaders/bias_add.comp.
    struct PushConstants: BitwiseCopyable { var count, channels, pixels: UInt32 }

    public func steps<Resource>(_ bias: Resource, to values: Resource) -> [KernelStep<Resource>] {
        let launch = KernelLaunch(
            kernel: KernelName.bias_add, specialization: [ShaderConstants.bias_add.LOCAL_SIZE_X: .uint(64)],
            pushConstants: PushConstants(count: UInt32(count), channels: UInt32(channels), pixels: UInt32(pixels)),
            groups: Grid.flat(items: count, localSize: 64))
        return [KernelStep(launch, [.readWrite(values), .readSmall(bias)]).on(.storage)]
    }
}

/// Each channel's sum over the batch and the pixels: a bias's gradient. Kernel: Shaders/channel_sums.comp.
public struct ChannelSums: Hashable, Sendable {
    public var batch: Int
    public var channels: Int
    public var pixels: Int
    /// Adds to what the sums hold.
    public var accumulate = false

    public init(batch: Int, channels: Int, pixels: Int, accumulate: Bool = false) {
        (self.batch, self.channels, self.pixels, self.accumulate) = (batch, channels, pixels, accumulate)
    }

    /// Mirrors `Push` in Shaders/channel_sums.comp.
    struct PushConstants: BitwiseCopyable { var batch, channels, pixels: UInt32 }

    public func steps<Resource>(values: Resource, sums: Resource) -> [KernelStep<Resource>] {
        let launch = KernelLaunch(
            kernel: KernelName.channel_sums,
            specialization: [
                ShaderConstants.channel_sums.LOCAL_SIZE_X: .uint(UInt32(Grid.reductionLanes(values: batch * pixels))),
                ShaderConstants.channel_sums.ACCUMULATE: .uint(accumulate ? 1 : 0),
            ],
            pushConstants: PushConstants(batch: UInt32(batch), channels: UInt32(channels), pixels: UInt32(pixels)),
            groups: (channels, 1, 1))
        return [
            KernelStep(launch, [.readFloat32(values), accumulate ? .readWrite(sums) : .writeFloat32(sums)])
        ]
    }
}

// MARK: - Check

extension ConvolutionGeometry {
    public var shapeDescription: String {
        "n\(batch) c\(inChannels) \(height)x\(width) -> \(outChannels) k\(kernelSize) s\(stride) p\(padding)"
    }

    /// Compares the training forward (with a bias) and the backward's input, weight and bias gradients with
    /// ``forward(input:weights:bias:)`` and ``backward(input:weights:outputGradient:)`` on random values; with
    /// `accumulate` the input gradient starts random and must be added to.
    public func backwardCheck(accumulate: Bool = false) -> KernelCheck {
        let op = depthwise ? "depthwise_training" : "conv2d_training"
        return KernelCheck(op: op, shape: shapeDescription + (accumulate ? " accumulate" : "")) { runner, random in
            let x = random.floats(inputCount), w = random.weights(weightCount, fanIn: weightCount / outChannels)
            let bias = random.floats(outChannels), dy = random.floats(outputCount)
            let dx0 = accumulate ? random.floats(inputCount) : [Float](repeating: .nan, count: inputCount)
            let (xBuffer, wBuffer) = (try runner.input(x), try runner.input(w))
            let (y, dx, dw) = (
                try runner.output(outputCount), try runner.inputOutput(dx0), try runner.output(weightCount)
            )
            let db = try runner.output(outChannels)
            runner.add(
                forwardSteps(
                    input: xBuffer, weights: wBuffer, bias: try runner.input(bias), output: y,
                    scratch: try forwardScratchCounts.map(runner.output)))
            runner.add(
                backwardSteps(
                    ConvolutionGradients(
                        input: xBuffer, weights: wBuffer, outputGradient: try runner.input(dy), inputGradient: dx,
                        weightGradient: dw, biasGradient: db, scratch: try backwardScratchCounts.map(runner.output),
                        accumulateInput: accumulate)))
            try runner.run()
            let (xd, wd) = (x.map(Double.init), w.map(Double.init))
            let expected = backward(input: xd, weights: wd, outputGradient: dy.map(Double.init))
            let expectedInput = accumulate ? zip(expected.input, dx0).map { $0 + Double($1) } : expected.input
            let output = forward(input: xd, weights: wd, bias: bias.map(Double.init))
            return .worst([
                "output": Comparison(try runner.read(y), output.map(Float.init)),
                "input": Comparison(try runner.read(dx), expectedInput.map(Float.init)),
                "weights": Comparison(try runner.read(dw), expected.weights.map(Float.init)),
                "bias": Comparison(try runner.read(db), expected.bias.map(Float.init)),
            ])
        }
    }
}

/// The two products of a dense convolution's backward over a pass of `count` images, on the patches and the output
/// gradient as they lie (channel-major: `[n][e][p]`, `[n][m][p]`, the output gradient from `dyBase`) or, where the
/// geometry is ``ConvolutionGeometry/pixelMajor``, on the pass's pixel-major copies (`[n][p][e]`, `[n][p][m]`).
private struct ChunkProducts {
    let geometry: ConvolutionGeometry
    let count: Int
    /// Where the pass's output gradient starts in the whole batch's.
    let dyBase: Int

    /// dW[m][e] = sum over (n, p) of dy[n][m][p] * patches[n][e][p]: element (free i, pixel p of image n).
    var weights: TrainingGEMM {
        let (pixels, patch, outChannels) = (geometry.outPixels, geometry.patchSize, geometry.outChannels)
        let (dy, patches) =
            geometry.pixelMajor
            ? (
                MatrixLayout(free: 1, inner: outChannels, outer: pixels * outChannels),
                MatrixLayout(free: 1, inner: patch, outer: pixels * patch)
            )
            : (
                MatrixLayout(free: pixels, inner: 1, outer: outChannels * pixels, base: dyBase),
                MatrixLayout(free: pixels, inner: 1, outer: patch * pixels)
            )
        return TrainingGEMM(
            m: outChannels, n: patch, k: count * pixels, kInner: pixels, a: dy, b: patches,
            c: MatrixLayout(free: 1, inner: patch))
    }

    /// dPatches[n][e][p] = sum_m w[m][e] * dy[n][m][p]: dy's element (reduction m, column p) of image n, a batch
    /// over n.
    var patchGradient: TrainingGEMM {
        let (pixels, patch, outChannels) = (geometry.outPixels, geometry.patchSize, geometry.outChannels)
        let dy =
            geometry.pixelMajor
            ? MatrixLayout(free: outChannels, inner: 1, batchInnerStride: pixels * outChannels)
            : MatrixLayout(free: 1, inner: pixels, batchInnerStride: outChannels * pixels, base: dyBase)
        return TrainingGEMM(
            m: patch, n: pixels, k: outChannels, batch: count, a: MatrixLayout(free: 1, inner: patch), b: dy,
            c: MatrixLayout(free: 1, inner: pixels, batchInnerStride: patch * pixels))
    }
}
