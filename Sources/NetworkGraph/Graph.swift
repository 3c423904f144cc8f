import Foundation
import Kernels
import VulkanCompute

/// A tensor's index in its ``Graph``.
public typealias TensorID = Int

/// One node: an operation, the tensors it reads and the tensor it writes.
public struct Node: Sendable {
    /// A name for profiles and errors; the model's module path ("layer3.3.net.1").
    public var name: String
    public var op: any GraphOperation
    public var inputs: [TensorID]
    public var output: TensorID
}

/// A network as a list of fused operations with static shapes, in an order that respects their dependencies, and the
/// parameters they read: declared by state-dict name and shape, their values in ``parameters``, apart from the
/// operations. Made for one batch size and input size; both executors (Vulkan and the CPU reference) run it.
public struct Graph: Sendable {
    public private(set) var shapes: [TensorShape] = []
    public private(set) var nodes: [Node] = []
    /// Every state-dict entry of the model, in the order the model declares them (BatchNorm statistics and
    /// `num_batches_tracked` included).
    public private(set) var declarations: [ParameterDeclaration] = []
    /// The values of the declared parameters; empty in a graph built for shapes only (counting, planning).
    public var parameters = ParameterStore()
    /// The input image tensor.
    public let input: TensorID
    /// The tensor the graph computes (logits for a classifier).
    public var output: TensorID

    /// Starts a graph whose input has `shape`.
    public init(input shape: TensorShape) {
        shapes = [shape]
        input = 0
        output = 0
    }

    /// The batch size.
    public var batch: Int { shapes[input].batch }

    /// Adds a node writing a new tensor of `shape`, and returns that tensor. Checks the inputs exist and the
    /// residual, if any, has the output's shape.
    @discardableResult
    public mutating func add(_ name: String, _ op: any GraphOperation, inputs: [TensorID], output shape: TensorShape)
        -> TensorID
    {
        precondition(inputs.allSatisfy { shapes.indices.contains($0) }, "\(name): input tensor does not exist")
        let id = shapes.count
        shapes.append(shape)
        if op.epilogue.hasResidual {
            precondition(inputs.count == 2 && shapes[inputs[1]] == shape, "\(name): residual shape differs")
        }
        nodes.append(Node(name: name, op: op, inputs: inputs, output: id))
        output = id
        return id
    }

    /// Declares a state-dict entry of the model.
    public mutating func declare(_ name: String, shape: [Int], trainable: Bool = true) {
        declarations.append(ParameterDeclaration(name: name, shape: shape, trainable: trainable))
    }

    /// Declares a parameter and stores its values (for graphs made by hand).
    public mutating func declare(_ name: String, shape: [Int], values: [Float]) throws {
        declare(name, shape: shape)
        try parameters.set(name, values, shape.reduce(1, *))
    }

    /// Replaces the values of a declared parameter (new weights, or a planted fault).
    public mutating func setParameter(_ name: String, _ values: [Float]) throws {
        guard let declaration = declarations.first(where: { $0.name == name }) else {
            throw ParameterError("The graph declares no parameter \(name).")
        }
        try parameters.set(name, values, declaration.count)
    }

    /// Multiply-adds of the whole graph, for the whole batch.
    public var madds: Int { nodes.reduce(0) { $0 + $1.op.madds } }

    /// Bytes of weights all nodes read as inference runs them.
    public var weightBytes: Int { nodes.reduce(0) { $0 + $1.op.weightBytes } }

    /// Every dispatch the graph needs on a device like `profile` with `kernels`, in order (what an
    /// ``InferenceSession`` records), for creating or timing its pipelines ahead of time.
    public func launches(for profile: DeviceProfile = .minimum, kernels: KernelChoice = .family(.texel)) throws
        -> [KernelLaunch]
    {
        try Lowering(graph: self, profile: profile, choice: kernels, weights: false).steps.map(\.kernel.launch)
    }

    /// Bytes of scratch each node needs on the device (squeeze-excite's means and gates, attention's row statistics,
    /// split-K's partial sums), as ``MemoryPlan`` takes them.
    public func scratchBytes(for profile: DeviceProfile = .minimum, kernels: KernelChoice = .family(.texel)) throws
        -> [[Int]]
    {
        try Lowering(graph: self, profile: profile, choice: kernels, weights: false).scratchBytes
    }

    /// The same network for another batch size: every shape and operation with `batch` images.
    public func withBatch(_ batch: Int) -> Graph {
        precondition(batch >= 1, "a batch has at least one image")
        let old = self.batch
        var graph = self
        graph.shapes = shapes.map { shape in
            var shape = shape
            shape.batch = batch
            return shape
        }
        graph.nodes = nodes.map { node in
            var node = node
            node.op = node.op.withBatch(batch, from: old)
            return node
        }
        return graph
    }

    /// For each tensor, the index of the last node that reads it (`nil` if none does).
    public var lastUse: [Int?] {
        var last = [Int?](repeating: nil, count: shapes.count)
        for (index, node) in nodes.enumerated() { for input in node.inputs { last[input] = index } }
        return last
    }
}

extension Graph {
    /// Each node's level: one more than the highest level among the nodes it reads; nodes reading only the graph's
    /// input are level 1. Nodes of one level never read each other's outputs.
    public var levels: [Int] {
        var level = [Int](repeating: 0, count: shapes.count)
        for node in nodes { level[node.output] = 1 + (node.inputs.map { level[$0] }.max() ?? 0) }
        return nodes.map { level[$0.output] }
    }

    /// For each node, the first and last index of the run of consecutive nodes with its level: nodes that can run
    /// side by side without a barrier between them (see ``inLevelOrder()``).
    public var levelRuns: [ClosedRange<Int>] {
        let levels = levels
        var runs: [ClosedRange<Int>] = []
        var start = 0
        for index in levels.indices where index + 1 == levels.count || levels[index + 1] != levels[index] {
            runs += Array(repeating: start...index, count: index - start + 1)
            start = index + 1
        }
        return runs
    }

    /// The same network with every node moved as early as its inputs allow, the order otherwise kept: nodes sorted by
    /// ``levels``, then by their place in `self`. Tensor IDs do not change.
    ///
    /// The session records dispatches in node order and places a barrier only before a dispatch that reads (or
    /// overwrites) what an earlier dispatch since the last barrier wrote. Independent branches, such as a block's
    /// shortcut (average pool, 1x1 convolution) and its main path (conv1, the depthwise conv), then run in pairs under
    /// one barrier instead of one after another behind a barrier each; ``MemoryPlan`` keeps the tensors of one run of
    /// a level apart, so that no reuse of memory puts a barrier back between them.
    public func inLevelOrder() -> Graph {
        let levels = levels
        var graph = self
        graph.nodes = nodes.indices.sorted { (levels[$0], $0) < (levels[$1], $1) }.map { nodes[$0] }
        return graph
    }
}
