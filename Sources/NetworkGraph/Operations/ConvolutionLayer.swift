import Foundation
import Kernels

/// A convolution that runs as a GEMM (``Conv2D``, or ``Pointwise`` for 1x1 convolutions and linear layers) with its
/// weights, bias and BatchNorm by name. Inputs: x, then the residual when the epilogue has one.
public struct ConvolutionLayer<Kernel: GEMMOperation>: GraphOperation {
    public var kernel: Kernel
    public var weights: ConvWeights

    public init(_ kernel: Kernel, _ weights: ConvWeights) {
        self.kernel = kernel
        self.weights = weights
    }

    public var name: String { Kernel.name }
    public var madds: Int { kernel.madds }
    public var weightBytes: Int { 4 * (kernel.weightCount + 2 * kernel.outChannels) }
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
        let p = parameters.folded(weights, channels: kernel.outChannels)
        return kernel.reference(
            input: inputs[0], weights: p.weights, scale: p.scale, shift: p.shift, residual: inputs.dropFirst().first)
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

/// A depthwise convolution with its weights (`[C][1][k][k]`), bias and BatchNorm by name. Inputs: x, then the
/// residual when the epilogue has one.
public struct DepthwiseLayer: GraphOperation {
    public var kernel: Depthwise
    public var weights: ConvWeights

    public init(_ kernel: Depthwise, _ weights: ConvWeights) {
        self.kernel = kernel
        self.weights = weights
    }

    public var name: String { Depthwise.name }
    public var madds: Int { kernel.madds }
    public var weightBytes: Int { 4 * (kernel.channels * kernel.kernelSize * kernel.kernelSize + 2 * kernel.channels) }
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
        let p = parameters.folded(weights, channels: kernel.channels)
        return kernel.reference(
            input: inputs[0], weights: p.weights, scale: p.scale, shift: p.shift, residual: inputs.dropFirst().first)
    }

    public func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>] {
        let p = lowering.parameters?.folded(weights, channels: kernel.channels)
        let filters = lowering.parameter(
            p?.weights, count: kernel.channels * kernel.kernelSize * kernel.kernelSize)
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
