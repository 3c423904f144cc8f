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
    private let buffers: SessionBuffers
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
        // The batch search lowers dry (sizes only); the weights are packed once, for the plan that is kept.
        let batchPlan = try BatchPlan(
            graph: graph, device: device, choice: options.kernels, share: !options.keepIntermediates)
        let executed = batchPlan.executed
        let lowering = try Lowering(graph: executed, profile: device.profile, choice: options.kernels)
        plan = batchPlan.memory
        self.executed = executed
        variants = lowering.variants
        elementBytes = lowering.elementBytes
        let buffers = try SessionBuffers(
            executed, plan: plan, parameters: batchPlan.parameters, lowering: lowering, device: device)
        let recorder = try StepRecorder(
            lowering.steps.map(\.kernel), pipelines: pipelines ?? KernelPipelines(device: device),
            locate: buffers.region)
        timestamps =
            device.timestampValidBits > 0
            ? try TimestampQueries(device: device, count: options.profile ? executed.nodes.count + 1 : 2) : nil
        commands = try CommandBuffer(device: device)
        let barriers = try Self.record(
            recorder, nodes: lowering.steps.map(\.node), buffers: buffers, into: commands, timestamps: timestamps,
            options: options)
        self.buffers = buffers
        nodeBytes = executed.nodes.map { node in
            lowering.elementBytes
                * (node.inputs.reduce(0) { $0 + executed.shapes[$1].count } + executed.shapes[node.output].count
                    + node.op.weightBytes / 4)
        }
        statistics = SessionStatistics(
            lowering: lowering, buffers: buffers, plan: plan, barriers: barriers,
            pipelines: Set(recorder.pipelines.map(ObjectIdentifier.init)).count, microBatch: executed.batch)
    }

    /// Records one run: the input copied in, every step with the barriers it needs, the output copied out, timestamps
    /// around the whole run or after every node. Returns the number of barriers between steps.
    private static func record(
        _ recorder: StepRecorder, nodes: [Int], buffers: SessionBuffers, into commands: CommandBuffer,
        timestamps: TimestampQueries?, options: SessionOptions
    ) throws -> Int {
        try commands.begin()
        if let timestamps { commands.resetQueries(timestamps) }
        // Order this run after the previous run's use of the same memory.
        commands.barrier(.computeReadWrite, before: .computeReadWrite)
        if let staging = buffers.inputStaging {
            commands.barrier(.computeRead, before: .transferWrite, buffers: [buffers.input])
            commands.copy(from: staging, to: buffers.input, size: buffers.inputBytes)
            commands.barrier(.transferWrite, before: .computeRead, buffers: [buffers.input])
        }
        if let timestamps { commands.writeTimestamp(timestamps, index: 0) }
        let barriers = try recorder.record(into: commands) { index in
            let lastOfNode = index + 1 == nodes.count || nodes[index + 1] != nodes[index]
            if let timestamps, lastOfNode, options.profile {
                commands.writeTimestamp(timestamps, index: nodes[index] + 1)
            }
        }
        if let timestamps, !options.profile { commands.writeTimestamp(timestamps, index: 1) }
        if let staging = buffers.outputStaging {
            commands.barrier(.computeWrite, before: .transferRead, buffers: [buffers.output])
            commands.copy(from: buffers.output, to: staging, size: buffers.outputBytes)
            commands.barrier(.transferWrite, before: .hostRead, buffers: [staging])
        } else {
            commands.barrier(.computeWrite, before: .hostRead, buffers: [buffers.output])
        }
        if options.keepIntermediates {
            commands.barrier(.computeWrite, before: .hostRead)
            commands.barrier(.computeWrite, before: .transferRead)
        }
        try commands.end()
        return barriers
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
                try upload(chunk, to: buffers.inputStaging ?? buffers.input)
                try device.submitAndWait(commands)
                hasRun = true
                output += try download(outPerImage * micro, from: buffers.outputStaging ?? buffers.output).prefix(
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
        if id == executed.output { return try download(count, from: buffers.outputStaging ?? buffers.output) }
        if id == executed.input { return try download(count, from: buffers.input) }
        guard options.keepIntermediates, let region = plan.tensors[id] else {
            throw SessionError.tensorNotKept(id)
        }
        return try download(count, from: buffers.arenas[region.arena], at: region.offset)
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
