import Foundation
import Kernels
import VulkanCompute

/// The buffers of a ``TrainingSession``: each made once, float32, and kept for the session's life, with the graph's
/// parameters on the device and a gradient buffer per parameter.
public final class TrainingBuffers {
    public let device: VulkanDevice
    /// The kernel settings the training kernels run under (the storage family within the device's limits).
    public let config: KernelConfig
    let graph: Graph
    private(set) var parameters: [String: VulkanBuffer] = [:]
    /// Every parameter's gradient, by state-dict name, as the backward writes them.
    private(set) var gradients: [String: VulkanBuffer] = [:]
    /// Values of each declared array, by state-dict name.
    let counts: [String: Int]
    /// Bytes of every buffer made.
    private(set) var bytes = 0

    init(graph: Graph, device: VulkanDevice) {
        self.graph = graph
        self.device = device
        config = KernelConfig(family: .storage, limits: device.limits)
        counts = Dictionary(graph.declarations.map { ($0.name, $0.count) }, uniquingKeysWith: { first, _ in first })
    }

    /// A buffer of `count` floats; in `memory` ``BufferMemory/staging`` the host writes it without a copy (a step's
    /// few stochastic-depth scales).
    public func make(_ count: Int, label: String = "training", memory: BufferMemory = .deviceLocal) throws
        -> VulkanBuffer
    {
        let size = Grid.roundUp(max(count, 1), to: 4) * 4
        bytes += size
        return try VulkanBuffer(device: device, size: size, memory: memory, label: label)
    }

    /// Buffers of `counts` floats each.
    public func make(_ counts: [Int], label: String = "training scratch") throws -> [VulkanBuffer] {
        try counts.map { try make($0, label: label) }
    }

    /// The buffer holding `values`.
    public func holding(_ values: [Float], label: String) throws -> VulkanBuffer {
        let buffer = try make(values.count, label: label)
        try buffer.upload(values)
        return buffer
    }

    /// The parameter `name`'s values on the device, uploaded on first use.
    public func parameter(_ name: String) throws -> VulkanBuffer {
        if let buffer = parameters[name] { return buffer }
        let buffer = try holding(graph.parameters.required(name), label: name)
        parameters[name] = buffer
        return buffer
    }

    /// Where the backward writes the gradient of the parameter `name`; a parameter read by two operations is refused,
    /// as its gradient would need adding up.
    public func gradient(of name: String) throws -> VulkanBuffer {
        guard gradients[name] == nil else {
            throw ParameterError("\(name) is read by more than one operation; training needs each read once.")
        }
        let buffer = try make(counts[name] ?? 0, label: "gradient of \(name)")
        gradients[name] = buffer
        return buffer
    }
}

/// What one node's training binds on the device: the operation's operands and its output before its BatchNorm and
/// epilogue (`raw`), and what its forward keeps for its backward.
public struct DeviceNode {
    public var operands: [VulkanBuffer]
    public var raw: VulkanBuffer
    public var saved: [VulkanBuffer] = []
}

/// Where a gradient goes: its buffer, and whether it already holds a contribution to add to.
public struct GradientTarget {
    public var buffer: VulkanBuffer
    public var accumulate: Bool
}

/// An operation's training on the device: its forward from its operands to its raw output, and its gradients.
public protocol DeviceTrainable: TrainableOperation {
    /// The forward's steps; fills `node.saved` with what the backward reads.
    func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<VulkanBuffer>]
    /// The backward's steps, from the raw output's gradient: every parameter's gradient, and each operand's where
    /// `operandGradients` has a target for it.
    func deviceBackward(
        _ node: DeviceNode, rawGradient: VulkanBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<VulkanBuffer>]
}

extension ConvolutionLayer: DeviceTrainable {}
extension DepthwiseLayer: DeviceTrainable {}

extension ConvolutionLayerOperation {
    /// The convolution with its patches made in chunks that fit one buffer on the device.
    private func geometry(_ buffers: TrainingBuffers) -> ConvolutionGeometry {
        kernel.geometry.fittingPatches(maxBytes: buffers.device.limits.maxStorageBufferRange)
    }

    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<VulkanBuffer>]
    {
        let geometry = geometry(buffers)
        return geometry.forwardSteps(
            input: node.operands[0], weights: try buffers.parameter(weights.weight),
            bias: try weights.bias.map(buffers.parameter), output: node.raw,
            scratch: try buffers.make(geometry.forwardScratchCounts))
    }

    public func deviceBackward(
        _ node: DeviceNode, rawGradient: VulkanBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<VulkanBuffer>] {
        let geometry = geometry(buffers)
        return geometry.backwardSteps(
            ConvolutionGradients(
                input: node.operands[0], weights: try buffers.parameter(weights.weight), outputGradient: rawGradient,
                inputGradient: operandGradients[0]?.buffer, weightGradient: try buffers.gradient(of: weights.weight),
                biasGradient: try weights.bias.map(buffers.gradient),
                scratch: try buffers.make(geometry.backwardScratchCounts),
                accumulateInput: operandGradients[0]?.accumulate ?? false))
    }
}

