import Foundation
import Kernels
import VulkanCompute

/// What a dispatch of the plan binds: a tensor, a node's scratch, or a weight array.
enum PlanResource: Hashable, Sendable {
    case tensor(TensorID)
    case scratch(node: Int, index: Int)
    case weight(Int)
}

/// One dispatch of the plan, and the node it belongs to.
struct Step: Sendable {
    var node: Int
    var kernel: KernelStep<PlanResource>
}

/// The dry pass: turns every node into its dispatches, and collects the weight arrays (packed as the kernels read
/// them) and each node's scratch sizes. Nothing here touches the device.
struct Lowering: Sendable {
    private(set) var steps: [Step] = []
    private(set) var weights: [[Float]] = []
    private(set) var scratchBytes: [[Int]]

    private let keepWeights: Bool

    /// Lowers every node; with `weights` false the weight arrays are left empty (for listing dispatches only).
    init(graph: Graph, weights: Bool = true) {
        keepWeights = weights
        scratchBytes = Array(repeating: [], count: graph.nodes.count)
        for (index, node) in graph.nodes.enumerated() { lower(node, index: index) }
    }

    private mutating func weight(_ values: @autoclosure () -> [Float]) -> PlanResource {
        weights.append(keepWeights ? values() : [])
        return .weight(weights.count - 1)
    }

    /// A node's scratch, registered with its size in bytes.
    private mutating func scratch(_ node: Int, bytes: Int) -> PlanResource {
        scratchBytes[node].append(bytes)
        return .scratch(node: node, index: scratchBytes[node].count - 1)
    }

    /// Each operation's own steps, with the graph's tensors, the node's scratch and the packed weights as resources.
    private mutating func lower(_ node: Node, index: Int) {
        let x = PlanResource.tensor(node.inputs[0])
        let residual = node.inputs.count > 1 ? PlanResource.tensor(node.inputs[1]) : nil
        let output = PlanResource.tensor(node.output)
        let kernels: [KernelStep<PlanResource>]
        switch node.op {
        case let .conv2d(op, p):
            kernels = op.steps(input: x, weights: weight(op.packWeights(p.weights)), affine: weight(Self.affine(p)), residual: residual, output: output)
        case let .pointwise(op, p):
            kernels = op.steps(input: x, weights: weight(op.packWeights(p.weights)), affine: weight(Self.affine(p)), residual: residual, output: output)
        case let .depthwise(op, p):
            kernels = op.steps(input: x, weights: weight(p.weights), affine: weight(Self.affine(p)), residual: residual, output: output)
        case let .maxPool(op):
            kernels = op.steps(input: x, output: output)
        case let .avgPool(op):
            kernels = op.steps(input: x, output: output)
        case let .globalAvgPool(op):
            kernels = op.steps(input: x, output: output)
        case let .squeezeExcite(op, p):
            kernels = op.steps(input: x, w1: weight(p.w1), b1: weight(p.b1), w2: weight(p.w2), b2: weight(p.b2),
                               means: scratch(index, bytes: 4 * op.batch * op.channels),
                               gates: scratch(index, bytes: 4 * op.batch * op.channels), residual: residual, output: output)
        case let .attention(op, p):
            kernels = op.steps(qkv: x, rows: scratch(index, bytes: 4 * op.rowStatisticsCount),
                               affine: weight(Epilogue.packAffine(scale: p.scale, shift: p.shift)), output: output)
        case let .add(op):
            kernels = op.steps(a: x, b: .tensor(node.inputs[1]), output: output)
        }
        steps += kernels.map { Step(node: index, kernel: $0) }
    }

    private static func affine(_ p: ConvParameters) -> [Float] { Epilogue.packAffine(scale: p.scale, shift: p.shift) }
}
