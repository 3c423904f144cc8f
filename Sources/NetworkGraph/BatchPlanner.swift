import Foundation
import Kernels
import VulkanCompute

/// The plan of one submission: the largest batch per submission whose tensors fit one binding's range, whose grids fit
/// the device's workgroup counts, and whose activations, parameters and input and output fit the memory budget; with
/// the memory plan and parameter layout for that batch.
///
/// Activations and grids grow with the batch, parameters do not: a parameter array past the range is refused at once,
/// and otherwise the batch shrinks in proportion to the worse overrun (by at least one image) until it fits, or until
/// even one image does not, which is an error that names what did not fit.
struct BatchPlan {
    /// The graph one submission runs: the given graph at the planned batch.
    let executed: Graph
    let memory: MemoryPlan
    let parameters: ParameterLayout

    /// Plans `graph` (in the order it will run) for `device` with the kernels `choice` asks for; `share` lets tensors
    /// share memory by lifetime.
    init(graph: Graph, device: VulkanDevice, choice: KernelChoice, share: Bool) throws {
        let bounds = DeviceBounds(device)
        var lowering = try Lowering(graph: graph, profile: device.profile, choice: choice, weights: false)
        if let index = lowering.parameters.indices.max(by: {
            lowering.parameters[$0].bytes < lowering.parameters[$1].bytes
        }), MemoryPlan.padded(lowering.parameters[index].bytes) > bounds.range {
            let parameter = lowering.parameters[index]
            throw PlanError.weightsTooLarge(
                node: graph.nodes[parameter.node].name, bytes: parameter.bytes, limit: bounds.range)
        }
        var executed = graph
        while true {
            let trial = Trial(executed, lowering, bounds: bounds, share: share)
            if trial.fits {
                self.executed = executed
                memory = trial.memory
                parameters = trial.parameters
                return
            }
            guard executed.batch > 1 else { throw trial.failure(batch: graph.batch) }
            executed = graph.withBatch(trial.smallerBatch)
            lowering = try Lowering(graph: executed, profile: device.profile, choice: choice, weights: false)
        }
    }
}

/// What a plan must stay within on one device.
private struct DeviceBounds {
    /// The most bytes one binding may cover (the storage range, and a buffer's size).
    let range: Int
    /// The most bytes one buffer may hold, in whole 256-byte blocks (so a limit such as 0xFFFFFFFC is never passed by
    /// the alignment of the last region).
    let buffer: Int
    let groups: [Int]
    let memoryBudget: Int

    init(_ device: VulkanDevice) {
        let limits = device.limits
        range = min(limits.maxStorageBufferRange, limits.maxSingleBuffer)
        buffer = limits.maxSingleBuffer / MemoryPlan.alignment * MemoryPlan.alignment
        groups = limits.maxComputeWorkGroupCount
        memoryBudget = device.memoryBudgetBytes
    }
}

/// One batch size tried: what it needs against what the device allows.
private struct Trial {
    let executed: Graph
    let lowering: Lowering
    let bounds: DeviceBounds
    let memory: MemoryPlan
    let parameters: ParameterLayout
    /// The largest tensor or scratch, as bound (16-byte padded).
    let largest: Int
    /// The widest grid as a fraction of the device's workgroup count in that dimension.
    let widestGrid: Double
    /// Bytes of the input and output buffers.
    let io: Int
    /// Bytes the whole plan needs on the device.
    let needed: Int

    init(_ executed: Graph, _ lowering: Lowering, bounds: DeviceBounds, share: Bool) {
        self.executed = executed
        self.lowering = lowering
        self.bounds = bounds
        let elementBytes = lowering.elementBytes
        largest =
            (executed.shapes.map { $0.count * elementBytes } + lowering.scratchBytes.flatMap { $0 })
            .map(MemoryPlan.padded).max() ?? 0
        memory = MemoryPlan(
            graph: executed, scratchBytes: lowering.scratchBytes, elementBytes: elementBytes, share: share,
            capacity: bounds.buffer)
        widestGrid =
            lowering.steps.map { step in
                let groups = step.kernel.launch.groups
                return [groups.x, groups.y, groups.z].enumerated().map { Double($1) / Double(bounds.groups[$0]) }
                    .max() ?? 0
            }.max() ?? 0
        parameters = ParameterLayout(lowering.parameters, bufferLimit: bounds.buffer)
        io =
            MemoryPlan.padded(executed.shapes[executed.input].count * elementBytes)
            + MemoryPlan.padded(executed.shapes[executed.output].count * elementBytes)
        needed = memory.arenaBytes + io + max(parameters.totalBytes, MemoryPlan.alignment)
    }

    var fits: Bool { largest <= bounds.range && needed <= bounds.memoryBudget && widestGrid <= 1 }

    /// A smaller batch, in proportion to the worse overrun and at least one image less.
    var smallerBatch: Int {
        let micro = executed.batch
        let byRange = min(
            largest > bounds.range ? Double(bounds.range) / Double(largest) : 1, widestGrid > 1 ? 1 / widestGrid : 1)
        let budgetForActivations = Double(bounds.memoryBudget - max(parameters.totalBytes, MemoryPlan.alignment))
        let byMemory =
            needed > bounds.memoryBudget ? max(0, budgetForActivations) / Double(memory.arenaBytes + io) : 1
        return max(1, min(micro - 1, Int(Double(micro) * min(byRange, byMemory))))
    }

    /// Why even one image does not fit: a grid past the workgroup count, a tensor past the range, or the memory.
    func failure(batch: Int) -> Error {
        let limits = bounds.groups
        if let step = lowering.steps.first(where: { step in
            let groups = step.kernel.launch.groups
            return groups.x > limits[0] || groups.y > limits[1] || groups.z > limits[2]
        }) {
            let groups = step.kernel.launch.groups
            return VulkanSetupError.workgroupCountOutOfRange(
                kernel: step.kernel.launch.spirvName, groups: [groups.x, groups.y, groups.z], limits: limits)
        }
        if largest > bounds.range {
            let node = executed.nodes.first {
                $0.output == executed.shapes.indices.max { executed.shapes[$0].count < executed.shapes[$1].count }
            }
            return PlanError.tensorTooLarge(node: node?.name ?? "?", bytes: largest, limit: bounds.range)
        }
        return VulkanSetupError.outOfDeviceMemory(
            neededBytes: needed, availableBytes: bounds.memoryBudget, batch: batch, largestBatch: 0)
    }
}
