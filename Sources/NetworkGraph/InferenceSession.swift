import Foundation
import Kernels
import VulkanCompute

/// How an ``InferenceSession`` is built.
public struct SessionOptions: Sendable {
    /// Write a timestamp after every node, so ``InferenceSession/profile()`` can say where the time goes. (Without
    /// it, two timestamps still bracket the whole run for ``InferenceSession/deviceNanoseconds()``.)
    public var profile: Bool
    /// Give every tensor its own memory instead of sharing by lifetime, so every intermediate result can be read
    /// back after a run (``InferenceSession/tensor(_:)``). For checking; uses far more memory.
    public var keepIntermediates: Bool
    /// Which kernels run: the planner's choice per node for the device (the default), or one ``KernelFamily``.
    public var kernels: KernelChoice

    public init(profile: Bool = false, keepIntermediates: Bool = false, kernels: KernelChoice = .automatic) {
        self.profile = profile
        self.keepIntermediates = keepIntermediates
        self.kernels = kernels
    }
}

/// How long one node took on the device in the last run.
public struct NodeTime: Sendable, Codable {
    public let name: String
    public let op: String
    /// The kernels that ran it ("pointwise_storage", "conv2d_tiled_storage (tiled medium split 4)").
    public let kernel: String
    public let shape: String
    public let nanoseconds: Double
    public let madds: Int
    /// Bytes the node's kernels read and wrote (activations and weights), for a GB/s figure.
    public let bytes: Int
}

/// Counts that describe a session's plan.
public struct SessionStatistics: Sendable, Codable {
    /// Bytes of the pooled activation buffers (the peak of live activations) plus the input and output buffers.
    public let activationBytes: Int
    /// What the activations would take if no two tensors shared memory.
    public let unsharedActivationBytes: Int
    /// Bytes of weights on the device.
    public let weightBytes: Int
    public let dispatches: Int
    public let barriers: Int
    public let pipelines: Int
    /// Images per submission: the batch, or less where the device's limits or memory made the planner split it.
    public let microBatch: Int
    /// Device buffers the activations and weights take (more than two where one would pass the allocation limit).
    public let buffers: Int
    /// How many nodes run each family's kernels ("texel": 90, "storage": 24).
    public let dataPaths: [String: Int]
}

/// A graph ready to run on one device: weights uploaded once, activations placed by a ``MemoryPlan``, every dispatch
/// recorded once into a command buffer with only the barriers its data dependencies need. ``run(_:)`` copies the
/// input in, replays the recording and copies the output out: it creates no buffer, pipeline or descriptor.
///
/// The planner fits the plan to the device: each node's kernels come from ``SessionOptions/kernels`` within the
/// device's limits (storage reads where a texel view would be too large), no buffer passes the allocation limit, and
/// where one image's worth of a tensor times the batch would pass a binding's range or the device's memory, the batch
/// runs in smaller submissions (``SessionStatistics/microBatch``).
///
/// A session is made for one batch size and input size (the graph's). Its runs may come from several threads or tasks:
/// they take turns (sendable for that reason; its device must not be used by other threads meanwhile).
///
/// ```swift
/// let session = try InferenceSession(graph: graph, device: device)
/// let logits = try session.run(pixels)   // [batch * 1000]
/// ```
public final class InferenceSession: @unchecked Sendable {
    /// The graph as given, its nodes in level order (``Graph/inLevelOrder()``); its batch is what ``run(_:)`` takes.
    public let graph: Graph
    /// The graph one submission runs: ``graph`` at ``SessionStatistics/microBatch`` images.
    public let executed: Graph
    public let device: VulkanDevice
    public let plan: MemoryPlan
    public let statistics: SessionStatistics
    /// Each node's kernels, as ``NodeTime/kernel`` names them.
    public let variants: [String]
    private let options: SessionOptions
    private let arenas: [VulkanBuffer]
    private let inputBuffer: VulkanBuffer
    private let inputStaging: VulkanBuffer?
    private let outputBuffer: VulkanBuffer
    private let outputStaging: VulkanBuffer?
    private let weights: [VulkanBuffer]
    private let commands: CommandBuffer
    private let timestamps: TimestampQueries?
    private let nodeBytes: [Int]
    private let elementBytes: Int
    private var hasRun = false
    private var lastDeviceNanoseconds: Double?
    private let lock = NSLock()

