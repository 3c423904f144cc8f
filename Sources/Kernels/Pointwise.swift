import Foundation
import VulkanCompute

/// The specialization constants of Shaders/pointwise_gemv.comp, by name.
private typealias GEMVSpec = ShaderConstants.pointwise_gemv

/// The specialization constants of Shaders/pointwise.comp, by name.
private typealias GEMMSpec = ShaderConstants.pointwise

/// Pointwise (1x1, stride 1) convolution as a matrix multiplication, with the fused ``Epilogue``. The linear layer is
/// the same with `pixels = 1`. Kernel: Shaders/pointwise.comp.
public struct Pointwise: GEMMOperation, Hashable, Sendable, Codable {
    public var batch: Int
    public var inChannels: Int
    /// Pixels per image (H * W); 1 for a linear layer.
    public var pixels: Int
    public var outChannels: Int
    public var epilogue: Epilogue

    public init(batch: Int, inChannels: Int, pixels: Int, outChannels: Int, epilogue: Epilogue = Epilogue()) {
        self.batch = batch
        self.inChannels = inChannels
        self.pixels = pixels
        self.outChannels = outChannels
        self.epilogue = epilogue
    }

    /// A linear layer `y[n] = W x[n] + b` over a batch of vectors.
    public static func linear(batch: Int, inFeatures: Int, outFeatures: Int, activation: Activation = .identity)
        -> Pointwise
    {
        Pointwise(
            batch: batch, inChannels: inFeatures, pixels: 1, outChannels: outFeatures,
            epilogue: Epilogue(activation: activation))
    }

    public var inputCount: Int { batch * inChannels * pixels }
    public var outputCount: Int { batch * outChannels * pixels }
    public var weightCount: Int { outChannels * inChannels }
    public var madds: Int { outputCount * inChannels }
    /// Whether the kernel reads four columns per fetch (the input must then be bound as an RGBA32F view).
    public var vec4Input: Bool { pixels % 4 == 0 }

    /// The CPU reference. `weights` is `[outChannels][inChannels]`.
    public func reference(input: [Float], weights: [Float], scale: [Float], shift: [Float], residual: [Float]? = nil)
        -> [Float]
    {
        precondition(input.count == inputCount && weights.count == weightCount, "pointwise: wrong input or weight size")
        // Each output sums its products in channel order; the pixels are the inner loop so that it reads in order.
        var accumulators = [Double](repeating: 0, count: outputCount)
        for n in 0..<batch {
            for m in 0..<outChannels {
                let output = (n * outChannels + m) * pixels
                for c in 0..<inChannels {
                    accumulateScaled(
                        Double(weights[m * inChannels + c]), input, from: (n * inChannels + c) * pixels,
                        into: &accumulators, at: output, count: pixels)
                }
            }
        }
        return Epilogue.referenceApply(
            accumulators, channels: outChannels, pixels: pixels, scale: scale, shift: shift,
            residual: residual, epilogue: epilogue)
    }

    /// How the kernels of `config` read the weights.
    public func weightLayout(_ config: KernelConfig) -> GEMMWeights {
        if case .gemv = variant(config) { return .oneBlock(outputs: outChannels, reduction: inChannels) }
        return GEMMWeights(outputs: outChannels, reduction: inChannels, config: config)
    }

    /// `[outChannels][inChannels]` weights packed as the kernels of `config` read them (see ``GEMMWeights``).
    public func packWeights(_ weights: [Float], config: KernelConfig) -> [Float] {
        weightLayout(config).pack(weights)
    }

    /// Values ``packWeights(_:config:)`` gives.
    public func packedWeightCount(_ config: KernelConfig) -> Int { weightLayout(config).count }

    struct PushConstants: BitwiseCopyable {
        var batch, inChannels, pixels, outChannels, mVec4: UInt32
    }

    /// The push constants of Shaders/pointwise.comp and Shaders/pointwise_gemv.comp, for weights packed as `layout`.
    private func pushConstants(_ layout: GEMMWeights) -> PushConstants {
        PushConstants(
            batch: UInt32(batch), inChannels: UInt32(inChannels), pixels: UInt32(pixels),
            outChannels: UInt32(outChannels), mVec4: UInt32(layout.paddedOutputs / 4))
    }

    /// This layer as the 1x1 convolution it is (each image's pixels as one column of height `pixels`), which the
    /// tiled family runs.
    public var asConvolution: Conv2D {
        Conv2D(
            batch: batch, inChannels: inChannels, height: pixels, width: 1, outChannels: outChannels, kernelSize: 1,
            stride: 1, padding: 0, epilogue: epilogue)
    }

    /// Whether this layer runs as a GEMV (Shaders/pointwise_gemv.comp): every linear layer (one pixel), in every
    /// family, where a GEMM tile would leave all but a few of its columns idle. At every batch, so that the order of
    /// its sums does not change with the batch (the measurements: BENCHMARKS.md, "Kernel families side by side").
    public var usesGEMV: Bool { pixels == 1 }

    /// Images a GEMV workgroup takes (its accumulators are sized for them); more take more workgroups on y.
    static let gemvImages = 4

