import Foundation
import Kernels
import VulkanCompute

/// Builds a ``TrainingSession``'s steps: the forward node by node (the operation, then its train-mode BatchNorm and
/// epilogue), the loss, and the backward in reverse, each tensor's gradient written by its first contribution and
/// added to by the rest.
struct TrainingPlanner {
    let graph: Graph
    let buffers: TrainingBuffers
    /// Which node and pass each planned step belongs to, in step order (for profiles).
    private(set) var owners: [(node: String, backward: Bool)] = []
    /// Every BatchNorm's running statistics (mean, then variance), updated in place by the forward.
    private(set) var running: [(norm: BatchNorm, buffer: TrainingBuffer)] = []
    /// What the forward made of each node, in order.
    private var records: [Record] = []
    /// Each tensor's value, and its gradient once a contribution is planned.
    private(set) var values: [TrainingBuffer?]
    private(set) var gradients: [TrainingBuffer?]
    /// Stochastic depth's per-image scales (`[batch]`, written by the host before each step), by node name.
    let masks: [String: TrainingBuffer]

    /// Whether the backward makes the outputs of nodes that add no residual again from their raw outputs (their
    /// BatchNorm and activation, one elementwise pass) rather than keeping them from the forward.
    private(set) var recomputes = false
    /// The node that writes each tensor.
    private let producers: [TensorID: Int]
    /// The outputs the backward has made again so far.
    private var recomputed: [TensorID: TrainingBuffer] = [:]

    private struct Record {
        var node: DeviceNode
        var residual: TrainingBuffer?
        /// Stochastic depth's scales of the node's branch, where it has them.
        var keep: TrainingBuffer?
        /// The BatchNorm's batch statistics (means, then biased variances), gamma and beta, where it has one.
        var normalisation: (statistics: TrainingBuffer, gamma: TrainingBuffer, beta: TrainingBuffer)?
        /// The node's output: its raw output where no BatchNorm, activation or residual follows the operation.
        var output: TrainingBuffer

        /// Whether the output can be made again from what the backward keeps anyway (the raw output, the
        /// BatchNorm's statistics): it is not the raw output, and needs no residual or mask.
        var recomputable: Bool { output !== node.raw && residual == nil && keep == nil }
    }

    init(graph: Graph, buffers: TrainingBuffers, stochasticDepth: StochasticDepth) throws {
        self.graph = graph
        self.buffers = buffers
        values = [TrainingBuffer?](repeating: nil, count: graph.shapes.count)
        gradients = values
        producers = Dictionary(uniqueKeysWithValues: graph.nodes.enumerated().map { ($1.output, $0) })
        masks = try Dictionary(
            uniqueKeysWithValues: stochasticDepth.branches.map {
                ($0.node, try buffers.owned(graph.batch, label: "\($0.node) drop-path mask", memory: .staging))
            })
    }

    private func trainable(_ node: Node) -> any DeviceTrainable {
        guard let op = node.op as? any DeviceTrainable else { preconditionFailure("checked by TrainingSession") }
        return op
    }

    private func value(_ tensor: TensorID) -> TrainingBuffer {
        guard let buffer = values[tensor] else { preconditionFailure("tensors are made before they are read") }
        return buffer
    }

    // MARK: Forward

    mutating func forward(input: TrainingBuffer) throws -> [KernelStep<TrainingBuffer>] {
        values[graph.input] = input
        var steps: [KernelStep<TrainingBuffer>] = []
        for node in graph.nodes {
            let nodeSteps = try forward(node)
            owners += Array(repeating: (node.name, false), count: nodeSteps.count)
            steps += nodeSteps
        }
        return steps
    }

