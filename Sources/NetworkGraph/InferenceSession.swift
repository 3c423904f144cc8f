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

    public init(profile: Bool = false, keepIntermediates: Bool = false) {
        self.profile = profile
        self.keepIntermediates = keepIntermediates
    }
}

/// How long one node took on the device in the last run.
public struct NodeTime: Sendable, Codable {
    public let name: String
    public let op: String
    public let shape: String
    public let nanoseconds: Double
    public let madds: Int
    /// Bytes the node's kernels read and wrote (activations and weights), for a GB/s figure.
    public let bytes: Int
}

/// Counts that describe a session's plan.
public struct SessionStatistics: Sendable, Codable {
    /// Bytes of the pooled activation buffer (the peak of live activations) plus the input and output buffers.
    public let activationBytes: Int
    /// What the activations would take if no two tensors shared memory.
    public let unsharedActivationBytes: Int
    /// Bytes of weights on the device.
    public let weightBytes: Int
    public let dispatches: Int
    public let barriers: Int
    public let pipelines: Int
}

/// A graph ready to run on one device: weights uploaded once, activations placed by a ``MemoryPlan``, every dispatch
/// recorded once into a command buffer with only the barriers its data dependencies need. ``run(_:)`` copies the
/// input in, replays the recording and copies the output out: it creates no buffer, pipeline or descriptor.
///
/// A session is made for one batch size and input size (the graph's). Its runs may come from several threads or tasks:
/// they take turns (sendable for that reason; its device must not be used by other threads meanwhile).
///
/// ```swift
/// let session = try InferenceSession(graph: graph, device: device)
/// let logits = try session.run(pixels)   // [batch * 1000]
/// ```
public final class InferenceSession: @unchecked Sendable {
    public let graph: Graph
    public let device: VulkanDevice
    public let plan: MemoryPlan
    public let statistics: SessionStatistics
    private let options: SessionOptions
    private let arena: VulkanBuffer
    private let inputBuffer: VulkanBuffer
    private let inputStaging: VulkanBuffer?
    private let outputBuffer: VulkanBuffer
    private let outputStaging: VulkanBuffer?
    private let weights: VulkanBuffer
    private let commands: CommandBuffer
    private let timestamps: TimestampQueries?
    private let nodeBytes: [Int]
    private var hasRun = false
    private let lock = NSLock()

