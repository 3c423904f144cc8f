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

/// A plan that cannot be made for a device.
public enum PlanError: Error, CustomStringConvertible, Equatable {
    /// The kernel family asked for needs a feature the device lacks (or that ``LimitsMode/minimum`` turned off).
    case familyUnsupported(KernelFamily, device: String)
    /// Even one image needs a tensor larger than one storage range or buffer allows.
    case tensorTooLarge(node: String, bytes: Int, limit: Int)
    /// A node's weights are larger than one storage range or buffer allows.
    case weightsTooLarge(node: String, bytes: Int, limit: Int)
    /// The graph has no values for a parameter a node reads (it was built for shapes only).
    case parameterMissing(node: String, parameter: String)

    public var description: String {
        switch self {
        case let .familyUnsupported(family, device):
            let needs =
                family == .fp16math ? "16-bit storage and shaderFloat16" : "16-bit storage (storageBuffer16BitAccess)"
            return
                "The \(family) kernels need \(needs), which \(device) does not offer (or the limits emulation turned off). "
                + "Choose another family with --kernels (\(KernelChoice.names.joined(separator: ", ")))."
        case let .weightsTooLarge(node, bytes, limit):
            return
                "Node \(node) has \(bytes) bytes of weights in one array; this device binds at most \(limit) bytes at once "
                + "(maxStorageBufferRange / maxBufferSize), so this model cannot run on it."
        case let .parameterMissing(node, parameter):
            return "Node \(node) reads parameter \(parameter), which the graph has no values for: build the graph with "
                + "weights (Model.graph(batch:inputSize:weights:)) before running it."
        case let .tensorTooLarge(node, bytes, limit):
            return "Node \(node) writes \(bytes) bytes for one image; this device binds at most \(limit) bytes at once "
                + "(maxStorageBufferRange / maxBufferSize). Use a smaller input size."
        }
    }
}

/// The dry pass: chooses each node's kernels for a device profile, turns the node into its dispatches, and collects
/// the weight arrays (packed as the kernels read them) and each node's scratch sizes. Nothing here touches a device.
///
/// The choice: one family throughout when ``KernelChoice/family(_:)`` names one; automatically, texel reads on CPU
/// devices (lavapipe, where they are faster than storage reads: shared/LAVAPIPE.md) and the tiled family on GPUs. Each family runs
/// linear layers as a GEMV (``Pointwise/usesGEMV``). Wherever a texel view would hold more than
/// the device's `maxTexelBufferElements`, that node reads storage buffers instead.
struct Lowering: Sendable {
    private(set) var steps: [Step] = []
    /// The parameter arrays the steps bind (``PlanResource/weight(_:)`` indexes them), packed as the kernels read them.
    private(set) var parameters: [PackedParameter] = []
    private(set) var scratchBytes: [[Int]]
    /// Each node's kernels as they run: "pointwise_storage", "conv2d_tiled_storage (tiled medium split 4)".
    private(set) var variants: [String]
    /// Bytes of one activation value: 2 for the 16-bit families, else 4.
    let elementBytes: Int

    private let keepWeights: Bool
    private let shapes: [TensorShape]

    /// Lowers every node for `profile` with the kernels `choice` asks for; with `weights` false the weight arrays are
    /// left empty (for listing dispatches and sizing the plan), and the graph needs no parameter values.
    init(graph: Graph, profile: DeviceProfile = .minimum, choice: KernelChoice = .family(.texel), weights: Bool = true)
        throws
    {
        keepWeights = weights
        shapes = graph.shapes
        scratchBytes = Array(repeating: [], count: graph.nodes.count)
        variants = Array(repeating: "", count: graph.nodes.count)
        for node in graph.nodes where weights {
            if let name = node.op.parameterNames.first(where: { graph.parameters[$0] == nil }) {
                throw PlanError.parameterMissing(node: node.name, parameter: name)
            }
        }
        let family = choice.family(on: profile.type)
        guard family.isSupported(by: profile.features) else {
            throw PlanError.familyUnsupported(
                family, device: profile.type == .other ? "this device" : "this \(profile.type) device")
        }
        elementBytes = family.dataPath.elementBytes
        let config = KernelConfig(family: family, limits: profile.limits)
        for (index, node) in graph.nodes.enumerated() {
            let nodeSteps = lower(node, index: index, store: graph.parameters, config: config).fittingTexelViews(
                limit: profile.limits.maxTexelBufferElements, bytes: bytes(of:))
            for binding in nodeSteps.flatMap(\.bindings) where binding.alwaysFloat32 {
                if case let .weight(array) = binding.resource { parameters[array].elementBytes = 4 }
            }
            steps += nodeSteps.map { Step(node: index, kernel: $0) }
            variants[index] =
                nodeSteps.map(\.launch.spirvName).joined(separator: " + ")
                + (Self.tiling(node.op, config).map { " (\($0))" } ?? "")
        }
    }