    private mutating func forward(_ node: Node) throws -> [KernelStep<TrainingBuffer>] {
        let op = trainable(node), shape = graph.shapes[node.output], epilogue = op.trainingEpilogue
        let residual = epilogue.hasResidual ? value(node.inputs[op.operandCount]) : nil
        let keep = masks[node.name]
        var device = DeviceNode(
            operands: node.inputs.prefix(op.operandCount).map(value),
            raw: buffers.make(shape.count, label: node.name))
        var steps = try op.deviceForward(&device, buffers)
        var normalisation: (statistics: TrainingBuffer, gamma: TrainingBuffer, beta: TrainingBuffer)?
        if let norm = op.batchNorm {
            let batchNorm = BatchNormTraining(batch: shape.batch, channels: shape.channels, pixels: shape.pixels)
            let (stats, runningBuffer) = (buffers.make(2 * shape.channels), try runningStatistics(norm))
            steps += batchNorm.statisticsSteps(input: device.raw, statistics: stats, running: runningBuffer)
            normalisation = (stats, try buffers.parameter(norm.gamma), try buffers.parameter(norm.beta))
        }
        let hasEpilogue = normalisation != nil || epilogue.activation != .identity || residual != nil
        let record = Record(
            node: device, residual: residual, keep: keep, normalisation: normalisation,
            output: hasEpilogue ? buffers.make(shape.count, label: "\(node.name) output") : device.raw)
        steps += outputSteps(node, record, into: record.output)
        values[node.output] = record.output
        records.append(record)
        return steps
    }

    /// The steps that make `node`'s output from its raw output into `output`: its BatchNorm with the batch's
    /// statistics, stochastic depth's scale, the residual and the activation; none where the output is the raw output.
    private func outputSteps(_ node: Node, _ record: Record, into output: TrainingBuffer) -> [KernelStep<
        TrainingBuffer
    >] {
        guard output !== record.node.raw else { return [] }
        let activation = trainable(node).trainingEpilogue.activation
        return epilogueTraining(graph.shapes[node.output], activation, batchNorm: record.normalisation != nil)
            .forwardSteps(
                input: record.node.raw, residual: record.residual, normalisation: record.normalisation,
                keep: record.keep, output: output)
    }

    private mutating func runningStatistics(_ norm: BatchNorm) throws -> TrainingBuffer {
        let values = graph.parameters.required(norm.runningMean) + graph.parameters.required(norm.runningVariance)
        let buffer = try buffers.holding(values, label: "\(norm.runningMean) and variance")
        running.append((norm, buffer))
        return buffer
    }

    private func epilogueTraining(_ shape: TensorShape, _ activation: Activation, batchNorm: Bool) -> EpilogueTraining {
        EpilogueTraining(
            batch: shape.batch, channels: shape.channels, pixels: shape.pixels, activation: activation,
            batchNorm: batchNorm)
    }

    // MARK: Loss

    /// Each image's loss into `losses`, and the logits' gradient: the first contribution to the backward.
    mutating func loss(targets: TrainingBuffer, losses: TrainingBuffer) throws -> [KernelStep<TrainingBuffer>] {
        let logits = graph.shapes[graph.output]
        guard let gradient = try target(graph.output)?.buffer else { return [] }
        let steps = CrossEntropy(batch: logits.batch, classes: logits.count / logits.batch).steps(
            logits: value(graph.output), targets: targets, gradient: gradient, losses: losses)
        owners += Array(repeating: ("loss", false), count: steps.count)
        return steps
    }

    // MARK: Backward

    /// Where the next contribution to `tensor`'s gradient goes; `nil` for the graph's input, whose gradient nothing
    /// needs.
    private mutating func target(_ tensor: TensorID) throws -> GradientTarget? {
        guard tensor != graph.input else { return nil }
        if let buffer = gradients[tensor] { return GradientTarget(buffer: buffer, accumulate: true) }
        let buffer = buffers.make(graph.shapes[tensor].count, label: "gradient")
        gradients[tensor] = buffer
        return GradientTarget(buffer: buffer, accumulate: false)
    }

