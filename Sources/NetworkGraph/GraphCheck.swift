import Foundation
import Kernels
import VulkanCompute

/// One node's output on the device compared with the CPU reference of that node, fed the device's own inputs.
public struct NodeComparison: Sendable, Codable {
    public let index: Int
    public let name: String
    public let op: String
    public let shape: String
    public let relativeL2: Double
    public let maxAbsolute: Double
    public let pass: Bool
}

/// Runs a graph on the device, keeping every intermediate tensor, and checks each node against its CPU reference:
/// what `BOSSNET_CHECK=1` does. Each node's reference is computed from the device's values of its inputs, so an error
/// is pinned on the node that made it rather than smeared over everything after it.
public enum GraphCheck {
    /// Compares every node of `graph` run on `device` with the kernels `kernels` asks for with `reference`'s node of
    /// the same index run on the CPU (`reference` defaults to `graph`; a different one lets tests plant a fault). The
    /// first image of the batch is checked (a session that keeps every tensor may have to split a larger batch, and
    /// no operation mixes images); the tolerance is the kernel family's.
    public static func compare(
        graph: Graph, device: VulkanDevice, input: [Float], reference: Graph? = nil, pipelines: KernelPipelines? = nil,
        kernels: KernelChoice = .automatic
    ) throws -> [NodeComparison] {
        try check(
            graph: graph, device: device, input: input, reference: reference, pipelines: pipelines, kernels: kernels
        ).nodes
    }

    /// ``compare(graph:device:input:reference:pipelines:kernels:)``, and the graph's output on the device for the
    /// first image, read from the same run.
    static func check(
        graph: Graph, device: VulkanDevice, input: [Float], reference: Graph?, pipelines: KernelPipelines?,
        kernels: KernelChoice
    ) throws -> (nodes: [NodeComparison], output: [Float]) {
        let graph = graph.withBatch(1)
        let reference = (reference ?? graph).withBatch(1)
        precondition(reference.nodes.count == graph.nodes.count, "the reference graph has other nodes")
        let input = Array(input.prefix(graph.shapes[graph.input].count))
        let session = try InferenceSession(
            graph: graph, device: device, pipelines: pipelines,
            options: SessionOptions(keepIntermediates: true, kernels: kernels))
        let tolerance: Double
        switch kernels {
        case let .family(family): tolerance = Tolerance.relativeL2(for: family)
        case .automatic: tolerance = Tolerance.float32RelativeL2
        }
        _ = try session.run(input)
        var values = [[Float]?](repeating: nil, count: graph.shapes.count)
        func value(_ id: TensorID) throws -> [Float] {
            if let known = values[id] { return known }
            let read = try session.tensor(id)
            values[id] = read
            return read
        }
        let nodes = try reference.nodes.enumerated().map { index, node in
            let expected = CPUExecutor.evaluate(
                node, inputs: try node.inputs.map(value), parameters: reference.parameters)
            var comparison = Comparison(try value(graph.nodes[index].output), expected)
            comparison.tolerance = tolerance
            return NodeComparison(
                index: index, name: node.name, op: node.op.name,
                shape: graph.shapes[node.output].description, relativeL2: comparison.relativeL2,
                maxAbsolute: comparison.maxAbsolute, pass: comparison.passes)
        }
        return (nodes, try value(graph.output))
    }

    /// The first node that fails ``compare(graph:device:input:reference:pipelines:kernels:)``, or `nil` when all pass.
    public static func firstDivergence(
        graph: Graph, device: VulkanDevice, input: [Float], reference: Graph? = nil, kernels: KernelChoice = .automatic
    ) throws -> NodeComparison? {
        try compare(graph: graph, device: device, input: input, reference: reference, kernels: kernels).first {
            !$0.pass
        }
    }
}

/// What `BOSSNET_CHECK=1` found: the first node that diverges from its own CPU reference, and how far the whole
/// network's output is from the CPU reference run end to end. Every node can pass its own check while the output
/// still diverges (rounding amplified through the network), so both are judged.
public struct CheckVerdict: Sendable, CustomStringConvertible {
    /// The first node that fails its check, or nil.
    public let firstDivergence: NodeComparison?
    /// The output on the device against the CPU reference run of the whole graph from the same input.
    public let endToEnd: Comparison

    /// Whether every node and the output are within their tolerances.
    public var passes: Bool { firstDivergence == nil && endToEnd.passes }

