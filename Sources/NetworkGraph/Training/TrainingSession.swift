import Foundation
import Kernels
import VulkanCompute

/// One training step of a ``Graph`` on a Vulkan device, as ``TrainingReference`` computes it on the CPU: the
/// train-mode forward (each BatchNorm on its batch's statistics, its running statistics moved toward them), the loss,
/// and every parameter's gradient, in one submission. The session plans its steps once; each ``step(input:targets:)``
/// uploads a batch, runs them and reads the results.
///
/// Parameters, their gradients, optimizer state and running statistics have buffers of their own; every tensor, saved
/// value, scratch and tensor gradient of the step lives in arenas planned once, sharing memory with what is never in
/// use at the same time (``TrainingMemory``). The training kernels compute in float32 whatever the device. Where the
/// session's data path is ``DataPath/texel``, each kernel reads its inputs through texel views wherever they fit the
/// device's limit (storage buffers where they do not); outputs, and buffers updated in place (gradients added to,
/// parameters, optimizer state), are storage buffers.
public final class TrainingSession {
    public let graph: Graph
    public let device: VulkanDevice
    let buffers: TrainingBuffers
    private let recorder: StepRecorder
    let pipelines: KernelPipelines
    /// The embedded kernel each step runs, and the node and pass it belongs to, in order.
    private let kernels: [String]
    private let owners: [(node: String, backward: Bool)]
    let memory: TrainingMemory
    private let input: VulkanBuffer
    private let targets: VulkanBuffer
    private let losses: VulkanBuffer
    /// Each BatchNorm's running mean then variance, by its running-mean name.
    let running: [(norm: BatchNorm, buffer: VulkanBuffer)]
    let runningBuffers: [(norm: BatchNorm, buffer: TrainingBuffer)]
    /// Each parameter's optimizer state (AdamW's two moving averages, or SGD's momentum buffer), and the steps taken.
    var optimizerBuffers: [String: [TrainingBuffer]] = [:]
    var optimizerSteps = 0
    /// The model average's values (``ModelAverage``): each parameter's by its name, each BatchNorm's running mean then
    /// variance by its running-mean name; empty without one.
    var averages: [String: TrainingBuffer] = [:]
    var average: ModelAverage?
    /// Train-mode forwards run (each BatchNorm's `num_batches_tracked`), and the model average's.
    public internal(set) var forwardSteps = 0
    var averagedForwardSteps: Int64 = 0
    private var clippingPartials: TrainingBuffer?
    /// Each tensor's value and gradient buffers, by ``TensorID`` (no gradient for the input).
    private let tensorValues: [TrainingBuffer?]
    private let tensorGradients: [TrainingBuffer?]
    /// The branches stochastic depth drops, each with its mask's buffer, and where masks are drawn from.
    public let stochasticDepth: StochasticDepth
    private let masks: [String: VulkanBuffer]
    private var random: SeededRandom

    /// What one step computes.
    public struct Step: Sendable {
        /// The mean loss over the batch.
        public var loss: Double
        /// Every trainable parameter's gradient, by state-dict name.
        public var gradients: [String: [Float]]
        /// Every BatchNorm's running mean and variance after the step, by state-dict name.
        public var runningStatistics: [String: [Float]]
        /// Stochastic depth's scales the step took, `[batch]` by node name (empty without stochastic depth).
        public var masks: [String: [Double]] = [:]
    }

