import Foundation
import Kernels
import VulkanCompute

/// What a dispatch binds: a tensor, a node's scratch, or a weight array, read through a texel view of a format or
/// (format `nil`) written as a storage buffer.
struct Binding: Sendable {
    enum Resource: Hashable, Sendable {
        case tensor(TensorID)
        case scratch(node: Int, index: Int)
        case weight(Int)
    }

    var resource: Resource
    var format: TexelFormat?

    static func read(_ resource: Resource, _ format: TexelFormat = .r32Float) -> Binding { Binding(resource: resource, format: format) }
    static func write(_ resource: Resource) -> Binding { Binding(resource: resource, format: nil) }
}

/// One dispatch of the plan.
struct Step: Sendable {
    var node: Int
    var launch: KernelLaunch
    var bindings: [Binding]
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

    private mutating func weight(_ values: @autoclosure () -> [Float]) -> Binding.Resource {
        weights.append(keepWeights ? values() : [])
        return .weight(weights.count - 1)
    }

    private mutating func lower(_ node: Node, index: Int) {
        let x = Binding.Resource.tensor(node.inputs[0])
        let residual = node.inputs.count > 1 ? Binding.Resource.tensor(node.inputs[1]) : x
        let output = Binding.write(.tensor(node.output))
        switch node.op {
        case let .conv2d(op, p):
            steps.append(Step(node: index, launch: op.launch(), bindings: [
                .read(x), .read(weight(op.packWeights(p.weights)), .rgba32Float),
                .read(weight(Epilogue.packAffine(scale: p.scale, shift: p.shift))), .read(residual), output,
            ]))
        case let .pointwise(op, p):
            steps.append(Step(node: index, launch: op.launch(), bindings: [
                .read(x, op.vec4Input ? .rgba32Float : .r32Float), .read(weight(op.packWeights(p.weights)), .rgba32Float),
                .read(weight(Epilogue.packAffine(scale: p.scale, shift: p.shift))), .read(residual), output,
            ]))
        case let .depthwise(op, p):
            steps.append(Step(node: index, launch: op.launch(), bindings: [
                .read(x), .read(weight(p.weights)), .read(weight(Epilogue.packAffine(scale: p.scale, shift: p.shift))),
                .read(residual), output,
            ]))
        case let .maxPool(op):
            steps.append(Step(node: index, launch: op.launch(), bindings: [.read(x), output]))
        case let .avgPool(op):
            steps.append(Step(node: index, launch: op.launch(), bindings: [.read(x), output]))
        case let .globalAvgPool(op):
            steps.append(Step(node: index, launch: op.launch(), bindings: [.read(x, op.vec4Input ? .rgba32Float : .r32Float), output]))
        case let .squeezeExcite(op, p):
            scratchBytes[index] = [4 * op.batch * op.channels, 4 * op.batch * op.channels]
            let (means, gates) = (Binding.Resource.scratch(node: index, index: 0), Binding.Resource.scratch(node: index, index: 1))
            let format: TexelFormat = op.vec4Scale ? .rgba32Float : .r32Float
            steps.append(Step(node: index, launch: op.squeeze.launch(), bindings: [
                .read(x, op.squeeze.vec4Input ? .rgba32Float : .r32Float), .write(means),
            ]))
            steps.append(Step(node: index, launch: op.exciteLaunch(), bindings: [
                .read(means), .read(weight(p.w1)), .read(weight(p.b1)), .read(weight(p.w2)), .read(weight(p.b2)), .write(gates),
            ]))
            steps.append(Step(node: index, launch: op.scaleLaunch(), bindings: [
                .read(x, format), .read(gates), .read(residual, format), output,
            ]))
        case let .attention(op, p):
            scratchBytes[index] = [4 * op.rowStatisticsCount]
            let rows = Binding.Resource.scratch(node: index, index: 0)
            steps.append(Step(node: index, launch: op.rowsLaunch(), bindings: [.read(x), .write(rows)]))
            steps.append(Step(node: index, launch: op.launch(), bindings: [
                .read(x), .read(rows), .read(weight(Epilogue.packAffine(scale: p.scale, shift: p.shift))), output,
            ]))
        case let .add(op):
            steps.append(Step(node: index, launch: op.launch(), bindings: [
                .read(x, .rgba32Float), .read(.tensor(node.inputs[1]), .rgba32Float), output,
            ]))
        }
    }
}
