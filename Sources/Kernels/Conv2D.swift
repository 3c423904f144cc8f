import Foundation
import VulkanCompute

/// The specialization constants of Shaders/conv2d.comp, by name.
private typealias Conv2DSpec = ShaderConstants.conv2d

/// A convolution that runs as a GEMM (``Conv2D``, ``Pointwise``): its weights packed as its kernels read them, its
/// scratch, and its steps; the planner lowers both through this one description.
public protocol GEMMOperation: KernelOperation, Sendable {
    var batch: Int { get set }
    var outChannels: Int { get }
    /// What follows the accumulation: scale and shift, the residual add, the activation.
    var epilogue: Epilogue { get set }
    /// Values of the unpacked weights (OIHW, or `[M][K]`).
    var weightCount: Int { get }
    /// Multiply-adds for the whole batch.
    var madds: Int { get }
    /// The CPU reference: `weights` unpacked, `scale` and `shift` per output channel.
    func reference(input: [Float], weights: [Float], scale: [Float], shift: [Float], residual: [Float]?) -> [Float]
    /// Compares the kernels with the CPU reference at this shape, on random inputs (see ``KernelCheck``).
    func check() -> KernelCheck
    /// The OIHW (or `[M][K]`) weights as the kernels read them under `config`.
    func packWeights(_ weights: [Float], config: KernelConfig) -> [Float]
    /// Values of the packed weights under `config`.
    func packedWeightCount(_ config: KernelConfig) -> Int
    /// Floats of each scratch buffer the dispatches need under `config`.
    func scratchCounts(_ config: KernelConfig) -> [Int]
    /// How the operation runs under `config`: the one place its kernels are chosen.
    func variant(_ config: KernelConfig) -> GEMMVariant
    /// The dispatches and their bindings.
    func steps<Resource>(
        input: Resource, weights: Resource, affine: Resource, residual: Resource?, output: Resource,
        scratch: [Resource], config: KernelConfig
    ) -> [KernelStep<Resource>]
}

/// Dense convolution (groups = 1), k x k with k in 1...7, stride 1 or 2, zero padding, and the fused ``Epilogue``.
/// Kernel: Shaders/conv2d.comp; 3x3 stride-1 convolutions run as ``Winograd`` in the register-tiled families, and
/// every convolution as a ``TiledConvolution`` in the tiled ones. Pointwise convolutions should use ``Pointwise``,
/// which is faster.
public struct Conv2D: GEMMOperation, Hashable, Sendable, Codable {
    public var batch: Int
    public var inChannels: Int
    public var height: Int
    public var width: Int
    public var outChannels: Int
    public var kernelSize: Int
    public var stride: Int
    public var padding: Int
    public var epilogue: Epilogue

    public init(
        batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int, kernelSize: Int, stride: Int = 1,
        padding: Int, epilogue: Epilogue = Epilogue()
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.height = height
        self.width = width
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.epilogue = epilogue
    }

    public var outHeight: Int { windowOutputSize(height, kernel: kernelSize, stride: stride, padding: padding) }
    public var outWidth: Int { windowOutputSize(width, kernel: kernelSize, stride: stride, padding: padding) }
    public var inputCount: Int { batch * inChannels * height * width }
    public var outputCount: Int { batch * outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * inChannels * kernelSize * kernelSize }
    /// The GEMM's reduction length: C * k * k.
    public var reduction: Int { inChannels * kernelSize * kernelSize }
    /// Multiply-adds for the whole batch.
    public var madds: Int { outputCount * inChannels * kernelSize * kernelSize }

    /// The CPU reference. `weights` is OIHW; `scale`/`shift` have `outChannels` entries.
    public func reference(input: [Float], weights: [Float], scale: [Float], shift: [Float], residual: [Float]? = nil)
        -> [Float]
    {
        precondition(input.count == inputCount && weights.count == weightCount, "conv2d: wrong input or weight size")
        let k = kernelSize
        let window = SlidingWindow(height: height, width: width, kernel: k, stride: stride, padding: padding)
        // Each output sums its products in (channel, ky, kx) order.
        var accumulators = [Double](repeating: 0, count: outputCount)
        for n in 0..<batch {
            for m in 0..<outChannels {
                for c in 0..<inChannels {
                    for ky in 0..<k {
                        for kx in 0..<k {
                            window.accumulateTap(
                                Double(weights[((m * inChannels + c) * k + ky) * k + kx]), ky: ky, kx: kx,
                                input: input, plane: (n * inChannels + c) * height * width, into: &accumulators,
                                output: (n * outChannels + m) * outHeight * outWidth)
                        }
                    }
                }
            }
        }
        return Epilogue.referenceApply(
            accumulators, channels: outChannels, pixels: outHeight * outWidth, scale: scale, shift: shift,
            residual: residual, epilogue: epilogue)
    }

    /// OIHW weights packed for the kernels `config` runs: transformed for ``Winograd`` where it runs, else as the
    /// GEMM kernels read them (see ``GEMMWeights``).
    public func packWeights(_ weights: [Float], config: KernelConfig) -> [Float] {
        if case let .winograd(winograd) = variant(config) { return winograd.packWeights(weights) }
        return GEMMWeights(outputs: outChannels, reduction: reduction, config: config).pack(weights)
    }

