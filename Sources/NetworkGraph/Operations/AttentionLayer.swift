import Foundation
import Kernels

/// BoTNet multi-head self-attention over a to_qkv output, with the BatchNorm after it by name (none: scale 1, shift
/// 0) and its activation. Input: the to_qkv output.
public struct AttentionLayer: GraphOperation {
    public var kernel: Attention
    public var norm: BatchNorm?

    public init(_ kernel: Attention, _ norm: BatchNorm?) {
        self.kernel = kernel
        self.norm = norm
    }

    public var name: String { Attention.name }
    public var madds: Int { kernel.madds }
    public var weightBytes: Int { 4 * 2 * kernel.channels }
    public var parameterNames: [String] { norm?.arrays ?? [] }
    public var batchNorm: BatchNorm? { norm }
    public var epilogue: Epilogue { Epilogue(activation: kernel.activation) }
    public var kernelCheck: KernelCheck { kernel.check() }

    public var beforeNorm: any GraphOperation {
        var bare = kernel
        bare.activation = .identity
        return Self(bare, nil)
    }

    public func withBatch(_ batch: Int, from old: Int) -> any GraphOperation {
        var resized = self
        resized.kernel.batch = batch
        return resized
    }

    public func reference(_ inputs: [[Float]], parameters: ParameterStore) -> [Float] {
        let p = parameters.attentionAffine(norm, channels: kernel.channels)
        return kernel.reference(qkv: inputs[0], scale: p.scale, shift: p.shift)
    }

    /// The row statistics' scratch where the kernels need it, and the BatchNorm folded into a scale and shift.
    public func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>] {
        let rows = kernel.scratchCount(lowering.config)
        let statistics = rows > 0 ? lowering.scratch(bytes: 4 * rows) : nil
        let p = lowering.parameters?.attentionAffine(norm, channels: kernel.channels)
        let affine = lowering.parameter(
            p.map { Epilogue.packAffine(scale: $0.scale, shift: $0.shift) }, count: 2 * kernel.channels)
        return kernel.steps(
            qkv: lowering.inputs[0], rows: statistics, affine: affine, output: lowering.output,
            config: lowering.config)
    }
}
