import Foundation
import Kernels
import VulkanCompute

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
                + (node.op.variantSummary(config).map { " (\($0))" } ?? "")
        }
    }

    /// Bytes a resource holds.
    func bytes(of resource: PlanResource) -> Int {
        switch resource {
        case let .tensor(id): shapes[id].count * elementBytes
        case let .scratch(node, index): scratchBytes[node][index]
        case let .weight(index): parameters[index].bytes
        }
    }

    /// The node's own steps (``GraphOperation/lower(_:)``), its scratch and packed parameters registered here.
    private mutating func lower(_ node: Node, index: Int, store: ParameterStore, config: KernelConfig)
        -> [KernelStep<PlanResource>]
    {
        var lowering = OperationLowering(
            node: node, index: index, config: config, activationBytes: elementBytes,
            parameters: keepWeights ? store : nil, firstParameter: parameters.count)
        let steps = node.op.lower(&lowering)
        parameters += lowering.packed
        scratchBytes[index] = lowering.scratchBytes
        return steps
    }
}