    /// Plans `graph` for `device`, uploads its weights, makes its pipelines (through `pipelines`, so sessions can
    /// share them) and records its command buffer.
    public init(
        graph: Graph, device: VulkanDevice, pipelines: KernelPipelines? = nil,
        options: SessionOptions = SessionOptions()
    ) throws {
        // Independent branches side by side, so they share barriers (see `Graph.inLevelOrder()`).
        let graph = graph.inLevelOrder()
        self.graph = graph
        self.device = device
        self.options = options
        let pipelines = pipelines ?? KernelPipelines(device: device)
        let limits = device.limits
        let share = !options.keepIntermediates

        // The largest batch per submission that fits the binding range, the buffer limit and the memory budget.
        var micro = graph.batch
        var executed = graph
        // The search lowers dry (sizes only); the weights are packed once, for the plan that is kept.
        var lowering = try Lowering(graph: graph, profile: device.profile, choice: options.kernels, weights: false)
        var plan: MemoryPlan
        var weightEnd = 0
        var weightOffsets: [(buffer: Int, offset: Int)] = []
        var weightBufferSizes: [Int] = []
        // Buffers and ranges as the descriptors bind them: 16-byte padded, and arenas in whole 256-byte blocks (a limit
        // such as 0xFFFFFFFC must not be passed by the alignment of the last region).
        let rangeLimit = min(limits.maxStorageBufferRange, limits.maxSingleBuffer)
        let bufferLimit = limits.maxSingleBuffer / MemoryPlan.alignment * MemoryPlan.alignment
        // Weights do not shrink with the batch: one array past the range is the end of it.
        if let index = lowering.weightCounts.indices.max(by: { lowering.weightCounts[$0] < lowering.weightCounts[$1] }),
            MemoryPlan.padded(lowering.weightCounts[index] * lowering.weightElementBytes[index]) > rangeLimit
        {
            throw PlanError.weightsTooLarge(
                node: graph.nodes[lowering.weightNodes[index]].name,
                bytes: lowering.weightCounts[index] * lowering.weightElementBytes[index], limit: rangeLimit)
        }
        while true {
            let elementBytes = lowering.elementBytes
            let largest =
                (executed.shapes.map { $0.count * elementBytes } + lowering.scratchBytes.flatMap { $0 })
                .map(MemoryPlan.padded).max() ?? 0
            plan = MemoryPlan(
                graph: executed, scratchBytes: lowering.scratchBytes, elementBytes: elementBytes, share: share,
                capacity: bufferLimit)
            // A dispatch's grid grows with the batch too (the tiled GEMM's columns): past the device's workgroup count
            // it must be split like a tensor past the range.
            let groupLimits = limits.maxComputeWorkGroupCount
            let widestGrid =
                lowering.steps.map { step -> Double in
                    let groups = step.kernel.launch.groups
                    return [
                        Double(groups.x) / Double(groupLimits[0]), Double(groups.y) / Double(groupLimits[1]),
                        Double(groups.z) / Double(groupLimits[2]),
                    ].max() ?? 0
                }.max() ?? 0
            // Weights: packed one after another, a new buffer whenever the next array would pass the limit.
            weightOffsets = []
            weightBufferSizes = [0]
            for (count, valueBytes) in zip(lowering.weightCounts, lowering.weightElementBytes) {
                let bytes = MemoryPlan.padded(count * valueBytes)
                if weightBufferSizes[weightBufferSizes.count - 1] + bytes > bufferLimit && weightBufferSizes.last != 0 {
                    weightBufferSizes.append(0)
                }
                weightOffsets.append((weightBufferSizes.count - 1, weightBufferSizes[weightBufferSizes.count - 1]))
                weightBufferSizes[weightBufferSizes.count - 1] = MemoryPlan.aligned(
                    weightBufferSizes[weightBufferSizes.count - 1] + bytes)
            }
            weightEnd = weightBufferSizes.reduce(0, +)
            let io =
                MemoryPlan.padded(executed.shapes[executed.input].count * elementBytes)
                + MemoryPlan.padded(executed.shapes[executed.output].count * elementBytes)
            let needed = plan.arenaBytes + io + max(weightEnd, MemoryPlan.alignment)
            if largest <= rangeLimit && needed <= device.memoryBudgetBytes && widestGrid <= 1 { break }
            guard micro > 1 else {
                if let step = lowering.steps.first(where: { step in
                    let groups = step.kernel.launch.groups
                    return groups.x > groupLimits[0] || groups.y > groupLimits[1] || groups.z > groupLimits[2]
                }) {
                    let groups = step.kernel.launch.groups
                    throw VulkanSetupError.workgroupCountOutOfRange(
                        kernel: step.kernel.launch.spirvName, groups: [groups.x, groups.y, groups.z],
                        limits: groupLimits)
                }
                if largest > rangeLimit {
                    let node = executed.nodes.first {
                        $0.output
                            == executed.shapes.indices.max { executed.shapes[$0].count < executed.shapes[$1].count }
                    }
                    throw PlanError.tensorTooLarge(node: node?.name ?? "?", bytes: largest, limit: rangeLimit)
                }
                throw VulkanSetupError.outOfDeviceMemory(
                    neededBytes: needed, availableBytes: device.memoryBudgetBytes,
                    batch: graph.batch, largestBatch: 0)
            }
            // Activations grow with the batch; shrink in proportion to the worse overrun, at least by one.
            let byRange = min(
                largest > rangeLimit ? Double(rangeLimit) / Double(largest) : 1, widestGrid > 1 ? 1 / widestGrid : 1)
            let budgetForActivations = Double(device.memoryBudgetBytes - max(weightEnd, MemoryPlan.alignment))
            let byMemory =
                needed > device.memoryBudgetBytes ? max(0, budgetForActivations) / Double(plan.arenaBytes + io) : 1
            micro = max(1, min(micro - 1, Int(Double(micro) * min(byRange, byMemory))))
            executed = graph.withBatch(micro)
            lowering = try Lowering(graph: executed, profile: device.profile, choice: options.kernels, weights: false)
        }
        lowering = try Lowering(graph: executed, profile: device.profile, choice: options.kernels)
        self.plan = plan
        self.executed = executed
        self.variants = lowering.variants
        let elementBytes = lowering.elementBytes
        self.elementBytes = elementBytes

        let inputBytes = MemoryPlan.padded(executed.shapes[executed.input].count * elementBytes)
        let outputBytes = MemoryPlan.padded(executed.shapes[executed.output].count * elementBytes)
        let arenas = try plan.arenas.enumerated().map { index, bytes in
            try VulkanBuffer(
                device: device, size: bytes, label: plan.arenas.count > 1 ? "activations \(index)" : "activations")
        }
        let inputBuffer = try VulkanBuffer(device: device, size: inputBytes, label: "input")
        let inputStaging =
            inputBuffer.isHostVisible
            ? nil : try VulkanBuffer(device: device, size: inputBytes, memory: .staging, label: "input staging")
        let outputBuffer = try VulkanBuffer(device: device, size: outputBytes, label: "output")
        let outputStaging =
            outputBuffer.isHostVisible
            ? nil : try VulkanBuffer(device: device, size: outputBytes, memory: .staging, label: "output staging")

        let weights = try weightBufferSizes.enumerated().map { index, bytes in
            try VulkanBuffer(
                device: device, size: max(bytes, MemoryPlan.alignment),
                label: weightBufferSizes.count > 1 ? "weights \(index)" : "weights")
        }
        // Each array straight into its buffer (or that buffer's one staging buffer), as float32 or as halves; the
        // padding between arrays stays zero.
        for (index, buffer) in weights.enumerated() {
            try buffer.write { pool in
                pool.initializeMemory(as: UInt8.self, repeating: 0)
                for (arrayIndex, (array, place)) in zip(lowering.weights, weightOffsets).enumerated()
                where place.buffer == index {
                    if lowering.weightElementBytes[arrayIndex] == 2 {
                        array.map(Half.bits).withUnsafeBytes {
                            UnsafeMutableRawBufferPointer(rebasing: pool[place.offset..<(place.offset + $0.count)])
                                .copyMemory(from: $0)
                        }
                    } else {
                        array.withUnsafeBytes {
                            UnsafeMutableRawBufferPointer(rebasing: pool[place.offset..<(place.offset + $0.count)])
                                .copyMemory(from: $0)
                        }
                    }
                }
            }
        }

        // Where each binding's resource lives.
        func location(_ resource: PlanResource) -> (buffer: VulkanBuffer, offset: Int, bytes: Int) {
            switch resource {
            case let .tensor(id) where id == executed.input: return (inputBuffer, 0, inputBytes)
            case let .tensor(id) where id == executed.output: return (outputBuffer, 0, outputBytes)
            case let .tensor(id):
                guard let region = plan.tensors[id] else { preconditionFailure("tensor \(id) has no memory") }
                return (arenas[region.arena], region.offset, region.bytes)
            case let .scratch(node, index):
                let region = plan.scratch[node][index]
                return (arenas[region.arena], region.offset, region.bytes)
            case let .weight(index):
                let place = weightOffsets[index]
                return (
                    weights[place.buffer], place.offset,
                    MemoryPlan.padded(lowering.weightCounts[index] * lowering.weightElementBytes[index])
                )
            }
        }

        // Pipelines, views and descriptor sets for every step (the views are shared between steps).
        let stepPipelines = try lowering.steps.map { try pipelines.pipeline(for: $0.kernel.launch) }
        let pool = try DescriptorPool(device: device, forSetsOf: stepPipelines)
        var views: [String: TexelBufferView] = [:]
        let sets = try zip(lowering.steps, stepPipelines).map { step, pipeline in
            try pool.makeSet(
                for: pipeline,
                step.kernel.bindings.map { binding -> DescriptorResource in
                    let (buffer, offset, bytes) = location(binding.resource)
                    guard binding.kind(on: step.kernel.dataPath).takesTexelView else {
                        return .buffer(buffer, offset: offset, range: bytes)
                    }
                    let format = binding.format
                    let key = "\(binding.resource)/\(format)"
                    if let view = views[key] { return .texels(view) }
                    let view = try TexelBufferView(
                        buffer: buffer, format: format, offset: offset, range: bytes / format.bytes * format.bytes)
                    views[key] = view
                    return .texels(view)
                })
        }

        // Record once.
        let commands = try CommandBuffer(device: device)
        let timestamps =
            device.timestampValidBits > 0
            ? try TimestampQueries(device: device, count: options.profile ? executed.nodes.count + 1 : 2) : nil
        try commands.begin()
        if let timestamps { commands.resetQueries(timestamps) }
        // Order this run after the previous run's use of the same memory.
        commands.barrier(.computeReadWrite, before: .computeReadWrite)
        if let inputStaging {
            commands.barrier(.computeRead, before: .transferWrite, buffers: [inputBuffer])
            commands.copy(from: inputStaging, to: inputBuffer, size: inputBytes)
            commands.barrier(.transferWrite, before: .computeRead, buffers: [inputBuffer])
        }
        if let timestamps { commands.writeTimestamp(timestamps, index: 0) }

        var hazards = HazardTracker()
        var barriers = 0
        for (index, step) in lowering.steps.enumerated() {
            let bindings = step.kernel.bindings
            let reads = bindings.filter { $0.access == .read }.map { Access(location($0.resource)) }
            let writes = bindings.filter { $0.access == .write }.map { Access(location($0.resource)) }
            if hazards.needsBarrier(reads: reads, writes: writes) {
                commands.barrier(.computeReadWrite, before: .computeReadWrite)
                hazards.reset()
                barriers += 1
            }
            hazards.record(reads: reads, writes: writes)
            try step.kernel.launch.record(commands, set: sets[index])
            let lastOfNode = index + 1 == lowering.steps.count || lowering.steps[index + 1].node != step.node
            if let timestamps, lastOfNode, options.profile { commands.writeTimestamp(timestamps, index: step.node + 1) }
        }
        if let timestamps, !options.profile { commands.writeTimestamp(timestamps, index: 1) }
        if let outputStaging {
            commands.barrier(.computeWrite, before: .transferRead, buffers: [outputBuffer])
            commands.copy(from: outputBuffer, to: outputStaging, size: outputBytes)
            commands.barrier(.transferWrite, before: .hostRead, buffers: [outputStaging])
        } else {
            commands.barrier(.computeWrite, before: .hostRead, buffers: [outputBuffer])
        }
        if options.keepIntermediates {
            commands.barrier(.computeWrite, before: .hostRead)
            commands.barrier(.computeWrite, before: .transferRead)
        }
        try commands.end()

        self.arenas = arenas
        self.inputBuffer = inputBuffer
        self.inputStaging = inputStaging
        self.outputBuffer = outputBuffer
        self.outputStaging = outputStaging
        self.weights = weights
        self.commands = commands
        self.timestamps = timestamps
        nodeBytes = executed.nodes.map { node in
            elementBytes
                * (node.inputs.reduce(0) { $0 + executed.shapes[$1].count } + executed.shapes[node.output].count)
                + node.op.weightBytes / 4 * elementBytes
        }
        // Each node's data path is its first step's.
        var nodePaths: [Int: DataPath] = [:]
        for step in lowering.steps where nodePaths[step.node] == nil { nodePaths[step.node] = step.kernel.dataPath }
        let paths = Dictionary(grouping: nodePaths.values, by: \.rawValue).mapValues(\.count)
        statistics = SessionStatistics(
            activationBytes: plan.arenaBytes + inputBytes + outputBytes,
            unsharedActivationBytes: plan.unsharedBytes + inputBytes + outputBytes,
            weightBytes: weights.reduce(0) { $0 + $1.size }, dispatches: lowering.steps.count, barriers: barriers,
            pipelines: Set(stepPipelines.map(ObjectIdentifier.init)).count, microBatch: micro,
            buffers: arenas.count + weights.count, dataPaths: paths)
    }

