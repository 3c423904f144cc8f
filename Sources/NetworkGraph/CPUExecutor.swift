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
    public static func evaluate(_ op: any GraphOperation, inputs: [[Float]], parameters: ParameterStore) -> [Float] {
        op.reference(inputs, parameters: parameters)
    }
}