    /// Values ``packWeights(_:config:)`` gives.
    public func packedWeightCount(_ config: KernelConfig) -> Int {
        if case let .winograd(winograd) = variant(config) { return winograd.weightCount }
        return GEMMWeights(outputs: outChannels, reduction: reduction, config: config).count
    }

    /// The Winograd form of this convolution where ``variant(_:)`` chooses it.
    public func winograd(_ config: KernelConfig) -> Winograd? {
        if case let .winograd(winograd) = variant(config) { return winograd }
        return nil
    }

    struct PushConstants: BitwiseCopyable {
        var batch, inChannels, inHeight, inWidth: UInt32
        var outChannels, outHeight, outWidth, padding: UInt32
    }

    /// The shared-memory tiles of this convolution where ``variant(_:)`` chooses them.
    public func tiled(_ config: KernelConfig) -> TiledConvolution? {
        if case let .sharedMemoryTiled(tiled) = variant(config) { return tiled }
        return nil
    }

    /// Floats of each scratch buffer the dispatches need under `config`: split-K's partial sums, or Winograd's
    /// transformed input and products.
    public func scratchCounts(_ config: KernelConfig) -> [Int] {
        switch variant(config) {
        case let .winograd(winograd): [winograd.transformedCount, winograd.productCount]
        case let .sharedMemoryTiled(tiled): tiled.partialCount > 0 ? [tiled.partialCount] : []
        case .registerTiled, .gemv: []
        }
    }

    /// The dispatches and their bindings: the input, the weights packed by ``packWeights(_:config:)``, the affine
    /// packed by ``Epilogue/packAffine(scale:shift:)``, the residual (when the epilogue has one), the output, and one
    /// scratch buffer for each of ``scratchCounts(_:)``.
    public func steps<Resource>(
        input: Resource, weights: Resource, affine: Resource, residual: Resource?, output: Resource,
        scratch: [Resource] = [],
        config: KernelConfig = .texel
    ) -> [KernelStep<Resource>] {
        switch variant(config) {
        case let .sharedMemoryTiled(tiled):
            return tiled.steps(
                input: input, weights: weights, affine: affine, residual: residual, output: output,
                partials: scratch.first, dataPath: config.dataPath)
        case let .winograd(winograd):
            precondition(scratch.count == 2, "Winograd needs two scratch buffers (see scratchCounts(_:))")
            return winograd.steps(
                input: input, weights: weights, affine: affine, residual: residual, output: output,
                transformed: scratch[0], products: scratch[1], config: config)
        case .registerTiled, .gemv:
            break
        }
        return [
            KernelStep(
                launch(config.limits),
                [
                    .readImage(input, .r32Float), .readImage(weights, .rgba32Float), .readSmall(affine),
                    .read(residual ?? input),
                    .write(output),
                ]
            ).on(config.dataPath)
        ]
    }

    /// The register-tiled dispatch on a device with `limits` (see
    /// ``steps(input:weights:affine:residual:output:scratch:config:)`` for its bindings).
    public func launch(_ limits: DeviceLimits) -> KernelLaunch {
        precondition((1...7).contains(kernelSize) && (1...2).contains(stride), "conv2d: kernel 1...7 and stride 1...2")
        let tiles = RegisterTiles(outputs: outChannels, columns: batch * outHeight * outWidth, limits: limits)
        return KernelLaunch(
            kernel: limits.sharesFetchesAcrossSubgroup ? KernelName.conv2d_shuffle : KernelName.conv2d,
            specialization: [
                Conv2DSpec.LOCAL_SIZE_X: .uint(UInt32(tiles.local)), Conv2DSpec.KSIZE: .uint(UInt32(kernelSize)),
                Conv2DSpec.STRIDE: .uint(UInt32(stride)), Conv2DSpec.ACTIVATION: .uint(epilogue.activation.rawValue),
                Conv2DSpec.HAS_RESIDUAL: .bool(epilogue.hasResidual), Conv2DSpec.ROWS: .uint(UInt32(tiles.rows)),
                Conv2DSpec.ROW_TILE: .bool(outWidth % 4 == 0),
            ],
            pushConstants: PushConstants(
                batch: UInt32(batch), inChannels: UInt32(inChannels), inHeight: UInt32(height), inWidth: UInt32(width),
                outChannels: UInt32(outChannels), outHeight: UInt32(outHeight), outWidth: UInt32(outWidth),
                padding: UInt32(padding)),
            groups: tiles.groups)
    }
}

extension Conv2D: KernelOperation {
    public static let name = "conv2d"
}

// MARK: - Check

extension Conv2D {
    public var shapeDescription: String {
        "n\(batch) c\(inChannels) \(height)x\(width) -> \(outChannels) k\(kernelSize) s\(stride) p\(padding) \(epilogue.summary)"
    }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        convolutionCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount,
            channels: outChannels,
            weightCount: weightCount, fanIn: inChannels * kernelSize * kernelSize, epilogue: epilogue,
            pack: packWeights,
            scratchCounts: scratchCounts,
            steps: { steps(input: $0, weights: $1, affine: $2, residual: $3, output: $4, scratch: $5, config: $6) },
            reference: { reference(input: $0, weights: $1, scale: $2, shift: $3, residual: $4) })
    }
}
