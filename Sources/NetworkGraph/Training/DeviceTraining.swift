import Foundation
import Kernels
import VulkanCompute

/// A buffer of a training step, `count` float32 values: either the session's own (``owned``: parameters, their
/// gradients, optimizer state, running statistics, what the host writes or reads), or memory the session's plan
/// places once every step is planned (activations, saved values, scratch, tensors' gradients), sharing space with
/// buffers that are never in use at the same time.
public final class TrainingBuffer {
    public let count: Int
    public let label: String
    /// The session's own memory; `nil` for planned memory.
    public let owned: VulkanBuffer?

    init(count: Int, label: String, owned: VulkanBuffer?) {
        (self.count, self.label, self.owned) = (count, label, owned)
    }

    /// Bytes: the values padded to a whole vec4, so RGBA32F views stay inside.
    public var size: Int { Self.bytes(count) }

    static func bytes(_ count: Int) -> Int { Grid.roundUp(max(count, 1), to: 4) * 4 }

    /// The owned buffer, for the host to read or write.
    func hostBuffer() throws -> VulkanBuffer {
        guard let owned else { throw ParameterError("\(label) is planned memory, which the host cannot reach.") }
        return owned
    }
}

/// The buffers of a ``TrainingSession``: the graph's parameters on the device, a gradient buffer per parameter and
/// the session's other owned buffers, each made once and kept for the session's life; and the planned buffers of
/// the step (see ``TrainingBuffer``).
public final class TrainingBuffers {
    public let device: VulkanDevice
    /// The kernel settings the training kernels run under (the storage family within the device's limits).
    public let config: KernelConfig
    let graph: Graph
    private(set) var parameters: [String: TrainingBuffer] = [:]
    /// Every parameter's gradient, by state-dict name, as the backward writes them.
    private(set) var gradients: [String: TrainingBuffer] = [:]
    /// Values of each declared array, by state-dict name.
    let counts: [String: Int]
    /// Bytes of every owned buffer.
    private(set) var ownedBytes = 0

    init(graph: Graph, device: VulkanDevice) {
        self.graph = graph
        self.device = device
        config = KernelConfig(family: .storage, limits: device.limits)
        counts = Dictionary(graph.declarations.map { ($0.name, $0.count) }, uniquingKeysWith: { first, _ in first })
    }

    /// A planned buffer of `count` floats.
    public func make(_ count: Int, label: String = "training") -> TrainingBuffer {
        TrainingBuffer(count: count, label: label, owned: nil)
    }

    /// Planned buffers of `counts` floats each.
    public func make(_ counts: [Int], label: String = "training scratch") -> [TrainingBuffer] {
        counts.map { make($0, label: label) }
    }

    /// An owned buffer of `count` floats; in `memory` ``BufferMemory/staging`` the host writes it without a copy (a
    /// step's few stochastic-depth scales).
    public func owned(_ count: Int, label: String, memory: BufferMemory = .deviceLocal) throws -> TrainingBuffer {
        let size = TrainingBuffer.bytes(count)
        ownedBytes += size
        let buffer = try VulkanBuffer(device: device, size: size, memory: memory, label: label)
        return TrainingBuffer(count: count, label: label, owned: buffer)
    }

    /// An owned buffer holding `values`.
    public func holding(_ values: [Float], label: String) throws -> TrainingBuffer {
        let buffer = try owned(values.count, label: label)
        try buffer.hostBuffer().upload(values)
        return buffer
    }

    /// The parameter `name`'s values on the device, uploaded on first use.
    public func parameter(_ name: String) throws -> TrainingBuffer {
        if let buffer = parameters[name] { return buffer }
        let buffer = try holding(graph.parameters.required(name), label: name)
        parameters[name] = buffer
        return buffer
    }