    /// Plans the step of `graph` (which needs parameter values) on `device`; refuses an operation without training
    /// kernels, naming its node. `dataPath` is how the kernels read their inputs: through texel views
    /// (``DataPath/texel``, the default) or storage buffers (any other). With `stochasticDepth`, each step drops
    /// its branches per image, with masks drawn from a generator seeded with `seed` unless the step is given them.
    /// With `share` false, every tensor and gradient keeps memory of its own, so that ``value(of:)`` and
    /// ``gradient(of:)`` can read any of them after a step. `recomputation` says when the backward makes outputs
    /// again rather than keeping them.
    public init(
        graph: Graph, device: VulkanDevice, pipelines: KernelPipelines? = nil, dataPath: DataPath = .texel,
        stochasticDepth: StochasticDepth = .none, seed: UInt64 = 0, share: Bool = true,
        recomputation: Recomputation = .whereMemoryIsShort
    ) throws {
        if let node = graph.nodes.first(where: { !($0.op is any DeviceTrainable) }) {
            throw ParameterError("\(node.name) (\(node.op.name)) has no training kernels yet.")
        }
        guard !graph.parameters.isEmpty else { throw ParameterError("The graph has no parameter values to train.") }
        // Made for this graph: every branch a node of it that adds a residual.
        _ = try StochasticDepth(
            graph: graph, rates: Dictionary(stochasticDepth.branches.map { ($0.node, $0.rate) }) { first, _ in first })
        self.graph = graph
        self.device = device
        let buffers = TrainingBuffers(graph: graph, device: device)
        self.buffers = buffers
        let logits = graph.shapes[graph.output]
        let input = try buffers.owned(graph.shapes[graph.input].count, label: "input")
        let targets = try buffers.owned(logits.count, label: "targets")
        let losses = try buffers.owned(logits.batch, label: "losses")
        var planner = try TrainingPlanner(graph: graph, buffers: buffers, stochasticDepth: stochasticDepth)
        let forward = try planner.forward(input: input) + planner.loss(targets: targets, losses: losses)
        var (chosen, steps, memory, budgeted) = try Self.plan(
            planner, forward, buffers: buffers, dataPath: dataPath, share: share, recomputation: recomputation)
        planner = chosen
        recomputes = chosen.recomputes
        budgetedBytes = budgeted
        try memory.allocate(on: device)
        self.memory = memory
        (self.input, self.targets, self.losses) = (
            try input.hostBuffer(), try targets.hostBuffer(), try losses.hostBuffer()
        )
        running = try planner.running.map { ($0.norm, try $0.buffer.hostBuffer()) }
        runningBuffers = planner.running
        masks = try planner.masks.mapValues { try $0.hostBuffer() }
        tensorGradients = planner.gradients
        tensorValues = planner.values
        let pipelines = pipelines ?? KernelPipelines(device: device)
        self.pipelines = pipelines
        recorder = try StepRecorder(steps, pipelines: pipelines, locate: memory.locate)
        kernels = steps.map(\.launch.spirvName)
        owners = planner.owners
        self.stochasticDepth = stochasticDepth
        self.share = share
        random = SeededRandom(seed: seed)
    }

    /// The backward after `forward`, recomputing by `recomputation`, its memory (placed, not allocated) and the bytes
    /// planned for against the budget; refuses a step that would not fit the device's memory budget, saying what
    /// takes it.
    private static func plan(
        _ planner: TrainingPlanner, _ forward: [KernelStep<TrainingBuffer>], buffers: TrainingBuffers,
        dataPath: DataPath, share: Bool, recomputation: Recomputation
    ) throws -> (TrainingPlanner, [KernelStep<TrainingBuffer>], TrainingMemory, budgeted: Int) {
        let device = buffers.device, capacity = TrainingMemory.capacity(of: device)
        func plan(recomputing: Bool) throws -> (TrainingPlanner, [KernelStep<TrainingBuffer>], TrainingMemory) {
            var trial = planner
            let steps = (forward + (try trial.backward(recompute: recomputing))).reading(
                through: dataPath, limit: device.limits.maxTexelBufferElements, bytes: \.size)
            return (trial, steps, TrainingMemory(steps: steps, capacity: capacity, share: share))
        }
        var (chosen, steps, memory) = try plan(recomputing: recomputation == .always)
        // AdamW's state, made at the first optimizer step, takes twice the parameters' bytes: the most any optimizer
        // here keeps (SGD keeps one buffer, a step without an optimizer none), so the check errs on the safe side.
        let stateBytes = 2 * buffers.parameters.values.reduce(0) { $0 + $1.size }
        let (budget, owned) = (device.memoryBudgetBytes, buffers.ownedBytes + stateBytes)
        if recomputation == .whereMemoryIsShort && owned + memory.bytes > budget {
            (chosen, steps, memory) = try plan(recomputing: true)
        }
        guard owned + memory.bytes <= budget else {
            let gb = { (bytes: Int) in
                bytes >= 1_000_000_000
                    ? String(format: "%.2f GB", Double(bytes) / 1e9) : String(format: "%.1f MB", Double(bytes) / 1e6)
            }
            throw ParameterError(
                "A training step of batch \(planner.graph.batch) needs \(gb(owned + memory.bytes)) (parameters, "
                    + "gradients, statistics and AdamW's state \(gb(owned)), the step's tensors \(gb(memory.bytes))"
                    + "\(chosen.recomputes ? ", recomputing outputs" : "")); the device's memory budget is "
                    + "\(gb(budget)). Train with a smaller batch, or raise the budget where the device can allocate more "
                    + "than its heap says (lavapipe reports 2 GiB whatever the machine has; the tool reads "
                    + "BOSSNET_MEMORY_BUDGET).")
        }
        return (chosen, steps, memory, owned + memory.bytes)
    }

