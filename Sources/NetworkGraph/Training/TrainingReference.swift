import Foundation
import Kernels

/// One training step of a ``Graph`` on the CPU, in Double: the plain reference the device's training kernels are
/// checked against. The forward runs as PyTorch's `model.train()` does: every BatchNorm normalises with its batch's
/// statistics and moves its running statistics toward them; the loss is ``CrossEntropy``; the backward visits the
/// nodes in reverse, each operation's gradient from its own ``TrainableOperation`` reference.
public struct TrainingReference {
    public let graph: Graph

    /// What one step computes.
    public struct Step: Sendable {
        /// The mean loss over the batch.
        public var loss: Double
        /// The logits, `[batch][classes]`.
        public var logits: [Double]
        /// The gradient of the loss with respect to every trainable parameter the graph reads, by state-dict name.
        public var gradients: [String: [Double]]
        /// Every BatchNorm's running mean and variance after the step, by state-dict name.
        public var runningStatistics: [String: [Double]]
        /// The gradient of the loss with respect to each tensor of the graph, by ``TensorID`` (`nil` where nothing
        /// needs one), kept only when asked for.
        public var tensorGradients: [[Double]?] = []
    }

    /// Refuses a graph with an operation that has no training reference, naming its node.
    public init(_ graph: Graph) throws {
        if let node = graph.nodes.first(where: { !($0.op is any TrainableOperation) }) {
            throw ParameterError("\(node.name) (\(node.op.name)) has no training reference yet.")
        }
        guard !graph.parameters.isEmpty else { throw ParameterError("The graph has no parameter values to train.") }
        self.graph = graph
    }

    /// What the forward keeps of one node for the backward.
    private struct Saved {
        var operands: [[Double]]
        /// The operation's output before its BatchNorm.
        var raw: [Double]
        var statistics: BatchNormTraining.Statistics?
        /// The value the activation reads (after the BatchNorm, stochastic depth's scale and the residual add).
        var preActivation: [Double]
        /// Each element's stochastic-depth scale (its image's), where the node has a mask.
        var scales: [Double]?
    }

    /// The loss of the train-mode forward alone (what finite differences of a step's gradients evaluate).
    public func loss(input: [Float], targets: [Double], masks: [String: [Double]] = [:]) -> Double {
        let logits = forwardPass(input, masks: masks).logits
        return crossEntropy(logits).lossAndGradient(logits: logits, targets: targets).loss
    }

    /// One step on `input` (`[batch][3][H][W]`) with per-image target distributions `targets` (`[batch][classes]`;
    /// see ``CrossEntropy/targets(labels:smoothing:)``). `masks` are stochastic depth's scales, `[batch]` by the name
    /// of a node that adds a residual (see ``StochasticDepth/masks(batch:using:)``): that node's branch (its output
    /// before the add) is scaled by its image's.
    public func step(
        input: [Float], targets: [Double], masks: [String: [Double]] = [:], keepingTensorGradients: Bool = false
    ) -> Step {
        let (logits, saved, running) = forwardPass(input, masks: masks)
        let (value, logitGradient) = crossEntropy(logits).lossAndGradient(logits: logits, targets: targets)
        let (gradients, tensors) = backward(saved, outputGradient: logitGradient)
        var step = Step(loss: value, logits: logits, gradients: gradients, runningStatistics: running)
        if keepingTensorGradients { step.tensorGradients = tensors }
        return step
    }

    /// The train-mode forward: the logits, what each node keeps for its backward, and the new running statistics.
    private func forwardPass(_ input: [Float], masks: [String: [Double]]) -> (
        logits: [Double], saved: [Saved], running: [String: [Double]]
    ) {
        for (node, mask) in masks {
            precondition(
                graph.nodes.contains { $0.name == node && $0.op.epilogue.hasResidual } && mask.count == graph.batch,
                "a mask of \(graph.batch) scales for a node that adds a residual: \(node)")
        }
        var values = [[Double]](repeating: [], count: graph.shapes.count)
        values[graph.input] = input.map(Double.init)
        var saved: [Saved] = []
        var running: [String: [Double]] = [:]
        for node in graph.nodes {
            let (output, kept) = forward(node, values, mask: masks[node.name], running: &running)
            values[node.output] = output
            saved.append(kept)
        }
        return (values[graph.output], saved, running)
    }