    /// Runs the graph on `input` (the input tensor's values, NCHW) and returns the output tensor's values.
    ///
    /// Calls from several threads or tasks are safe: they run one after another. After a failed submission (a
    /// timeout, a lost device) every call throws ``VulkanSetupError/deviceUnusable(after:)``.
    public func run(_ input: [Float]) throws -> [Float] {
        let expected = graph.shapes[graph.input]
        guard input.count == expected.count else {
            throw SessionError.inputSizeMismatch(given: input.count, expected: expected)
        }
        return try lock.withLock {
            // Never touch buffers that a failed (perhaps still pending) submission may be using.
            if let failure = device.failure { throw VulkanSetupError.deviceUnusable(after: failure) }
            let micro = executed.batch
            let inPerImage = expected.count / graph.batch
            let outPerImage = graph.shapes[graph.output].count / graph.batch
            var output: [Float] = []
            output.reserveCapacity(graph.shapes[graph.output].count)
            var deviceTime = 0.0
            for first in stride(from: 0, to: graph.batch, by: micro) {
                let images = min(micro, graph.batch - first)
                var chunk = Array(input[(first * inPerImage)..<((first + images) * inPerImage)])
                // The last submission may be short: the rest of its batch is zeros, and its outputs are dropped.
                if images < micro { chunk += [Float](repeating: 0, count: (micro - images) * inPerImage) }
                try upload(chunk, to: inputStaging ?? inputBuffer)
                try device.submitAndWait(commands)
                hasRun = true
                output += try download(outPerImage * micro, from: outputStaging ?? outputBuffer).prefix(
                    images * outPerImage)
                if let timestamps {
                    let times = try timestamps.nanoseconds()
                    deviceTime += max(0, (times.last ?? 0) - times[0])
                }
            }
            lastDeviceNanoseconds = timestamps == nil ? nil : deviceTime
            return output
        }
    }