    /// Floats of each scratch buffer the dispatches need under `config` (split-K's partial sums).
    public func scratchCounts(_ config: KernelConfig) -> [Int] {
        if case let .sharedMemoryTiled(tiled) = variant(config), tiled.partialCount > 0 { return [tiled.partialCount] }
        return []
    }

    /// The dispatches and their bindings: the input (RGBA32F when ``vec4Input``), the weights packed by
    /// ``packWeights(_:config:)``, the affine packed by ``Epilogue/packAffine(scale:shift:)``, the residual (when the
    /// epilogue has one), the output, and one scratch buffer for each of ``scratchCounts(_:)``.
    public func steps<Resource>(
        input: Resource, weights: Resource, affine: Resource, residual: Resource?, output: Resource,
        scratch: [Resource] = [],
        config: KernelConfig = .texel
    ) -> [KernelStep<Resource>] {
        switch variant(config) {
        case .gemv:
            // Lanes in 8 slices of the reduction, each slice reading consecutive vec4s of four channels: 32 channels a
            // workgroup, so the 1000 classes spread over 32 workgroups.
            let lanes = config.lanes, slices = 8
            let launch = KernelLaunch(
                kernel: KernelName.pointwise_gemv,
                specialization: [
                    GEMVSpec.LOCAL_SIZE_X: .uint(UInt32(lanes)),
                    GEMVSpec.ACTIVATION: .uint(epilogue.activation.rawValue),
                    GEMVSpec.HAS_RESIDUAL: .bool(epilogue.hasResidual), GEMVSpec.K_SLICES: .uint(UInt32(slices)),
                    GEMVSpec.MAX_BATCH: .uint(UInt32(Self.gemvImages)),
                ],
                pushConstants: pushConstants(weightLayout(config)),
                groups: (
                    (weightLayout(config).paddedOutputs / 4 + lanes / slices - 1) / (lanes / slices),
                    (batch + Self.gemvImages - 1) / Self.gemvImages, 1
                ))
            return [
                KernelStep(
                    launch,
                    [
                        .read(input), .read(weights, .rgba32Float), .readSmall(affine), .read(residual ?? input),
                        .write(output),
                    ]
                ).on(config.dataPath)
            ]
        case let .sharedMemoryTiled(tiled):
            return tiled.steps(
                input: input, weights: weights, affine: affine, residual: residual, output: output,
                partials: scratch.first, dataPath: config.dataPath)
        case .registerTiled, .winograd:
            break
        }
        return [
            KernelStep(
                launch(config.limits),
                [
                    .read(input, vec4Input ? .rgba32Float : .r32Float), .readImage(weights, .rgba32Float),
                    .readSmall(affine), .read(residual ?? input, vec4Input ? .rgba32Float : .r32Float),
                    .write(output),
                ]
            ).on(config.dataPath)
        ]
    }

    /// The register-tiled dispatch on a device with `limits` (see
    /// ``steps(input:weights:affine:residual:output:scratch:config:)`` for its bindings). With `products` above 0, a
    /// stack of that many GEMMs of this shape at batch 1 (``Winograd``'s): GEMM z reads input, weights and output z
    /// matrices on in their buffers, and stores its sums without the epilogue.
    public func launch(_ limits: DeviceLimits, products: Int = 0) -> KernelLaunch {
        precondition(products == 0 || batch == 1, "a stack of GEMMs runs at batch 1")
        let tiles = RegisterTiles(outputs: outChannels, columns: batch * pixels, limits: limits, maxRows: 32)
        return KernelLaunch(
            kernel: limits.sharesFetchesAcrossSubgroup ? KernelName.pointwise_shuffle : KernelName.pointwise,
            specialization: [
                GEMMSpec.LOCAL_SIZE_X: .uint(UInt32(tiles.local)), GEMMSpec.VEC4_INPUT: .bool(vec4Input),
                GEMMSpec.ACTIVATION: .uint(epilogue.activation.rawValue),
                GEMMSpec.HAS_RESIDUAL: .bool(epilogue.hasResidual),
                GEMMSpec.ROWS: .uint(UInt32(tiles.rows)), GEMMSpec.PRODUCTS: .bool(products > 0),
            ],
            pushConstants: pushConstants(.registerTiled(outputs: outChannels, reduction: inChannels)),
            groups: (tiles.groups.x, tiles.groups.y, max(1, products)))
    }
}

extension Pointwise: KernelOperation {
    public static let name = "pointwise"
}

// MARK: - Check

extension Pointwise {
    public var shapeDescription: String {
        pixels == 1
            ? "n\(batch) \(inChannels) -> \(outChannels) (linear) \(epilogue.summary)"
            : "n\(batch) c\(inChannels) \(pixels)px -> \(outChannels) \(epilogue.summary)"
    }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        convolutionCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount,
            channels: outChannels,
            weightCount: weightCount, fanIn: inChannels, epilogue: epilogue,
            pack: packWeights,
            scratchCounts: scratchCounts,
            steps: { steps(input: $0, weights: $1, affine: $2, residual: $3, output: $4, scratch: $5, config: $6) },
            reference: { reference(input: $0, weights: $1, scale: $2, shift: $3, residual: $4) })
    }
}