    /// Where the backward writes the gradient of the parameter `name`; a parameter read by two operations of one
    /// backward is refused, as its gradient would need adding up. A backward planned again takes the same buffers.
    public func gradient(of name: String) throws -> TrainingBuffer {
        guard backwardGradients.insert(name).inserted else {
            throw ParameterError("\(name) is read by more than one operation; training needs each read once.")
        }
        if let buffer = gradients[name] { return buffer }
        let buffer = try owned(counts[name] ?? 0, label: "gradient of \(name)")
        gradients[name] = buffer
        return buffer
    }

    /// The parameters whose gradients the backward being planned has asked for.
    private var backwardGradients: Set<String> = []

    /// Starts planning a backward (see ``gradient(of:)``).
    func beginBackward() { backwardGradients = [] }
}

/// What one node's training binds on the device: the operation's operands and its output before its BatchNorm and
/// epilogue (`raw`), and what its forward keeps for its backward.
public struct DeviceNode {
    public var operands: [TrainingBuffer]
    public var raw: TrainingBuffer
    public var saved: [TrainingBuffer] = []
}

/// Where a gradient goes: its buffer, and whether it already holds a contribution to add to.
public struct GradientTarget {
    public var buffer: TrainingBuffer
    public var accumulate: Bool
}

/// An operation's training on the device: its forward from its operands to its raw output, and its gradients.
public protocol DeviceTrainable: TrainableOperation {
    /// The forward's steps; fills `node.saved` with what the backward reads.
    func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<TrainingBuffer>]
    /// The backward's steps, from the raw output's gradient: every parameter's gradient, and each operand's where
    /// `operandGradients` has a target for it.
    func deviceBackward(
        _ node: DeviceNode, rawGradient: TrainingBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<TrainingBuffer>]
}

extension ConvolutionLayer: DeviceTrainable {}
extension DepthwiseLayer: DeviceTrainable {}

extension ConvolutionLayerOperation {
    /// The convolution with its patches made in chunks that fit one buffer on the device.
    private func geometry(_ buffers: TrainingBuffers) -> ConvolutionGeometry {
        kernel.geometry.fittingPatches(maxBytes: buffers.device.limits.maxStorageBufferRange)
    }

    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<
        TrainingBuffer
    >] {
        let geometry = geometry(buffers)
        return geometry.forwardSteps(
            input: node.operands[0], weights: try buffers.parameter(weights.weight),
            bias: try weights.bias.map(buffers.parameter), output: node.raw,
            scratch: buffers.make(geometry.forwardScratchCounts))
    }

    public func deviceBackward(
        _ node: DeviceNode, rawGradient: TrainingBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<TrainingBuffer>] {
        let geometry = geometry(buffers)
        return geometry.backwardSteps(
            ConvolutionGradients(
                input: node.operands[0], weights: try buffers.parameter(weights.weight), outputGradient: rawGradient,
                inputGradient: operandGradients[0]?.buffer, weightGradient: try buffers.gradient(of: weights.weight),
                biasGradient: try weights.bias.map(buffers.gradient),
                scratch: buffers.make(geometry.backwardScratchCounts),
                accumulateInput: operandGradients[0]?.accumulate ?? false))
    }
}

extension AttentionLayer: DeviceTrainable {
    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<
        TrainingBuffer
    >] {
        kernel.trainingForwardSteps(
            qkv: node.operands[0], output: node.raw, scratch: buffers.make(kernel.forwardScratchCounts))
    }

    public func deviceBackward(
        _ node: DeviceNode, rawGradient: TrainingBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<TrainingBuffer>] {
        guard let target = operandGradients[0] else { return [] }
        // The products write q's, k's and v's gradients apart, so a contribution to add goes through a buffer.
        let gradient = target.accumulate ? buffers.make(kernel.inputCount) : target.buffer
        let steps = kernel.backwardSteps(
            qkv: node.operands[0], outputGradient: rawGradient, inputGradient: gradient,
            scratch: buffers.make(kernel.backwardScratchCounts))
        return steps
            + (target.accumulate ? Accumulate(count: kernel.inputCount).steps(gradient, into: target.buffer) : [])
    }
}