    /// Writes activation values as the kernels store them (halves on the 16-bit families).
    private func upload(_ values: [Float], to buffer: VulkanBuffer, at offset: Int = 0) throws {
        if elementBytes == 2 {
            try buffer.upload(values.map(Half.bits), at: offset)
        } else {
            try buffer.upload(values, at: offset)
        }
    }

    /// Reads activation values as the kernels stored them.
    private func download(_ count: Int, from buffer: VulkanBuffer, at offset: Int = 0) throws -> [Float] {
        elementBytes == 2
            ? try buffer.download(UInt16.self, count: count, from: offset).map(Half.float)
            : try buffer.download(Float.self, count: count, from: offset)
    }

    deinit {
        // A submission that failed may still be running: wait for it before the buffers it uses are freed.
        if device.failure != nil { device.waitIdle() }
    }

    /// Device time of the last run, from the first dispatch to the last, summed over its submissions (`nil` without
    /// timestamp support).
    public func deviceNanoseconds() throws -> Double? {
        guard hasRun else { return nil }
        return lastDeviceNanoseconds
    }

    /// Per-node device time of the last submission of the last run, in graph order. Needs ``SessionOptions/profile``.
    public func profile() throws -> [NodeTime] {
        guard let timestamps, hasRun, options.profile else { return [] }
        let times = try timestamps.nanoseconds()
        return executed.nodes.enumerated().map { index, node in
            NodeTime(
                name: node.name, op: node.op.name, kernel: variants[index],
                shape: executed.shapes[node.output].description,
                nanoseconds: max(0, times[index + 1] - times[index]), madds: node.op.madds, bytes: nodeBytes[index])
        }
    }