    public var description: String {
        let output = String(
            format: "the output is %.2g from the CPU reference run end to end (tolerance %.0e)",
            endToEnd.relativeL2, endToEnd.tolerance)
        if let node = firstDivergence {
            return "first divergence at \(node.name) (\(node.op) \(node.shape)): relative L2 error "
                + "\(node.relativeL2); \(output)"
        }
        return endToEnd.passes
            ? "every node matches its CPU reference and \(output)"
            : "every node matches its own CPU reference, but \(output): rounding is amplified through the "
                + "network (with synthetic weights, a sign that they are ill-conditioned for this input)"
    }
}

extension GraphCheck {
    /// Checks every node (``compare(graph:device:input:reference:pipelines:kernels:)``) and the whole network's
    /// output for the first image of `input` against the CPU reference run end to end
    /// (``Tolerance/networkRelativeL2(for:)``); one device run serves both. `reference` defaults to `graph`; a
    /// different one lets tests plant a fault.
    public static func run(
        graph: Graph, device: VulkanDevice, input: [Float], reference: Graph? = nil, kernels: KernelChoice = .automatic
    ) throws -> CheckVerdict {
        let (nodes, output) = try check(
            graph: graph, device: device, input: input, reference: reference, pipelines: nil, kernels: kernels)
        let single = (reference ?? graph).withBatch(1)
        let image = Array(input.prefix(single.shapes[single.input].count))
        var endToEnd = Comparison(output, CPUExecutor.run(single, input: image))
        endToEnd.tolerance = Tolerance.networkRelativeL2(for: kernels)
        return CheckVerdict(firstDivergence: nodes.first { !$0.pass }, endToEnd: endToEnd)
    }
}

extension Graph {
    /// One check per distinct operation and shape in the graphs, in graph order, each labelled with the graph and the
    /// first node that has it (an operation and shape met in an earlier graph is not repeated): what `bossnet
    /// validate` runs, so that a new model or kernel needs nothing written there.
    public static func distinctChecks(of graphs: [Graph]) -> [(graph: Int, node: String, check: KernelCheck)] {
        var seen: Set<String> = []
        return graphs.enumerated().flatMap { index, graph in
            graph.nodes.compactMap { node in
                let check = node.op.kernelCheck
                return seen.insert("\(check.op) \(check.shape)").inserted ? (index, node.name, check) : nil
            }
        }
    }
}

extension Graph {
    /// The training kernels of the graphs, each distinct check once, labelled by the first node that runs it: every
    /// node's backward (``TrainableOperation/backwardChecks(output:)``), the loss at the logits' shape, and AdamW steps
    /// over the largest weight and over the parameters without weight decay. A node without a training face gets a check that fails, naming it.
    public static func distinctBackwardChecks(of graphs: [Graph]) -> [(graph: Int, node: String, check: KernelCheck)] {
        var seen: Set<String> = []
        return graphs.enumerated().flatMap { index, graph in
            let nodes = graph.nodes.flatMap { node in
                guard let op = node.op as? any TrainableOperation else {
                    let missing = KernelCheck(op: "\(node.op.name)_backward", shape: node.name) { _, _ in
                        throw KernelCheckFailure("\(node.name) (\(node.op.name)) has no backward kernels yet")
                    }
                    return [(node.name, missing)]
                }
                return op.backwardChecks(output: graph.shapes[node.output]).map { (node.name, $0) }
            }
            let logits = graph.shapes[graph.output]
            let loss = CrossEntropy(batch: logits.batch, classes: logits.count / logits.batch).check(smoothing: 0.1)
            // The largest tensor that takes weight decay, and all that take none together (a few thousand values);
            // the whole set of weights may pass a device's storage range, so training updates it in parts.
            let trainable = graph.declarations.filter(\.trainable)
            let decaying = trainable.filter { takesWeightDecay(name: $0.name, shape: $0.shape) }
            let decayed = decaying.map(\.count).max() ?? 0
            let undecayed = trainable.reduce(0) { $0 + $1.count } - decaying.reduce(0) { $0 + $1.count }
            let optimizer = AdamW(learningRate: 0.1, weightDecay: 0.05)  // a step large enough to compare in float32
            let steps = [decayed, undecayed].enumerated().compactMap { index, count in
                count > 5 ? ("optimizer", optimizer.check(count: count, decays: index == 0, first: 0)) : nil
            }
            return (nodes + [("loss", loss)] + steps).compactMap { node, check in
                seen.insert("\(check.op) \(check.shape)").inserted ? (index, node, check) : nil
            }
        }
    }
}