    /// Whether planned buffers share memory, and whether the backward makes outputs again (see
    /// ``init(graph:device:pipelines:dataPath:stochasticDepth:seed:share:recomputation:)``).
    public let share: Bool
    public let recomputes: Bool
    /// Bytes the session planned for against the device's memory budget: ``deviceBytes`` and AdamW's state.
    public let budgetedBytes: Int

    /// Bytes of device memory the session holds: its own buffers and the arenas.
    public var deviceBytes: Int { ownedBytes + plannedBytes }
    /// Bytes of the session's own buffers (parameters, their gradients, optimizer state, running statistics).
    public var ownedBytes: Int { buffers.ownedBytes }
    /// Bytes of the arenas the step's tensors, saved values, scratch and gradients share.
    public var plannedBytes: Int { memory.bytes }
    /// Bytes those would take with no sharing.
    public var unsharedPlannedBytes: Int { memory.unsharedBytes }

    /// With `profile`, the last step's device time per embedded kernel, in nanoseconds, largest first.
    public private(set) var lastProfile: [(kernel: String, nanoseconds: Double, dispatches: Int)] = []
    /// With `profile`, the last step's device time per node in its forward and its backward (the loss as a node of
    /// its own), in nanoseconds, in the graph's order.
    public private(set) var lastNodeProfile: [(node: String, forward: Double, backward: Double)] = []