    /// The backward, after the forward and the loss; with `recompute`, the outputs of nodes that add no residual are
    /// made again where the backward reads them, so that the forward's copies live only through the forward.
    mutating func backward(recompute: Bool) throws -> [KernelStep<TrainingBuffer>] {
        recomputes = recompute
        buffers.beginBackward()
        var steps: [KernelStep<TrainingBuffer>] = []
        for (index, node) in graph.nodes.enumerated().reversed() {
            guard let outputGradient = gradients[node.output] else { continue }
            var nodeSteps: [KernelStep<TrainingBuffer>] = []
            var record = records[index]
            let op = trainable(node)
            record.node.operands = node.inputs.prefix(op.operandCount).map { backwardValue($0, &nodeSteps) }
            if record.residual != nil { record.residual = backwardValue(node.inputs[op.operandCount], &nodeSteps) }
            nodeSteps += try backward(node, record, outputGradient: outputGradient)
            owners += Array(repeating: (node.name, true), count: nodeSteps.count)
            steps += nodeSteps
        }
        return steps
    }

    /// The value of `tensor` as the backward reads it: the forward's, or (recomputing) made again once, the first
    /// time the backward reads it, with the steps that make it appended to `steps`.
    private mutating func backwardValue(_ tensor: TensorID, _ steps: inout [KernelStep<TrainingBuffer>])
        -> TrainingBuffer
    {
        guard recomputes, let producer = producers[tensor], records[producer].recomputable else { return value(tensor) }
        if let buffer = recomputed[tensor] { return buffer }
        let node = graph.nodes[producer]
        let buffer = buffers.make(graph.shapes[tensor].count, label: "\(node.name) output, recomputed")
        steps += outputSteps(node, records[producer], into: buffer)
        recomputed[tensor] = buffer
        return buffer
    }

    private mutating func backward(_ node: Node, _ record: Record, outputGradient: TrainingBuffer) throws
        -> [KernelStep<TrainingBuffer>]
    {
        let op = trainable(node), shape = graph.shapes[node.output], epilogue = op.trainingEpilogue
        var steps: [KernelStep<TrainingBuffer>] = []
        var rawGradient = outputGradient
        let normalisation = record.normalisation
        if record.output !== record.node.raw {
            let pre = buffers.make(shape.count, label: "\(node.name) pre-activation gradient")
            steps += epilogueTraining(shape, epilogue.activation, batchNorm: normalisation != nil).backwardSteps(
                outputGradient: outputGradient, input: record.node.raw, residual: record.residual,
                normalisation: normalisation, keep: record.keep, preGradient: pre)
            if record.residual != nil, let target = try target(node.inputs[op.operandCount]) {
                steps += Accumulate(count: shape.count, accumulate: target.accumulate).steps(pre, into: target.buffer)
            }
            var branchGradient = pre
            if let keep = record.keep {
                branchGradient = buffers.make(shape.count, label: "\(node.name) branch gradient")
                steps += ImageScale(count: shape.count, batch: shape.batch).steps(
                    pre, scale: keep, into: branchGradient)
            }
            rawGradient = branchGradient
            if let norm = op.batchNorm, let normalisation {
                rawGradient = buffers.make(shape.count, label: "\(node.name) raw gradient")
                steps += BatchNormTraining(batch: shape.batch, channels: shape.channels, pixels: shape.pixels)
                    .backwardSteps(
                        input: record.node.raw, preGradient: branchGradient, statistics: normalisation.statistics,
                        gamma: normalisation.gamma, gammaGradient: try buffers.gradient(of: norm.gamma),
                        betaGradient: try buffers.gradient(of: norm.beta), inputGradient: rawGradient)
            }
        }
        var targets: [GradientTarget?] = []
        for tensor in node.inputs.prefix(op.operandCount) { targets.append(try target(tensor)) }
        return steps
            + (try op.deviceBackward(record.node, rawGradient: rawGradient, operandGradients: targets, buffers))
    }
}
