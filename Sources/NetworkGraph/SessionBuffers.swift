import Foundation
import Kernels
import VulkanCompute

/// The device memory of one session: the pooled activation arenas, the input and output buffers (with staging where
/// they are not host-visible) and the uploaded parameters; and where each of the plan's resources lives in them.
struct SessionBuffers {
    let arenas: [VulkanBuffer]
    let input: VulkanBuffer
    let inputStaging: VulkanBuffer?
    let output: VulkanBuffer
    let outputStaging: VulkanBuffer?
    let weights: [VulkanBuffer]
    let inputBytes: Int
    let outputBytes: Int
    private let executed: Graph
    private let plan: MemoryPlan
    private let parameters: ParameterLayout

    /// Allocates the buffers of `plan` for `executed` and uploads the lowering's parameters as `parameters` lays
    /// them out.
    init(
        _ executed: Graph, plan: MemoryPlan, parameters: ParameterLayout, lowering: Lowering, device: VulkanDevice
    ) throws {
        let elementBytes = lowering.elementBytes
        inputBytes = MemoryPlan.padded(executed.shapes[executed.input].count * elementBytes)
        outputBytes = MemoryPlan.padded(executed.shapes[executed.output].count * elementBytes)
        arenas = try plan.arenas.enumerated().map { index, bytes in
            try VulkanBuffer(
                device: device, size: bytes, label: plan.arenas.count > 1 ? "activations \(index)" : "activations")
        }
        input = try VulkanBuffer(device: device, size: inputBytes, label: "input")
        inputStaging =
            input.isHostVisible
            ? nil : try VulkanBuffer(device: device, size: inputBytes, memory: .staging, label: "input staging")
        output = try VulkanBuffer(device: device, size: outputBytes, label: "output")
        outputStaging =
            output.isHostVisible
            ? nil : try VulkanBuffer(device: device, size: outputBytes, memory: .staging, label: "output staging")
        weights = try parameters.upload(lowering.parameters, to: device)
        self.executed = executed
        self.plan = plan
        self.parameters = parameters
    }

    /// Where a binding's resource lives.
    func region(of resource: PlanResource) -> BufferRegion {
        switch resource {
        case let .tensor(id) where id == executed.input: return BufferRegion(input, bytes: inputBytes)
        case let .tensor(id) where id == executed.output: return BufferRegion(output, bytes: outputBytes)
        case let .tensor(id):
            guard let region = plan.tensors[id] else { preconditionFailure("tensor \(id) has no memory") }
            return BufferRegion(arenas[region.arena], offset: region.offset, bytes: region.bytes)
        case let .scratch(node, index):
            let region = plan.scratch[node][index]
            return BufferRegion(arenas[region.arena], offset: region.offset, bytes: region.bytes)
        case let .weight(index):
            let place = parameters.places[index]
            return BufferRegion(weights[place.buffer], offset: place.offset, bytes: parameters.boundBytes[index])
        }
    }
}

extension SessionStatistics {
    /// The statistics of a session recorded from `lowering` into `buffers`.
    init(
        lowering: Lowering, buffers: SessionBuffers, plan: MemoryPlan, barriers: Int, pipelines: Int, microBatch: Int
    ) {
        // Each node's data path is its first step's.
        var nodePaths: [Int: DataPath] = [:]
        for step in lowering.steps where nodePaths[step.node] == nil { nodePaths[step.node] = step.kernel.dataPath }
        let io = buffers.inputBytes + buffers.outputBytes
        self.init(
            activationBytes: plan.arenaBytes + io, unsharedActivationBytes: plan.unsharedBytes + io,
            weightBytes: buffers.weights.reduce(0) { $0 + $1.size }, dispatches: lowering.steps.count,
            barriers: barriers, pipelines: pipelines, microBatch: microBatch,
            buffers: buffers.arenas.count
                + buffers.weights.count,
            dataPaths: Dictionary(grouping: nodePaths.values, by: \.rawValue).mapValues(\.count))
    }
}