    private func recordProfile(_ timestamps: TimestampQueries) throws {
        let times = try timestamps.nanoseconds()
        var totals: [String: (Double, Int)] = [:]
        var nodes: [String: (forward: Double, backward: Double)] = [:]
        var order: [String] = []
        for (index, kernel) in kernels.enumerated() {
            let time = times[index + 1] - times[index], owner = owners[index]
            let previous = totals[kernel] ?? (0, 0)
            totals[kernel] = (previous.0 + time, previous.1 + 1)
            if nodes[owner.node] == nil { order.append(owner.node) }
            var node = nodes[owner.node] ?? (0, 0)
            if owner.backward { node.backward += time } else { node.forward += time }
            nodes[owner.node] = node
        }
        lastProfile = totals.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.nanoseconds > $1.nanoseconds }
        lastNodeProfile = order.map { ($0, nodes[$0]?.forward ?? 0, nodes[$0]?.backward ?? 0) }
    }

    /// One step on `input` (`[batch][3][H][W]`) with per-image target distributions `targets` (`[batch][classes]`;
    /// see ``CrossEntropy/targets(labels:smoothing:)``). The running statistics carry over to the next step; the
    /// parameters do not change (an optimizer's step does that). Without `reading`, only the loss comes back (the
    /// gradients stay on the device for ``optimize(_:)``); with `profile`, ``lastProfile`` holds the step's times.
    /// Under stochastic depth the step takes `masks` (``StochasticDepth/check(_:batch:)``), or draws the next ones.
    public func step(
        input images: [Float], targets distributions: [Float], masks given: [String: [Double]]? = nil,
        profile: Bool = false, reading: Bool = true
    ) throws -> Step {
        guard images.count == graph.shapes[graph.input].count else {
            throw ParameterError(
                "The input has \(images.count) values; the graph takes \(graph.shapes[graph.input].count).")
        }
        let logits = graph.shapes[graph.output]
        guard distributions.count == logits.count else {
            throw ParameterError(
                "The targets have \(distributions.count) values; the graph makes \(logits.count) logits.")
        }
        let masks = given ?? stochasticDepth.masks(batch: graph.batch, using: &random)
        try stochasticDepth.check(masks, batch: graph.batch)
        try input.upload(images)
        try targets.upload(distributions)
        for (node, buffer) in self.masks { try buffer.upload((masks[node] ?? []).map(Float.init)) }
        let timestamps = profile ? try TimestampQueries(device: device, count: kernels.count + 1) : nil
        try device.run { commands in
            if let timestamps {
                commands.resetQueries(timestamps)
                commands.writeTimestamp(timestamps, index: 0)
            }
            try recorder.record(into: commands) { index in
                if let timestamps { commands.writeTimestamp(timestamps, index: index + 1) }
            }
            commands.barrier(.computeWrite, before: .hostRead)
        }
        if let timestamps { try recordProfile(timestamps) }
        forwardSteps += 1
        let loss = try losses.download(Float.self, count: logits.batch).reduce(0.0) { $0 + Double($1) }
        return Step(
            loss: loss / Double(logits.batch), gradients: reading ? try readGradients() : [:],
            runningStatistics: reading ? try readRunning() : [:], masks: masks)
    }

    /// One step of `optimizer` on every trainable parameter with the last step's gradients, on the device (its state
    /// starts at zero on the first call and carries over); returns the parameters after it, by state-dict name. The
    /// next ``step(input:targets:masks:profile:reading:)`` runs on them (without `reading`, nothing is read back).
    /// Weight decay skips 1-d parameters and biases, as timm's optimizer factory groups them. With `clipping`, the
    /// gradients are first scaled to a global L2 norm of at most `clipping` (`clip_grad_norm_`); with a model average
    /// (``startAverage(_:from:)``), it is updated after the step, as timm's ModelEma after each optimizer step.
    public func optimize(_ optimizer: TrainingOptimizer, clipping: Double? = nil, reading: Bool = true) throws
        -> [String: [Float]]
    {
        optimizerSteps += 1
        var steps = try clippingSteps(clipping)
        var updated: [(String, TrainingBuffer, Int)] = []
        for declaration in graph.declarations where declaration.trainable {
            guard let gradient = buffers.gradients[declaration.name] else { continue }
            let parameter = try buffers.parameter(declaration.name), count = declaration.count
            steps += try optimizerSteps(optimizer, declaration, parameter: parameter, gradient: gradient)
            updated.append((declaration.name, parameter, count))
        }
        steps += averageSteps()
        let recorder = try StepRecorder(steps, pipelines: pipelines, locate: memory.locate)
        try device.run { commands in
            try recorder.record(into: commands)
            commands.barrier(.computeWrite, before: .hostRead)
        }
        guard reading else { return [:] }
        return try Dictionary(
            uniqueKeysWithValues: updated.map { ($0.0, try $0.1.hostBuffer().download(Float.self, count: $0.2)) })
    }

    private func optimizerSteps(
        _ optimizer: TrainingOptimizer, _ declaration: ParameterDeclaration, parameter: TrainingBuffer,
        gradient: TrainingBuffer
    ) throws -> [KernelStep<TrainingBuffer>] {
        let count = declaration.count, range = ElementRange(count: count)
        let decays = takesWeightDecay(name: declaration.name, shape: declaration.shape)
        switch optimizer {
        case let .adamw(adamw):
            let state = try state(for: declaration.name, count: count, buffers: 2)
            return adamw.steps(
                parameters: parameter, gradients: gradient, averages: state[0], squareAverages: state[1],
                range: range, step: optimizerSteps, decays: decays)
        case let .sgd(sgd):
            let state = try state(for: declaration.name, count: count, buffers: 1)
            return sgd.steps(
                parameters: parameter, gradients: gradient, momentum: state[0], range: range,
                firstStep: optimizerSteps == 1, decays: decays)
        }
    }

    /// Clipping by the global norm of every gradient, before the optimizer reads them.
    private func clippingSteps(_ maxNorm: Double?) throws -> [KernelStep<TrainingBuffer>] {
        guard let maxNorm else { return [] }
        let names = graph.declarations.filter(\.trainable).map(\.name).filter { buffers.gradients[$0] != nil }
        let gradients = names.compactMap { buffers.gradients[$0] }
        let clipping = GradientClipping(
            maxNorm: maxNorm, ranges: names.map { ElementRange(count: buffers.counts[$0] ?? 0) })
        let partials = try clippingPartials ?? buffers.owned(clipping.partialsCount, label: "gradient norm partials")
        clippingPartials = partials
        return clipping.steps(gradients: gradients, partials: partials)
    }

    private func state(for name: String, count: Int, buffers arrays: Int) throws -> [TrainingBuffer] {
        if let state = optimizerBuffers[name] { return state }
        let state = try (0..<arrays).map { _ in
            try buffers.holding([Float](repeating: 0, count: count), label: "optimizer state of \(name)")
        }
        optimizerBuffers[name] = state
        return state
    }

    /// The value of `tensor` in the last step's forward; needs a session that does not share memory.
    public func value(of tensor: TensorID) throws -> [Float]? {
        try tensorValues[tensor].map(read)
    }

    /// The gradient of the loss with respect to `tensor` after the last step (`nil` for the graph's input): for
    /// finding where a wrong gradient starts. Needs a session that does not share memory.
    public func gradient(of tensor: TensorID) throws -> [Float]? {
        try tensorGradients[tensor].map(read)
    }

    /// The values of `buffer` after the last step: an owned buffer, or a planned one where nothing shares its memory.
    private func read(_ buffer: TrainingBuffer) throws -> [Float] {
        if buffer.owned == nil && share {
            throw ParameterError(
                "\(buffer.label) shares its memory with later buffers of the step; plan the session with share: false to read it."
            )
        }
        let region = memory.locate(buffer)
        return try region.buffer.download(Float.self, count: buffer.count, from: region.offset)
    }

    /// Every trainable parameter's gradient after the last step, by state-dict name.
    public func gradients() throws -> [String: [Float]] { try readGradients() }

    /// Replaces the last step's gradients with `gradients` (every parameter's, by state-dict name), which the next
    /// ``optimize(_:clipping:reading:)`` takes: data parallelism's averaged gradients.
    public func setGradients(_ gradients: [String: [Float]]) throws {
        for (name, buffer) in buffers.gradients {
            guard let values = gradients[name], values.count == buffers.counts[name] else {
                throw ParameterError("The gradients lack \(name), or hold a different count of it.")
            }
            try buffer.hostBuffer().upload(values)
        }
    }

    /// Data parallelism's all-reduce: every replica's last-step gradients replaced by their mean over the replicas
    /// (summed in replica order in float32, then divided by their count), so that the same optimizer step on each
    /// keeps them equal, as DistributedDataParallel does.
    public static func averageGradients(_ replicas: [TrainingSession]) throws {
        guard replicas.count > 1 else { return }
        let gradients = try replicas.map { try $0.gradients() }
        var mean = gradients[0]
        let count = Float(replicas.count)
        for (name, first) in gradients[0] {
            var sum = first
            for other in gradients.dropFirst() {
                guard let values = other[name], values.count == sum.count else {
                    throw ParameterError(
                        "The replicas' gradients of \(name) differ in shape; their graphs must be one.")
                }
                for index in sum.indices { sum[index] += values[index] }
            }
            mean[name] = sum.map { $0 / count }
        }
        for replica in replicas { try replica.setGradients(mean) }
    }

    private func readGradients() throws -> [String: [Float]] {
        var gradients: [String: [Float]] = [:]
        for (name, buffer) in buffers.gradients {
            gradients[name] = try buffer.hostBuffer().download(Float.self, count: buffers.counts[name] ?? 0)
        }
        return gradients
    }

    private func readRunning() throws -> [String: [Float]] {
        var statistics: [String: [Float]] = [:]
        for (norm, buffer) in running {
            let channels = graph.parameters.required(norm.runningMean).count
            let values = try buffer.download(Float.self, count: 2 * channels)
            statistics[norm.runningMean] = Array(values.prefix(channels))
            statistics[norm.runningVariance] = Array(values.suffix(channels))
        }
        return statistics
    }
}
