import Foundation
import Kernels

/// Squeeze-excite with its two 1x1 convolutions by name, followed by its block's residual add and activation. Inputs:
/// x, then the residual when the epilogue has one.
public struct SqueezeExciteLayer: GraphOperation {
    public var kernel: SqueezeExcite
    public var weights: SqueezeExciteWeights

    public init(_ kernel: SqueezeExcite, _ weights: SqueezeExciteWeights) {
        self.kernel = kernel
        self.weights = weights
    }

    public var name: String { SqueezeExcite.name }
    public var madds: Int { kernel.madds }
    public var weightBytes: Int { 4 * (2 * kernel.reduced * kernel.channels + kernel.reduced + kernel.channels) }
    public var parameterNames: [String] { weights.arrays }
    public var epilogue: Epilogue { kernel.epilogue }
    public var kernelCheck: KernelCheck { kernel.check() }

    public func withBatch(_ batch: Int, from old: Int) -> any GraphOperation {
        var resized = self
        resized.kernel.batch = batch
        return resized
    }

    public func reference(_ inputs: [[Float]], parameters: ParameterStore) -> [Float] {
        let p = parameters.squeezeExcite(weights)
        return kernel.reference(
            input: inputs[0], w1: p.w1, b1: p.b1, w2: p.w2, b2: p.b2, residual: inputs.dropFirst().first)
    }

    /// fc1 and fc2 as they are, and two scratch buffers of `[N][C]`: the means and the gates.
    public func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>] {
        let p = lowering.parameters?.squeezeExcite(weights)
        let (c, r) = (kernel.channels, kernel.reduced)
        let w1 = lowering.parameter(p?.w1, count: r * c), b1 = lowering.parameter(p?.b1, count: r)
        let w2 = lowering.parameter(p?.w2, count: c * r), b2 = lowering.parameter(p?.b2, count: c)
        let bytes = lowering.activationBytes * kernel.batch * c
        let means = lowering.scratch(bytes: bytes), gates = lowering.scratch(bytes: bytes)
        return kernel.steps(
            input: lowering.inputs[0], w1: w1, b1: b1, w2: w2, b2: b2, means: means, gates: gates,
            residual: lowering.residual, output: lowering.output, config: lowering.config)
    }
}
