import Foundation
import Kernels

/// A kernel that runs a convolution with its bias and BatchNorm folded into a per-channel scale and shift, followed
/// by its epilogue: what ``ConvolutionLayer`` and ``DepthwiseLayer`` share.
public protocol FoldedConvolutionKernel: KernelOperation, Sendable {
    var batch: Int { get set }
    /// Output channels: the length of the folded scale and shift.
    var foldedChannels: Int { get }
    /// Values of the unpacked weights.
    var weightCount: Int { get }
    var madds: Int { get }
    var epilogue: Epilogue { get set }
    func reference(input: [Float], weights: [Float], scale: [Float], shift: [Float], residual: [Float]?) -> [Float]
    func check() -> KernelCheck
    /// The convolution as training computes it.
    var geometry: ConvolutionGeometry { get }
}

extension Conv2D: FoldedConvolutionKernel {
    public var foldedChannels: Int { outChannels }
}

extension Pointwise: FoldedConvolutionKernel {
    public var foldedChannels: Int { outChannels }
}

extension Depthwise: FoldedConvolutionKernel {
    public var foldedChannels: Int { channels }
}

/// A convolution layer in a graph: its kernel and its weights, bias and BatchNorm by name. Inputs: x, then the
/// residual when the epilogue has one.
public protocol ConvolutionLayerOperation: GraphOperation {
    associatedtype Kernel: FoldedConvolutionKernel
    var kernel: Kernel { get set }
    var weights: ConvWeights { get }
    init(_ kernel: Kernel, _ weights: ConvWeights)
}

extension ConvolutionLayerOperation {
    public var name: String { Kernel.name }
    public var madds: Int { kernel.madds }
    public var weightBytes: Int { 4 * (kernel.weightCount + 2 * kernel.foldedChannels) }
    public var parameterNames: [String] { weights.arrays }
    public var batchNorm: BatchNorm? { weights.norm }
    public var epilogue: Epilogue { kernel.epilogue }
    public var kernelCheck: KernelCheck { kernel.check() }

    public var beforeNorm: any GraphOperation {
        var bare = kernel
        bare.epilogue = Epilogue()
        return Self(bare, ConvWeights(weight: weights.weight, bias: weights.bias))
    }

    public func withBatch(_ batch: Int, from old: Int) -> any GraphOperation {
        var resized = self
        resized.kernel.batch = batch
        return resized
    }

    public func reference(_ inputs: [[Float]], parameters: ParameterStore) -> [Float] {
        let p = parameters.folded(weights, channels: kernel.foldedChannels)
        return kernel.reference(
            input: inputs[0], weights: p.weights, scale: p.scale, shift: p.shift, residual: inputs.dropFirst().first)
    }
}

/// A convolution that runs as a GEMM (``Conv2D``, or ``Pointwise`` for 1x1 convolutions and linear layers).
public struct ConvolutionLayer<Kernel: GEMMOperation & FoldedConvolutionKernel>: ConvolutionLayerOperation {
    public var kernel: Kernel
    public var weights: ConvWeights

    public init(_ kernel: Kernel, _ weights: ConvWeights) {
        self.kernel = kernel
        self.weights = weights
    }

    /// The weights folded and packed for the variant's kernels, its scratch, its steps.
    public func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>] {
        let config = lowering.config
        let p = lowering.parameters?.folded(weights, channels: kernel.outChannels)
        let packed = lowering.parameter(
            p.map { kernel.packWeights($0.weights, config: config) }, count: kernel.packedWeightCount(config))
        let affine = lowering.parameter(p.map(\.packedAffine), count: 2 * kernel.outChannels)
        let scratch = kernel.scratchCounts(config).map { lowering.scratch(bytes: 4 * $0) }
        return kernel.steps(
            input: lowering.inputs[0], weights: packed, affine: affine, residual: lowering.residual,
            output: lowering.output, scratch: scratch, config: config)
    }

    public func variantSummary(_ config: KernelConfig) -> String? { kernel.variant(config).summary }
}

/// A depthwise convolution (weights `[C][1][k][k]`).
public struct DepthwiseLayer: ConvolutionLayerOperation {
    public var kernel: Depthwise
    public var weights: ConvWeights

    public init(_ kernel: Depthwise, _ weights: ConvWeights) {
        self.kernel = kernel
        self.weights = weights
    }

    public func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>] {
        let p = lowering.parameters?.folded(weights, channels: kernel.channels)
        let filters = lowering.parameter(p?.weights, count: kernel.weightCount)
        let affine = lowering.parameter(p.map(\.packedAffine), count: 2 * kernel.channels)
        return kernel.steps(
            input: lowering.inputs[0], weights: filters, affine: affine, residual: lowering.residual,
            output: lowering.output, config: lowering.config)
    }
}

extension ConvParameters {
    /// Scale and shift as the kernels read them (``Epilogue/packAffine(scale:shift:)``).
    public var packedAffine: [Float] { Epilogue.packAffine(scale: scale, shift: shift) }
}