    /// A node's scratch, registered with its size in bytes.
    private mutating func scratch(_ node: Int, bytes: Int) -> PlanResource {
        scratchBytes[node].append(bytes)
        return .scratch(node: node, index: scratchBytes[node].count - 1)
    }

    /// Bytes a resource holds.
    func bytes(of resource: PlanResource) -> Int {
        switch resource {
        case let .tensor(id): shapes[id].count * elementBytes
        case let .scratch(node, index): scratchBytes[node][index]
        case let .weight(index): parameters[index].bytes
        }
    }

    /// The variant a GEMM-shaped node runs as under `config` (its tile and split, Winograd, a GEMV), for the profile.
    private static func tiling(_ op: Op, _ config: KernelConfig) -> String? {
        switch op {
        case let .conv2d(conv, _): conv.variant(config).summary
        case let .pointwise(pointwise, _): pointwise.variant(config).summary
        case .depthwise, .maxPool, .avgPool, .globalAvgPool, .squeezeExcite, .attention, .add: nil
        }
    }

    /// Each operation's own steps, with the graph's tensors, the node's scratch and the packed weights as resources.
    /// Folding each BatchNorm and bias into a per-channel scale and shift happens here, as the weights are packed.
    private mutating func lower(_ node: Node, index: Int, store: ParameterStore, config: KernelConfig)
        -> [KernelStep<PlanResource>]
    {
        let x = PlanResource.tensor(node.inputs[0])
        let residual = node.inputs.count > 1 ? PlanResource.tensor(node.inputs[1]) : nil
        let output = PlanResource.tensor(node.output)
        let activation = elementBytes
        let keep = keepWeights
        switch node.op {
        case let .conv2d(op, w):
            return lowerGEMM(
                op, w, x: x, residual: residual, output: output, index: index, store: store, config: config)
        case let .pointwise(op, w):
            return lowerGEMM(
                op, w, x: x, residual: residual, output: output, index: index, store: store, config: config)
        case let .depthwise(op, w):
            let p = keep ? store.folded(w, channels: op.channels) : nil
            return op.steps(
                input: x, weights: weight(p?.weights, count: op.channels * op.kernelSize * op.kernelSize, node: index),
                affine: weight(p.map(Self.affine), count: 2 * op.channels, node: index), residual: residual,
                output: output, config: config)
        case let .maxPool(op):
            return op.steps(input: x, output: output, config: config)
        case let .avgPool(op):
            return op.steps(input: x, output: output, config: config)
        case let .globalAvgPool(op):
            return op.steps(input: x, output: output, config: config)
        case let .squeezeExcite(op, w):
            let p = keep ? store.squeezeExcite(w) : nil
            let (c, r) = (op.channels, op.reduced)
            return op.steps(
                input: x, w1: weight(p?.w1, count: r * c, node: index), b1: weight(p?.b1, count: r, node: index),
                w2: weight(p?.w2, count: c * r, node: index), b2: weight(p?.b2, count: c, node: index),
                means: scratch(index, bytes: activation * op.batch * op.channels),
                gates: scratch(index, bytes: activation * op.batch * op.channels), residual: residual, output: output,
                config: config)
        case let .attention(op, norm):
            let rows = op.scratchCount(config)
            let p = keep ? store.attentionAffine(norm, channels: op.channels) : nil
            return op.steps(
                qkv: x, rows: rows > 0 ? scratch(index, bytes: 4 * rows) : nil,
                affine: weight(
                    p.map { Epilogue.packAffine(scale: $0.scale, shift: $0.shift) }, count: 2 * op.channels,
                    node: index), output: output, config: config)
        case let .add(op):
            return op.steps(a: x, b: .tensor(node.inputs[1]), output: output, config: config)
        }
    }

    /// A convolution or pointwise layer: its weights folded and packed for its kernels, its scratch, its steps.
    private mutating func lowerGEMM(
        _ op: some GEMMOperation, _ w: ConvWeights, x: PlanResource, residual: PlanResource?, output: PlanResource,
        index: Int, store: ParameterStore, config: KernelConfig
    ) -> [KernelStep<PlanResource>] {
        let p = keepWeights ? store.folded(w, channels: op.outChannels) : nil
        return op.steps(
            input: x,
            weights: weight(
                p.map { op.packWeights($0.weights, config: config) }, count: op.packedWeightCount(config), node: index),
            affine: weight(p.map(Self.affine), count: 2 * op.outChannels, node: index), residual: residual,
            output: output, scratch: op.scratchCounts(config).map { scratch(index, bytes: 4 * $0) }, config: config)
    }

    private static func affine(_ p: ConvParameters) -> [Float] { Epilogue.packAffine(scale: p.scale, shift: p.shift) }

    /// Registers a parameter array of `count` values (`values` nil in a dry lowering) for `node`.
    private mutating func weight(_ values: [Float]?, count: Int, node: Int) -> PlanResource {
        parameters.append(
            PackedParameter(values: values ?? [], count: count, elementBytes: elementBytes, node: node))
        return .weight(parameters.count - 1)
    }
}
