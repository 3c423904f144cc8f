import Foundation
import Kernels

/// One operation of a ``Graph``: a kernel from the Kernels module at its static shape, with the state-dict names of
/// the parameters it reads (their values live in a ``ParameterStore``). Everything the planner, the CPU reference, the
/// checks and the calibration need from an operation is asked through this protocol, so a new operation is one
/// conforming type (see Operations/) and nothing else in NetworkGraph names it.
public protocol GraphOperation: Sendable {
    /// The operation's name, as its kernel is named ("conv2d").
    var name: String { get }
    /// Multiply-adds for the whole batch.
    var madds: Int { get }
    /// Bytes of weights the operation reads as inference runs it (BatchNorm and bias folded into a scale and shift).
    var weightBytes: Int { get }
    /// The state-dict names of every array the operation reads.
    var parameterNames: [String] { get }
    /// The BatchNorm the operation ends with, if any.
    var batchNorm: BatchNorm? { get }
    /// What the operation applies after its BatchNorm: the residual add (its second input) and the activation.
    var epilogue: Epilogue { get }
    /// The operation up to its BatchNorm: without the BatchNorm, and without the residual add and activation after it.
    var beforeNorm: any GraphOperation { get }
    /// The same operation over `batch` images instead of `old`.
    func withBatch(_ batch: Int, from old: Int) -> any GraphOperation
    /// The operation's kernel check at its shape: its kernels on random inputs against its CPU reference (see
    /// ``KernelCheck``; the weights are drawn afresh).
    var kernelCheck: KernelCheck { get }
    /// The plain CPU reference: `inputs` in the node's order, the parameters from `parameters`, BatchNorm in its
    /// inference form, folded with the bias into a per-channel scale and shift as the kernels take it.
    func reference(_ inputs: [[Float]], parameters: ParameterStore) -> [Float]
    /// The operation's dispatches, binding the node's tensors, its scratch and its packed parameters as `lowering`
    /// hands them out. Folding BatchNorm and packing the weights as the kernels read them happen here.
    func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>]
    /// What profiles and `--verbose` plans show beside the kernel names (the GEMM variant), if anything.
    func variantSummary(_ config: KernelConfig) -> String?
}

extension GraphOperation {
    public var parameterNames: [String] { [] }
    public var batchNorm: BatchNorm? { nil }
    public var epilogue: Epilogue { Epilogue() }
    public var beforeNorm: any GraphOperation { self }
    public var weightBytes: Int { 0 }
    public func variantSummary(_ config: KernelConfig) -> String? { nil }
}

/// What a dispatch of the plan binds: a tensor, a node's scratch, or a parameter array.
public enum PlanResource: Hashable, Sendable {
    case tensor(TensorID)
    case scratch(node: Int, index: Int)
    case weight(Int)
}

/// What an operation lowers with: its node's tensors, the kernel settings, the parameter values (none in a dry
/// lowering, which only sizes the plan), and the scratch and parameter arrays it registers as resources.
public struct OperationLowering {
    /// The node's input tensors, in order (x, then the residual or second operand where there is one).
    public let inputs: [PlanResource]
    /// The node's output tensor.
    public let output: PlanResource
    /// The kernel settings the plan uses.
    public let config: KernelConfig
    /// Bytes of one activation value: 2 on the 16-bit data paths, else 4.
    public let activationBytes: Int
    /// The parameter values; `nil` in a dry lowering.
    public let parameters: ParameterStore?
    let node: Int
    let firstParameter: Int
    private(set) var packed: [PackedParameter] = []
    private(set) var scratchBytes: [Int] = []

    init(
        node: Node, index: Int, config: KernelConfig, activationBytes: Int, parameters: ParameterStore?,
        firstParameter: Int
    ) {
        inputs = node.inputs.map { .tensor($0) }
        output = .tensor(node.output)
        self.config = config
        self.activationBytes = activationBytes
        self.parameters = parameters
        self.node = index
        self.firstParameter = firstParameter
    }

    /// The residual (the second input), where the node has one.
    public var residual: PlanResource? { inputs.count > 1 ? inputs[1] : nil }

    /// Registers a parameter array of `count` values as the kernels read it (`values` nil in a dry lowering).
    public mutating func parameter(_ values: [Float]?, count: Int) -> PlanResource {
        packed.append(PackedParameter(values: values ?? [], count: count, elementBytes: activationBytes, node: node))
        return .weight(firstParameter + packed.count - 1)
    }

    /// Registers a scratch buffer of `bytes` for the node.
    public mutating func scratch(bytes: Int) -> PlanResource {
        scratchBytes.append(bytes)
        return .scratch(node: node, index: scratchBytes.count - 1)
    }
}
