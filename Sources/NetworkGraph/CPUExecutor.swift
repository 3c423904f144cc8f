import Foundation
import Kernels

/// Runs a ``Graph`` with the plain CPU references of its operations (accumulating in Double). It exists to check the
/// Vulkan executor, not to be fast.
public enum CPUExecutor {
    /// Runs `graph` on `input` and returns every tensor (the input included), indexed by ``TensorID``.
    public static func runAll(_ graph: Graph, input: [Float]) -> [[Float]] {
        precondition(input.count == graph.shapes[graph.input].count, "CPU executor: input has the wrong size")
        var values = [[Float]](repeating: [], count: graph.shapes.count)
        values[graph.input] = input
        for node in graph.nodes {
            values[node.output] = evaluate(
                node.op, inputs: node.inputs.map { values[$0] }, parameters: graph.parameters)
        }
        return values
    }

    /// Runs `graph` on `input` and returns its output.
    public static func run(_ graph: Graph, input: [Float]) -> [Float] {
        runAll(graph, input: input)[graph.output]
    }

    /// One node's reference computation, its inputs in the order of `node.inputs`, its parameters from `parameters`.
    public static func evaluate(_ node: Node, inputs: [[Float]], parameters: ParameterStore) -> [Float] {
        evaluate(node.op, inputs: inputs, parameters: parameters)
    }

    /// One operation's reference computation: x, then the residual or second operand where it has one. BatchNorm runs
    /// in its inference form, folded with the bias into a per-channel scale and shift as the kernels take it.
    public static func evaluate(_ op: Op, inputs: [[Float]], parameters store: ParameterStore) -> [Float] {
        let x = inputs[0]
        let residual = inputs.count > 1 ? inputs[1] : nil
        switch op {
        case let .conv2d(op, w):
            let p = store.folded(w, channels: op.outChannels)
            return op.reference(input: x, weights: p.weights, scale: p.scale, shift: p.shift, residual: residual)
        case let .pointwise(op, w):
            let p = store.folded(w, channels: op.outChannels)
            return op.reference(input: x, weights: p.weights, scale: p.scale, shift: p.shift, residual: residual)
        case let .depthwise(op, w):
            let p = store.folded(w, channels: op.channels)
            return op.reference(input: x, weights: p.weights, scale: p.scale, shift: p.shift, residual: residual)
        case let .maxPool(op): return op.reference(input: x)
        case let .avgPool(op): return op.reference(input: x)
        case let .globalAvgPool(op): return op.reference(input: x)
        case let .squeezeExcite(op, w):
            let p = store.squeezeExcite(w)
            return op.reference(input: x, w1: p.w1, b1: p.b1, w2: p.w2, b2: p.b2, residual: residual)
        case let .attention(op, norm):
            let p = store.attentionAffine(norm, channels: op.channels)
            return op.reference(qkv: x, scale: p.scale, shift: p.shift)
        case let .add(op): return op.reference(x, inputs[1])
        }
    }
}