extension SqueezeExciteLayer: DeviceTrainable {
    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<
        TrainingBuffer
    >] {
        node.saved = buffers.make(kernel.savedCounts, label: "squeeze-excite saved")
        let (w1, b1, w2, b2) = try parameterBuffers(buffers)
        return kernel.trainingForwardSteps(
            input: node.operands[0], w1: w1, b1: b1, w2: w2, b2: b2, saved: node.saved,
            scratch: buffers.make(kernel.forwardScratchCounts), output: node.raw, config: buffers.config)
    }

    private func parameterBuffers(_ buffers: TrainingBuffers) throws -> (
        TrainingBuffer, TrainingBuffer, TrainingBuffer, TrainingBuffer
    ) {
        let arrays = try weights.arrays.map(buffers.parameter)
        return (arrays[0], arrays[1], arrays[2], arrays[3])
    }

    public func deviceBackward(
        _ node: DeviceNode, rawGradient: TrainingBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<TrainingBuffer>] {
        let (w1, _, w2, _) = try parameterBuffers(buffers)
        let gradients = try weights.arrays.map(buffers.gradient)
        let target = operandGradients[0]
        return kernel.backwardSteps(
            SqueezeExciteGradients(
                input: node.operands[0], outputGradient: rawGradient, means: node.saved[0], hidden: node.saved[1],
                activated: node.saved[2], gates: node.saved[3], w1: w1, w2: w2,
                inputGradient: target?.buffer ?? buffers.make(kernel.count), w1Gradient: gradients[0],
                b1Gradient: gradients[1], w2Gradient: gradients[2], b2Gradient: gradients[3],
                scratch: buffers.make(kernel.backwardScratchCounts), accumulateInput: target?.accumulate ?? false))
    }
}

extension PoolingKernel {
    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<
        TrainingBuffer
    >] {
        steps(input: node.operands[0], output: node.raw, config: buffers.config)
    }

}

/// The average poolings, whose backward is one gather with no scratch.
protocol AveragePoolingBackward: PoolingKernel {
    func backwardSteps<Resource>(
        input: Resource, outputGradient: Resource, inputGradient: Resource, accumulate: Bool
    ) -> [KernelStep<Resource>]
}

extension AvgPool: AveragePoolingBackward {}
extension GlobalAvgPool: AveragePoolingBackward {}

extension AveragePoolingBackward {
    public func deviceBackward(
        _ node: DeviceNode, rawGradient: TrainingBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<TrainingBuffer>] {
        guard let target = operandGradients[0] else { return [] }
        return backwardSteps(
            input: node.operands[0], outputGradient: rawGradient, inputGradient: target.buffer,
            accumulate: target.accumulate)
    }
}

extension MaxPool: DeviceTrainable {
    public func deviceBackward(
        _ node: DeviceNode, rawGradient: TrainingBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<TrainingBuffer>] {
        guard let target = operandGradients[0] else { return [] }
        return backwardSteps(
            input: node.operands[0], outputGradient: rawGradient, inputGradient: target.buffer,
            choices: buffers.make(backwardScratchCount, label: "max pooling's choices"),
            accumulate: target.accumulate)
    }
}
extension AvgPool: DeviceTrainable {}
extension GlobalAvgPool: DeviceTrainable {}

extension Add: DeviceTrainable {
    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<
        TrainingBuffer
    >] {
        Add(count: count).steps(a: node.operands[0], b: node.operands[1], output: node.raw, config: buffers.config)
    }

    public func deviceBackward(
        _ node: DeviceNode, rawGradient: TrainingBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<TrainingBuffer>] {
        operandGradients.compactMap { $0 }.flatMap { target in
            Accumulate(count: count, accumulate: target.accumulate).steps(rawGradient, into: target.buffer)
        }
    }
}