    private func crossEntropy(_ logits: [Double]) -> CrossEntropy {
        CrossEntropy(batch: graph.batch, classes: logits.count / graph.batch)
    }

    /// The node's output and what its backward needs; its BatchNorm's new running statistics into `running`.
    private func forward(_ node: Node, _ values: [[Double]], mask: [Double]?, running: inout [String: [Double]])
        -> ([Double], Saved)
    {
        let op = trainable(node)
        let operands = node.inputs.prefix(op.operandCount).map { values[$0] }
        let raw = op.trainingForward(Array(operands), parameters: graph.parameters)
        var normalised = raw, statistics: BatchNormTraining.Statistics?
        if let norm = op.batchNorm {
            let bn = batchNorm(node)
            let batchStatistics = bn.statistics(raw)
            normalised = bn.forward(
                raw, gamma: graph.parameters.double(norm.gamma), beta: graph.parameters.double(norm.beta),
                statistics: batchStatistics)
            let updated = bn.updatedRunning(
                mean: graph.parameters.double(norm.runningMean),
                variance: graph.parameters.double(norm.runningVariance), statistics: batchStatistics)
            (running[norm.runningMean], running[norm.runningVariance]) = (updated.mean, updated.variance)
            statistics = batchStatistics
        }
        let epilogue = op.trainingEpilogue
        let perImage = raw.count / graph.batch
        let scales = mask.map { mask in raw.indices.map { mask[$0 / perImage] } }
        if let scales { normalised = zip(normalised, scales).map(*) }
        let preActivation =
            epilogue.hasResidual ? zip(normalised, values[node.inputs[op.operandCount]]).map(+) : normalised
        return (
            preActivation.map(epilogue.activation.apply),
            Saved(
                operands: Array(operands), raw: raw, statistics: statistics, preActivation: preActivation,
                scales: scales)
        )
    }

    /// The gradients of every parameter, from the logits' gradient back through the nodes in reverse.
    private func backward(_ saved: [Saved], outputGradient: [Double]) -> (
        parameters: [String: [Double]], tensors: [[Double]?]
    ) {
        var tensorGradients = [[Double]?](repeating: nil, count: graph.shapes.count)
        tensorGradients[graph.output] = outputGradient
        var parameterGradients: [String: [Double]] = [:]
        for (index, node) in graph.nodes.enumerated().reversed() {
            guard let dy = tensorGradients[node.output] else { continue }
            let op = trainable(node), kept = saved[index], epilogue = op.trainingEpilogue
            let dPre = zip(dy, kept.preActivation).map { $0 * epilogue.activation.derivative($1) }
            if epilogue.hasResidual { accumulate(dPre, into: &tensorGradients[node.inputs[op.operandCount]]) }
            let dBranch = kept.scales.map { zip(dPre, $0).map(*) } ?? dPre
            var dRaw = dBranch
            if let norm = op.batchNorm, let statistics = kept.statistics {
                let g = batchNorm(node).backward(
                    kept.raw, gamma: graph.parameters.double(norm.gamma), statistics: statistics,
                    outputGradient: dBranch)
                dRaw = g.input
                accumulate(g.gamma, into: &parameterGradients[norm.gamma])
                accumulate(g.beta, into: &parameterGradients[norm.beta])
            }
            let g = op.trainingBackward(kept.operands, outputGradient: dRaw, parameters: graph.parameters)
            for (name, gradient) in g.parameters { accumulate(gradient, into: &parameterGradients[name]) }
            for (input, gradient) in zip(node.inputs, g.operands) {
                accumulate(gradient, into: &tensorGradients[input])
            }
        }
        return (parameterGradients, tensorGradients)
    }

    private func accumulate(_ gradient: [Double], into total: inout [Double]?) {
        total = total.map { zip($0, gradient).map(+) } ?? gradient
    }

    private func trainable(_ node: Node) -> any TrainableOperation {
        guard let op = node.op as? any TrainableOperation else { preconditionFailure("checked in init") }
        return op
    }

    /// The train-mode BatchNorm over the node's output.
    private func batchNorm(_ node: Node) -> BatchNormTraining {
        let shape = graph.shapes[node.output]
        return BatchNormTraining(batch: shape.batch, channels: shape.channels, pixels: shape.pixels)
    }
}
