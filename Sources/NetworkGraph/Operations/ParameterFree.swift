import Foundation
import Kernels

// The operations without parameters run as they are in the graph: pooling (input: x) and the elementwise add (inputs:
// a, b).

/// A pooling kernel: one input, one output, no parameters; the three share their graph form and training face.
public protocol PoolingKernel: TrainableOperation, KernelOperation {
    var batch: Int { get set }
    func reference(input: [Float]) -> [Float]
    func trainingForward(_ x: [Double]) -> [Double]
    func backward(_ x: [Double], outputGradient: [Double]) -> [Double]
    func steps<Resource>(input: Resource, output: Resource, config: KernelConfig) -> [KernelStep<Resource>]
    func check() -> KernelCheck
    func backwardCheck() -> KernelCheck
}

extension PoolingKernel {
    public var name: String { nameOf(Self.self) }
    public var madds: Int { 0 }
    public var kernelCheck: KernelCheck { check() }
    public var backwardCheck: KernelCheck? { backwardCheck() }
    public func withBatch(_ batch: Int, from old: Int) -> any GraphOperation { with(\.batch, batch) }
    public func reference(_ inputs: [[Float]], parameters: ParameterStore) -> [Float] { reference(input: inputs[0]) }
    public func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>] {
        steps(input: lowering.inputs[0], output: lowering.output, config: lowering.config)
    }
    public func trainingForward(_ operands: [[Double]], parameters: ParameterStore) -> [Double] {
        trainingForward(operands[0])
    }
    public func trainingBackward(_ operands: [[Double]], outputGradient: [Double], parameters: ParameterStore) -> (
        operands: [[Double]], parameters: [String: [Double]]
    ) {
        ([backward(operands[0], outputGradient: outputGradient)], [:])
    }
}

extension MaxPool: PoolingKernel {}
extension AvgPool: PoolingKernel {}
extension GlobalAvgPool: PoolingKernel {}

extension Add: GraphOperation {
    public var name: String { nameOf(Self.self) }
    public var madds: Int { 0 }
    public var kernelCheck: KernelCheck { check() }
    /// The count covers the whole batch: it scales with it.
    public func withBatch(_ batch: Int, from old: Int) -> any GraphOperation { with(\.count, count / old * batch) }
    public func reference(_ inputs: [[Float]], parameters: ParameterStore) -> [Float] {
        reference(inputs[0], inputs[1])
    }
    public func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>] {
        steps(a: lowering.inputs[0], b: lowering.inputs[1], output: lowering.output, config: lowering.config)
    }
}

extension GraphOperation {
    /// A copy with one property changed.
    fileprivate func with<Value>(_ property: WritableKeyPath<Self, Value>, _ value: Value) -> Self {
        var copy = self
        copy[keyPath: property] = value
        return copy
    }
}

/// The kernel's name (`Self.name` in these extensions would find the instance property).
private func nameOf<Kernel: KernelOperation>(_ kernel: Kernel.Type) -> String { Kernel.name }