    /// Plans `graph` for `device`, uploads its weights, makes its pipelines (through `pipelines`, so sessions can
    /// share them) and records its command buffer.
    public init(graph: Graph, device: VulkanDevice, pipelines: PipelineCache? = nil, options: SessionOptions = SessionOptions()) throws {
        self.graph = graph
        self.device = device
        self.options = options
        let pipelines = pipelines ?? PipelineCache(device: device)
        let lowering = Lowering(graph: graph)
        let plan = MemoryPlan(graph: graph, scratchBytes: lowering.scratchBytes, share: !options.keepIntermediates)
        self.plan = plan

        // Buffers: activations, the input and output, the weights. First, whether they fit at all.
        let inputBytes = MemoryPlan.padded(graph.shapes[graph.input].count * 4)
        let outputBytes = MemoryPlan.padded(graph.shapes[graph.output].count * 4)
        var weightOffsets: [Int] = []
        var weightEnd = 0
        for array in lowering.weights {
            weightOffsets.append(weightEnd)
            weightEnd = MemoryPlan.aligned(weightEnd + MemoryPlan.padded(array.count * 4))
        }
        let perBatch = plan.arenaBytes + inputBytes + outputBytes
        let needed = perBatch + max(weightEnd, MemoryPlan.alignment)
        guard needed <= device.memoryBudgetBytes else {
            // Activations, input and output grow with the batch; the weights do not.
            let perImage = max(1, perBatch / max(1, graph.batch))
            let largest = max(0, (device.memoryBudgetBytes - max(weightEnd, MemoryPlan.alignment)) / perImage)
            throw VulkanSetupError.outOfDeviceMemory(neededBytes: needed, availableBytes: device.memoryBudgetBytes, batch: graph.batch,
                                                     largestBatch: min(largest, graph.batch - 1))
        }
        let arena = try VulkanBuffer(device: device, size: plan.arenaBytes, label: "activations")
        let inputBuffer = try VulkanBuffer(device: device, size: inputBytes, label: "input")
        let inputStaging = inputBuffer.isHostVisible ? nil : try VulkanBuffer(device: device, size: inputBytes, memory: .staging, label: "input staging")
        let outputBuffer = try VulkanBuffer(device: device, size: outputBytes, label: "output")
        let outputStaging = outputBuffer.isHostVisible ? nil : try VulkanBuffer(device: device, size: outputBytes, memory: .staging, label: "output staging")

        let weights = try VulkanBuffer(device: device, size: max(weightEnd, MemoryPlan.alignment), label: "weights")
        // Each array straight into the pool (or its one staging buffer); the padding between them stays zero.
        try weights.write { pool in
            pool.initializeMemory(as: UInt8.self, repeating: 0)
            for (array, offset) in zip(lowering.weights, weightOffsets) {
                array.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: pool[offset..<(offset + $0.count)]).copyMemory(from: $0) }
            }
        }

        // Where each binding's resource lives.
        func location(_ resource: PlanResource) -> (buffer: VulkanBuffer, offset: Int, bytes: Int) {
            switch resource {
            case let .tensor(id) where id == graph.input: return (inputBuffer, 0, inputBytes)
            case let .tensor(id) where id == graph.output: return (outputBuffer, 0, outputBytes)
            case let .tensor(id):
                guard let region = plan.tensors[id] else { preconditionFailure("tensor \(id) has no memory") }
                return (arena, region.offset, region.bytes)
            case let .scratch(node, index):
                let region = plan.scratch[node][index]
                return (arena, region.offset, region.bytes)
            case let .weight(index):
                return (weights, weightOffsets[index], MemoryPlan.padded(lowering.weights[index].count * 4))
            }
        }

        // Pipelines, views and descriptor sets for every step (the views are shared between steps).
        let stepPipelines = try lowering.steps.map { try pipelines.pipeline(for: $0.kernel.launch) }
        let pool = try DescriptorPool(device: device, forSetsOf: stepPipelines)
        var views: [String: TexelBufferView] = [:]
        let sets = try zip(lowering.steps, stepPipelines).map { step, pipeline in
            try pool.makeSet(for: pipeline, step.kernel.bindings.map { binding -> DescriptorResource in
                let (buffer, offset, bytes) = location(binding.resource)
                guard let format = binding.format else { return .buffer(buffer, offset: offset, range: bytes) }
                let key = "\(binding.resource)/\(format)"
                if let view = views[key] { return .texels(view) }
                let view = try TexelBufferView(buffer: buffer, format: format, offset: offset, range: bytes / format.bytes * format.bytes)
                views[key] = view
                return .texels(view)
            })
        }

        // Record once.
        let commands = try CommandBuffer(device: device)
        let timestamps = device.timestampValidBits > 0
            ? try TimestampQueries(device: device, count: options.profile ? graph.nodes.count + 1 : 2) : nil
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
            let reads = bindings.filter { $0.format != nil }.map { Access(location($0.resource)) }
            let writes = bindings.filter { $0.format == nil }.map { Access(location($0.resource)) }
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

        self.arena = arena
        self.inputBuffer = inputBuffer
        self.inputStaging = inputStaging
        self.outputBuffer = outputBuffer
        self.outputStaging = outputStaging
        self.weights = weights
        self.commands = commands
        self.timestamps = timestamps
        nodeBytes = graph.nodes.map { node in
            4 * (node.inputs.reduce(0) { $0 + graph.shapes[$1].count } + graph.shapes[node.output].count) + node.op.weightBytes
        }
        statistics = SessionStatistics(
            activationBytes: plan.arenaBytes + inputBytes + outputBytes,
            unsharedActivationBytes: plan.unsharedBytes + inputBytes + outputBytes,
            weightBytes: weights.size, dispatches: lowering.steps.count, barriers: barriers, pipelines: Set(stepPipelines.map(ObjectIdentifier.init)).count)
    }

    /// Runs the graph on `input` (the input tensor's values, NCHW) and returns the output tensor's values.
    ///
    /// Calls from several threads or tasks are safe: they run one after another. After a failed submission (a
    /// timeout, a lost device) every call throws ``VulkanSetupError/deviceUnusable(after:)``.
    public func run(_ input: [Float]) throws -> [Float] {
        let expected = graph.shapes[graph.input]
        guard input.count == expected.count else {
            throw VulkanSetupError.limitExceeded("The input holds \(input.count) values; this session takes \(expected) = \(expected.count).")
        }
        return try lock.withLock {
            // Never touch buffers that a failed (perhaps still pending) submission may be using.
            if let failure = device.failure { throw VulkanSetupError.deviceUnusable(after: failure) }
            try (inputStaging ?? inputBuffer).upload(input)
            try device.submitAndWait(commands)
            hasRun = true
            return try (outputStaging ?? outputBuffer).download(Float.self, count: graph.shapes[graph.output].count)
        }
    }

    deinit {
        // A submission that failed may still be running: wait for it before the buffers it uses are freed.
        if device.failure != nil { device.waitIdle() }
    }

    /// Device time of the last run, from the first dispatch to the last (`nil` without timestamp support).
    public func deviceNanoseconds() throws -> Double? {
        guard let timestamps, hasRun else { return nil }
        let times = try timestamps.nanoseconds()
        return max(0, (times.last ?? 0) - times[0])
    }

    /// Per-node device time of the last run, in graph order. Needs ``SessionOptions/profile``.
    public func profile() throws -> [NodeTime] {
        guard let timestamps, hasRun, options.profile else { return [] }
        let times = try timestamps.nanoseconds()
        return graph.nodes.enumerated().map { index, node in
            NodeTime(name: node.name, op: node.op.name, shape: graph.shapes[node.output].description,
                     nanoseconds: max(0, times[index + 1] - times[index]), madds: node.op.madds, bytes: nodeBytes[index])
        }
    }

    /// A tensor's values after the last run. Every tensor is readable with ``SessionOptions/keepIntermediates``;
    /// otherwise only the input and output are (others may have been overwritten).
    public func tensor(_ id: TensorID) throws -> [Float] {
        let count = graph.shapes[id].count
        if id == graph.output { return try (outputStaging ?? outputBuffer).download(Float.self, count: count) }
        if id == graph.input { return try inputBuffer.download(Float.self, count: count) }
        guard options.keepIntermediates, let region = plan.tensors[id] else {
            throw VulkanSetupError.limitExceeded("Tensor \(id) shares memory with others; make the session with keepIntermediates to read it.")
        }
        return try arena.download(Float.self, count: count, from: region.offset)
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
            || newWrites.contains { write in writes.contains(where: write.overlaps) || reads.contains(where: write.overlaps) }
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
