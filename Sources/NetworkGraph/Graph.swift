import Foundation
import Kernels
import VulkanCompute

/// A tensor's index in its ``Graph``.
public typealias TensorID = Int

/// Weights of a convolution as the kernels take them: OIHW (or `[C][k][k]` depthwise, `[M][K]` pointwise) weights, and
/// the per-output-channel scale and shift of the folded BatchNorm and bias.
public struct ConvParameters: Sendable {
    public var weights: [Float]
    public var scale: [Float]
    public var shift: [Float]

    public init(weights: [Float], scale: [Float], shift: [Float]) {
        self.weights = weights
        self.scale = scale
        self.shift = shift
    }
}

/// Weights of squeeze-excite: fc1 `[R][C]` with bias, fc2 `[C][R]` with bias.
public struct SqueezeExciteParameters: Sendable {
    public var w1: [Float], b1: [Float], w2: [Float], b2: [Float]

    public init(w1: [Float], b1: [Float], w2: [Float], b2: [Float]) {
        self.w1 = w1
        self.b1 = b1
        self.w2 = w2
        self.b2 = b2
    }
}

/// A per-channel scale and shift (a folded BatchNorm).
public struct AffineParameters: Sendable {
    public var scale: [Float], shift: [Float]

    public init(scale: [Float], shift: [Float]) {
        self.scale = scale
        self.shift = shift
    }
}

/// One operation of the graph: a kernel family from the Kernels module with its static shape, and its weights.
/// Each case has the same name as its Swift type in Kernels and its shader in Shaders/.
public enum Op: Sendable {
    /// Inputs: x, then the residual when the epilogue has one.
    case conv2d(Conv2D, ConvParameters)
    /// Inputs: x, then the residual when the epilogue has one. Also the linear layer (1x1 images).
    case pointwise(Pointwise, ConvParameters)
    /// Inputs: x, then the residual when the epilogue has one.
    case depthwise(Depthwise, ConvParameters)
    case maxPool(MaxPool)
    case avgPool(AvgPool)
    case globalAvgPool(GlobalAvgPool)
    /// Inputs: x, then the residual when the epilogue has one.
    case squeezeExcite(SqueezeExcite, SqueezeExciteParameters)
    /// Input: the to_qkv output.
    case attention(Attention, AffineParameters)
    /// Inputs: a, b.
    case add(Add)

    /// The operation's name, as its kernel is named.
    public var name: String {
        switch self {
        case .conv2d: Conv2D.name
        case .pointwise: Pointwise.name
        case .depthwise: Depthwise.name
        case .maxPool: MaxPool.name
        case .avgPool: AvgPool.name
        case .globalAvgPool: GlobalAvgPool.name
        case .squeezeExcite: SqueezeExcite.name
        case .attention: Attention.name
        case .add: Add.name
        }
    }

    /// Multiply-adds for the whole batch (convolutions, SE's 1x1 convolutions, attention's QK^T and AV, linear).
    public var madds: Int {
        switch self {
        case let .conv2d(op, _): op.madds
        case let .pointwise(op, _): op.madds
        case let .depthwise(op, _): op.madds
        case let .squeezeExcite(op, _): op.madds
        case let .attention(op, _): op.madds
        case .maxPool, .avgPool, .globalAvgPool, .add: 0
        }
    }

    /// Bytes of weights the operation reads.
    public var weightBytes: Int {
        switch self {
        case let .conv2d(_, p), let .pointwise(_, p), let .depthwise(_, p):
            4 * (p.weights.count + p.scale.count + p.shift.count)
        case let .squeezeExcite(_, p): 4 * (p.w1.count + p.b1.count + p.w2.count + p.b2.count)
        case let .attention(_, p): 4 * (p.scale.count + p.shift.count)
        case .maxPool, .avgPool, .globalAvgPool, .add: 0
        }
    }

    /// The same operation over `batch` images instead of `old`.
    func withBatch(_ batch: Int, from old: Int) -> Op {
        switch self {
        case .conv2d(var op, let p): op.batch = batch; return .conv2d(op, p)
        case .pointwise(var op, let p): op.batch = batch; return .pointwise(op, p)
        case .depthwise(var op, let p): op.batch = batch; return .depthwise(op, p)
        case var .maxPool(op): op.batch = batch; return .maxPool(op)
        case var .avgPool(op): op.batch = batch; return .avgPool(op)
        case var .globalAvgPool(op): op.batch = batch; return .globalAvgPool(op)
        case .squeezeExcite(var op, let p): op.batch = batch; return .squeezeExcite(op, p)
        case .attention(var op, let p): op.batch = batch; return .attention(op, p)
        case var .add(op): op.count = op.count / old * batch; return .add(op)
        }
    }

    /// Whether the operation's epilogue adds a residual (its second input).
    var hasResidual: Bool {
        switch self {
        case let .conv2d(op, _): op.epilogue.hasResidual
        case let .pointwise(op, _): op.epilogue.hasResidual
        case let .depthwise(op, _): op.epilogue.hasResidual
        case let .squeezeExcite(op, _): op.epilogue.hasResidual
        case .maxPool, .avgPool, .globalAvgPool, .attention, .add: false
        }
    }
}

/// One node: an operation, the tensors it reads and the tensor it writes.
public struct Node: Sendable {
    /// A name for profiles and errors; the model's module path ("layer3.3.net.1").
    public var name: String
    public var op: Op
    public var inputs: [TensorID]
    public var output: TensorID
}

/// A network as a list of fused operations with static shapes, in an order that respects their dependencies.
/// Made for one batch size and input size; both executors (Vulkan and the CPU reference) run it.
public struct Graph: Sendable {
    public private(set) var shapes: [TensorShape] = []
    public private(set) var nodes: [Node] = []
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
    public mutating func add(_ name: String, _ op: Op, inputs: [TensorID], output shape: TensorShape) -> TensorID {
        precondition(inputs.allSatisfy { shapes.indices.contains($0) }, "\(name): input tensor does not exist")
        let id = shapes.count
        shapes.append(shape)
        if op.hasResidual {
            precondition(inputs.count == 2 && shapes[inputs[1]] == shape, "\(name): residual shape differs")
        }
        nodes.append(Node(name: name, op: op, inputs: inputs, output: id))
        output = id
        return id
    }

    /// Replaces a node's operation by another of the same kind and shape (new weights, say).
    public mutating func replaceOp(ofNode index: Int, with op: Op) {
        precondition(op.name == nodes[index].op.name, "replaceOp keeps the node's kind of operation")
        nodes[index].op = op
    }

    /// Multiply-adds of the whole graph, for the whole batch.
    public var madds: Int { nodes.reduce(0) { $0 + $1.op.madds } }

    /// Bytes of weights all nodes read.
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
