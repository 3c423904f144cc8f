import Foundation
import VulkanCompute

/// The specialization constants of Shaders/depthwise.comp, by name.
private typealias DepthwiseSpec = ShaderConstants.depthwise

/// Depthwise convolution (groups = channels), k x k with k in 1...7, stride 1 or 2, zero padding, fused ``Epilogue``
/// (a convolution bias goes into the shift). Kernel: Shaders/depthwise.comp.
public struct Depthwise: Hashable, Sendable, Codable {
    public var batch: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    public var kernelSize: Int
    public var stride: Int
    public var padding: Int
    public var epilogue: Epilogue

    public init(
        batch: Int, channels: Int, height: Int, width: Int, kernelSize: Int, stride: Int = 1, padding: Int,
        epilogue: Epilogue = Epilogue()
    ) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.epilogue = epilogue
    }

    public var outHeight: Int { windowOutputSize(height, kernel: kernelSize, stride: stride, padding: padding) }
    public var outWidth: Int { windowOutputSize(width, kernel: kernelSize, stride: stride, padding: padding) }
    public var inputCount: Int { batch * channels * height * width }
    public var outputCount: Int { batch * channels * outHeight * outWidth }
    public var weightCount: Int { channels * kernelSize * kernelSize }
    public var madds: Int { outputCount * kernelSize * kernelSize }

    /// The CPU reference. `weights` is `[channels][k][k]` (PyTorch's `[C, 1, k, k]`).
    public func reference(input: [Float], weights: [Float], scale: [Float], shift: [Float], residual: [Float]? = nil)
        -> [Float]
    {
        precondition(input.count == inputCount && weights.count == weightCount, "depthwise: wrong input or weight size")
        let k = kernelSize
        let window = SlidingWindow(height: height, width: width, kernel: k, stride: stride, padding: padding)
        // Each output sums its products in (ky, kx) order.
        var accumulators = [Double](repeating: 0, count: outputCount)
        for n in 0..<batch {
            for c in 0..<channels {
                for ky in 0..<k {
                    for kx in 0..<k {
                        window.accumulateTap(
                            Double(weights[(c * k + ky) * k + kx]), ky: ky, kx: kx, input: input,
                            plane: (n * channels + c) * height * width, into: &accumulators,
                            output: (n * channels + c) * outHeight * outWidth)
                    }
                }
            }
        }
        return Epilogue.referenceApply(
            accumulators, channels: channels, pixels: outHeight * outWidth, scale: scale, shift: shift,
            residual: residual, epilogue: epilogue)
    }

    struct PushConstants: BitwiseCopyable {
        var batch, channels, inHeight, inWidth, outHeight, outWidth, padding: UInt32
    }

    /// The dispatch and its bindings: the input, the weights as they are (`[C][k][k]`), the affine packed by
    /// ``Epilogue/packAffine(scale:shift:)``, the residual (when the epilogue has one) and the output.
    public func steps<Resource>(
        input: Resource, weights: Resource, affine: Resource, residual: Resource?, output: Resource,
        config: KernelConfig = .texel
    ) -> [KernelStep<Resource>] {
        [
            KernelStep(
                launch(), [.read(input), .read(weights), .readSmall(affine), .read(residual ?? input), .write(output)]
            )
            .on(config.dataPath)
        ]
    }

    /// The dispatch alone (see ``steps(input:weights:affine:residual:output:config:)`` for its bindings).
    public func launch() -> KernelLaunch {
        precondition(
            (1...7).contains(kernelSize) && (1...2).contains(stride), "depthwise: kernel 1...7 and stride 1...2")
        let items = batch * channels * outHeight * ((outWidth + 3) / 4)
        return KernelLaunch(
            kernel: KernelName.depthwise,
            specialization: [
                DepthwiseSpec.LOCAL_SIZE_X: .uint(64), DepthwiseSpec.KSIZE: .uint(UInt32(kernelSize)),
                DepthwiseSpec.STRIDE: .uint(UInt32(stride)),
                DepthwiseSpec.ACTIVATION: .uint(epilogue.activation.rawValue),
                DepthwiseSpec.HAS_RESIDUAL: .bool(epilogue.hasResidual),
            ],
            pushConstants: PushConstants(
                batch: UInt32(batch), channels: UInt32(channels), inHeight: UInt32(height),
                inWidth: UInt32(width), outHeight: UInt32(outHeight), outWidth: UInt32(outWidth),
                padding: UInt32(padding)),
            groups: Grid.flat(items: items, localSize: 64))
    }
}

extension Depthwise: KernelOperation {
    public static let name = "depthwise"
}

// MARK: - Check

extension Depthwise {
    public var shapeDescription: String {
        "n\(batch) c\(channels) \(height)x\(width) k\(kernelSize) s\(stride) p\(padding) \(epilogue.summary)"
    }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        convolutionCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount,
            channels: channels,
            weightCount: weightCount, fanIn: kernelSize * kernelSize, epilogue: epilogue,
            pack: { weights, _ in weights },
            steps: { steps(input: $0, weights: $1, affine: $2, residual: $3, output: $4, config: $6) },
            reference: { reference(input: $0, weights: $1, scale: $2, shift: $3, residual: $4) })
    }
}