    /// A tensor's values after the last run (of its last submission, when the batch was split). Every tensor is
    /// readable with ``SessionOptions/keepIntermediates``; otherwise only the input and output are (others may have
    /// been overwritten).
    public func tensor(_ id: TensorID) throws -> [Float] {
        let count = executed.shapes[id].count
        if id == executed.output { return try download(count, from: outputStaging ?? outputBuffer) }
        if id == executed.input { return try download(count, from: inputBuffer) }
        guard options.keepIntermediates, let region = plan.tensors[id] else {
            throw SessionError.tensorNotKept(id)
        }
        return try download(count, from: arenas[region.arena], at: region.offset)
    }
}

/// A byte range of one buffer that a dispatch reads or writes.
private struct Access {
    let buffer: ObjectIdentifier
    let range: Range<Int>

    init(_ location: (buffer: VulkanBuffer, offset: Int, bytes: Int)) {
        buffer = ObjectIdentifier(location.buffer)
        range = location.offset..<(location.offset + location.bytes)
    }

    func overlaps(_ other: Access) -> Bool { buffer == other.buffer && range.overlaps(other.range) }
}

/// Tracks what dispatches since the last barrier read and wrote, to place a barrier exactly where a read-after-write,
/// write-after-read or write-after-write would otherwise race.
private struct HazardTracker {
    private var reads: [Access] = []
    private var writes: [Access] = []

    func needsBarrier(reads newReads: [Access], writes newWrites: [Access]) -> Bool {
        newReads.contains { read in writes.contains(where: read.overlaps) }
            || newWrites.contains { write in
                writes.contains(where: write.overlaps) || reads.contains(where: write.overlaps)
            }
    }

    mutating func record(reads newReads: [Access], writes newWrites: [Access]) {
        reads += newReads
        writes += newWrites
    }

    mutating func reset() {
        reads.removeAll()
        writes.removeAll()
    }
}

/// A request a session cannot serve.
public enum SessionError: Error, Equatable, CustomStringConvertible {
    /// The input holds `given` values; the session takes a tensor of `expected`.
    case inputSizeMismatch(given: Int, expected: TensorShape)
    /// The tensor shares memory with others, so its values after a run are gone (``SessionOptions/keepIntermediates``).
    case tensorNotKept(TensorID)

    public var description: String {
        switch self {
        case let .inputSizeMismatch(given, expected):
            "The input holds \(given) values; this session takes \(expected) = \(expected.count)."
        case let .tensorNotKept(id):
            "Tensor \(id) shares memory with others; make the session with keepIntermediates to read it."
        }
    }
}