extension AttentionLayer: DeviceTrainable {
    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<VulkanBuffer>]
    {
        kernel.trainingForwardSteps(
            qkv: node.operands[0], output: node.raw, scratch: try buffers.make(kernel.forwardScratchCounts))
    }

    public func deviceBackward(
        _ node: DeviceNode, rawGradient: VulkanBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<VulkanBuffer>] {
        guard let target = operandGradients[0] else { return [] }
        // The products write q's, k's and v's gradients apart, so a contribution to add goes through a buffer.
        let gradient = target.accumulate ? try buffers.make(kernel.inputCount) : target.buffer
        let steps = kernel.backwardSteps(
            qkv: node.operands[0], outputGradient: rawGradient, inputGradient: gradient,
            scratch: try buffers.make(kernel.backwardScratchCounts))
        return steps
            + (target.accumulate ? Accumulate(count: kernel.inputCount).steps(gradient, into: target.buffer) : [])
    }
}

extension SqueezeExciteLayer: DeviceTrainable {
    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<VulkanBuffer>]
    {
        node.saved = try buffers.make(kernel.savedCounts, label: "squeeze-excite saved")
        let (w1, b1, w2, b2) = try parameterBuffers(buffers)
        return kernel.trainingForwardSteps(
            input: node.operands[0], w1: w1, b1: b1, w2: w2, b2: b2, saved: node.saved,
            scratch: try buffers.make(kernel.forwardScratchCounts), output: node.raw, config: buffers.config)
    }

    private func parameterBuffers(_ buffers: TrainingBuffers) throws -> (
        VulkanBuffer, VulkanBuffer, VulkanBuffer, VulkanBuffer
    ) {
        let arrays = try weights.arrays.map(buffers.parameter)
        return (arrays[0], arrays[1], arrays[2], arrays[3])
    }

    public func deviceBackward(
        _ node: DeviceNode, rawGradient: VulkanBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<VulkanBuffer>] {
        let (w1, _, w2, _) = try parameterBuffers(buffers)
        let gradients = try weights.arrays.map(buffers.gradient)
        let target = operandGradients[0]
        return kernel.backwardSteps(
            SqueezeExciteGradients(
                input: node.operands[0], outputGradient: rawGradient, means: node.saved[0], hidden: node.saved[1],
                activated: node.saved[2], gates: node.saved[3], w1: w1, w2: w2,
                inputGradient: try target?.buffer ?? buffers.make(kernel.count), w1Gradient: gradients[0],
                b1Gradient: gradients[1], w2Gradient: gradients[2], b2Gradient: gradients[3],
                scratch: try buffers.make(kernel.backwardScratchCounts), accumulateInput: target?.accumulate ?? false))
    }
}

extension PoolingKernel {
    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<VulkanBuffer>]
    {
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
        _ node: DeviceNode, rawGradient: VulkanBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<VulkanBuffer>] {
        guard let target = operandGradients[0] else { return [] }
        return backwardSteps(
            input: node.operands[0], outputGradient: rawGradient, inputGradient: target.buffer,
            accumulate: target.accumulate)
    }
}

extension MaxPool: DeviceTrainable {
    public func deviceBackward(
        _ node: DeviceNode, rawGradient: VulkanBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<VulkanBuffer>] {
        guard let target = operandGradients[0] else { return [] }
        return backwardSteps(
            input: node.operands[0], outputGradient: rawGradient, inputGradient: target.buffer,
            choices: try buffers.make(backwardScratchCount, label: "max pooling's choices"),
            accumulate: target.accumulate)
    }
}
extension AvgPool: DeviceTrainable {}
extension GlobalAvgPool: DeviceTrainable {}

extension Add: DeviceTrainable {
    public func deviceForward(_ node: inout DeviceNode, _ buffers: TrainingBuffers) throws -> [KernelStep<VulkanBuffer>]
    {
        Add(count: count).steps(a: node.operands[0], b: node.operands[1], output: node.raw, config: buffers.config)
    }

    public func deviceBackward(
        _ node: DeviceNode, rawGradient: VulkanBuffer, operandGradients: [GradientTarget?], _ buffers: TrainingBuffers
    ) throws -> [KernelStep<VulkanBuffer>] {
        operandGradients.compactMap { $0 }.flatMap { target in
            Accumulate(count: count, accumulate: target.accumulate).steps(rawGradient, into: target.buffer)
        }
    }
}
