import Foundation
import Kernels
import Models
import NetworkGraph
import VulkanCompute

/// One row of the benchmark: a model at an input size and a batch size.
public struct BenchmarkCase: Sendable {
    public let model: Model
    /// The published table's name for it ("BossNet-T0^"), when it is one of the published rows.
    public let label: String
    public let inputSize: Int
    public let batch: Int
    public let published: PublishedFigures?
    /// Which kernels run (the planner's choice for the device, or one family).
    public let kernels: KernelChoice

    public init(
        model: Model, label: String? = nil, inputSize: Int, batch: Int, published: PublishedFigures? = nil,
        kernels: KernelChoice = .automatic
    ) {
        self.model = model
        self.label = label ?? model.name
        self.inputSize = inputSize
        self.batch = batch
        self.published = published
        self.kernels = kernels
    }

    /// The same case with other kernels.
    public func with(_ kernels: KernelChoice) -> BenchmarkCase {
        BenchmarkCase(
            model: model, label: label, inputSize: inputSize, batch: batch, published: published, kernels: kernels)
    }

    /// The BossNAS README's table: T0 w/o SE, T0, T0^ (288), T1, T1^ (256), at each batch size.
    public static func publishedTable(batches: [Int]) throws -> [BenchmarkCase] {
        let rows: [(String, String, Int, Double, Double)] = [
            ("BossNet-T0 w/o SE", "bossnet_T0_nose", 224, 80.5, 101),
            ("BossNet-T0", "bossnet_T0", 224, 80.8, 115),
            ("BossNet-T0^", "bossnet_T0", 288, 81.6, 147),
            ("BossNet-T1", "bossnet_T1", 224, 81.9, 156),
            ("BossNet-T1^", "bossnet_T1", 256, 82.2, 165),
        ]
        return try rows.flatMap { label, name, size, top1, steptime in
            let model = try Model(name: name)
            return batches.map { batch in
                BenchmarkCase(
                    model: model, label: label, inputSize: size, batch: batch,
                    published: PublishedFigures(top1: top1, steptimeMilliseconds: steptime))
            }
        }
    }
}

/// What was measured for one ``BenchmarkCase``. Times are in milliseconds; rates come from the median time (and
/// from the extremes for their min and max).
public struct BenchmarkResult: Sendable, Codable {
    public let model: String
    public let label: String
    public let architecture: String
    public let input_size: Int
    public let batch: Int
    /// The kernels asked for: "auto" or a family's name.
    public let kernels: String
    /// How many nodes ran on each data path ("texel", "storage", "fp16").
    public let data_paths: [String: Int]
    /// Images per submission (less than the batch where the device's limits split it).
    public let micro_batch: Int
    /// Multiply-adds per image.
    public let madds: Int
    public let parameters: Int
    public let published: PublishedFigures?
    /// Steptime: wall time of one batch (input copied in, network run, logits copied out).
    public let ms_per_batch: Statistic
    public let ms_per_image: Statistic
    public let images_per_second: Statistic
    /// 2 * MAdds * batch / steptime.
    public let gflops: Statistic
    /// Device time of one batch, from GPU timestamps.
    public let device_ms: Statistic?
    public let iterations: Int
    public let warmup: Int
    public let weight_bytes: Int
    public let activation_bytes: Int
    /// Device memory the session's buffers hold, as the driver sized their allocations: weights, activations,
    /// input and output, and staging where the device needs it.
    public let peak_device_bytes: Int
    public let dispatches: Int
    public let barriers: Int
    public let pipelines: Int
    /// Time to create every pipeline with an empty pipeline cache, then again with the cache that made.
    public let pipelines_cold_ms: Double
    public let pipelines_warm_ms: Double
    /// Planning, weight upload and recording (pipelines from the in-process cache).
    public let setup_ms: Double
    /// The numerics check: the same model at `check_input_size`, batch `check_batch`, on the CPU reference.
    public let check_input_size: Int
    public let check_batch: Int
    public let check_rel_error: Double
    public let check_pass: Bool
    /// With BOSSNET_CHECK=1: the first node whose output diverged from its CPU reference.
    public let check_first_divergence: String?
    /// Per-node times of the median iteration's run, slowest first (with --profile).
    public let profile: [ProfileEntry]?
}

/// One node in a profile.
public struct ProfileEntry: Sendable, Codable {
    public let node: String
    public let op: String
    /// The kernels that ran it.
    public let kernel: String
    public let shape: String
    public let ms: Double
    /// Share of the summed node times.
    public let share: Double
    public let gflops: Double?
    public let gigabytes_per_second: Double
}

/// Runs benchmark cases on one device.
public final class Benchmarker {
    public let device: VulkanDevice
    public let iterations: Int
    public let warmup: Int
    public let profile: Bool
    /// The weights of every case; `nil` for each model's calibrated ``SyntheticWeights``.
    public let weights: (any ParameterSource)?
    /// The input size of the numerics check.
    public let checkInputSize: Int
    /// The batch of the numerics check (distinct smooth images).
    public let checkBatch: Int
    /// Whether the numerics check also names the first node that diverges (``GraphCheck``; slower).
    public let findDivergence: Bool
    private let pipelines: KernelPipelines
    private let progress: (String) -> Void
    private var pipelineTimes: [String: (cold: Double, warm: Double)] = [:]
    private var checks: [String: (error: Double, divergence: String?, tolerance: Double)] = [:]
    private var parameterCounts: [String: Int] = [:]

    /// A benchmarker that times `iterations` runs after `warmup` untimed ones, checks numerics at `checkInputSize`
    /// and reports what it is doing through `progress`.
    public init(
        device: VulkanDevice, iterations: Int, warmup: Int, profile: Bool = false,
        weights: (any ParameterSource)? = nil, checkInputSize: Int = 64, checkBatch: Int = 1,
        findDivergence: Bool = false, progress: @escaping (String) -> Void = { _ in }
    ) {
        self.findDivergence = findDivergence
        self.checkBatch = checkBatch
        precondition(iterations >= 1 && warmup >= 0, "at least one iteration")
        self.device = device
        self.iterations = iterations
        self.warmup = warmup
        self.profile = profile
        self.weights = weights
        self.checkInputSize = checkInputSize
        self.progress = progress
        pipelines = KernelPipelines(device: device)
    }

    /// Measures one case.
    public func run(_ benchmark: BenchmarkCase) throws -> BenchmarkResult {
        let name = "\(benchmark.label) \(benchmark.inputSize)px batch \(benchmark.batch)"
        progress("\(name): building")
        let graph = try benchmark.model.graph(
            batch: benchmark.batch, inputSize: benchmark.inputSize,
            weights: try weights ?? SyntheticWeights(calibratedFor: benchmark.model))
        // Per-image MAdds from the graph just built; parameters once per model.
        let madds = graph.madds / benchmark.batch
        let architecture = benchmark.model.architecture.text
        if parameterCounts[architecture] == nil { parameterCounts[architecture] = try benchmark.model.parameterCount() }
        let parameters = parameterCounts[architecture] ?? 0

        let key = "\(benchmark.model.architecture.text)/\(benchmark.inputSize)/\(benchmark.batch)/\(benchmark.kernels)"
        if pipelineTimes[key] == nil {
            progress("\(name): timing pipeline creation")
            pipelineTimes[key] = try timePipelineCreation(graph, kernels: benchmark.kernels)
        }
        let setupStart = DispatchTime.now()
        let allocatedBefore = device.allocatedBytes
        let session = try InferenceSession(
            graph: graph, device: device, pipelines: pipelines,
            options: SessionOptions(profile: profile, kernels: benchmark.kernels))
        let setup = milliseconds(since: setupStart)
        let sessionBytes = device.allocatedBytes - allocatedBefore

        // Smooth images, as the calibration and the check use (a distinct one per image of the batch), not random
        // noise: on CPU devices steptime depends on the values, and noise leaves subnormal products in stage 4 that
        // real photographs do not (BENCHMARKS.md, "The benchmark's input").
        let input = (0..<benchmark.batch).flatMap {
            SyntheticWeights.smoothImage(size: benchmark.inputSize, variant: $0)
        }
        var wall: [Double] = []
        var deviceTimes: [Double] = []
        var profiles: [[NodeTime]] = []
        for iteration in 0..<(warmup + iterations) {
            let timed = iteration >= warmup
            progress(
                "\(name): \(timed ? "iteration \(iteration - warmup + 1)/\(iterations)" : "warm-up \(iteration + 1)/\(warmup)")"
            )
            let start = DispatchTime.now()
            _ = try session.run(input)
            let elapsed = milliseconds(since: start)
            guard timed else { continue }
            wall.append(elapsed)
            if let nanoseconds = try session.deviceNanoseconds() { deviceTimes.append(nanoseconds / 1e6) }
            if profile { profiles.append(try session.profile()) }
        }

        let checkKey = "\(benchmark.model.architecture.text)/\(benchmark.kernels)"
        if checks[checkKey] == nil {
            progress("\(name): checking numerics against the CPU at \(checkInputSize)px")
            checks[checkKey] = try checkNumerics(benchmark.model, kernels: benchmark.kernels)
        }
        let check = checks[checkKey] ?? (.nan, nil, 0)
        let times = Statistic(wall)
        let batch = Double(benchmark.batch)
        let flopsPerBatch = 2 * Double(madds) * batch
        let statistics = session.statistics
        let pipelineTime = pipelineTimes[key] ?? (.nan, .nan)
        return BenchmarkResult(
            model: benchmark.model.name, label: benchmark.label, architecture: benchmark.model.architecture.text,
            input_size: benchmark.inputSize, batch: benchmark.batch, kernels: "\(benchmark.kernels)",
            data_paths: statistics.dataPaths, micro_batch: statistics.microBatch, madds: madds, parameters: parameters,
            published: benchmark.published,
            ms_per_batch: times, ms_per_image: times.map { $0 / batch },
            images_per_second: times.map { batch * 1000 / $0 },
            gflops: times.map { flopsPerBatch / ($0 / 1000) / 1e9 },
            device_ms: deviceTimes.isEmpty ? nil : Statistic(deviceTimes), iterations: iterations, warmup: warmup,
            weight_bytes: statistics.weightBytes, activation_bytes: statistics.activationBytes,
            peak_device_bytes: sessionBytes,
            dispatches: statistics.dispatches, barriers: statistics.barriers, pipelines: statistics.pipelines,
            pipelines_cold_ms: pipelineTime.cold, pipelines_warm_ms: pipelineTime.warm, setup_ms: setup,
            check_input_size: checkInputSize, check_batch: checkBatch, check_rel_error: check.error,
            check_pass: check.error <= check.tolerance,
            check_first_divergence: check.divergence,
            profile: profile ? Self.summarize(profiles: profiles, wall: wall) : nil)
    }

    /// Relative L2 error allowed between the whole network on the device and on the CPU reference
    /// (``Tolerance/networkRelativeL2(for:)``).
    public static func checkTolerance(_ kernels: KernelChoice) -> Double { Tolerance.networkRelativeL2(for: kernels) }

    /// Creates every pipeline of `graph` on a fresh device with an empty cache, then on another that starts from the
    /// cache the first one saved; the user's own cache is not touched.
    func timePipelineCreation(_ graph: Graph, kernels: KernelChoice) throws -> (cold: Double, warm: Double) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bossnet-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let launches = try graph.launches(for: device.profile, kernels: kernels)
        func time() throws -> Double {
            let fresh = try VulkanDevice(
                instance: device.instance, physical: device.physical,
                options: DeviceOptions(pipelineCacheDirectory: directory, limits: device.limitsMode))
            let cache = KernelPipelines(device: fresh)
            let start = DispatchTime.now()
            for launch in launches { _ = try cache.pipeline(for: launch) }
            let elapsed = milliseconds(since: start)
            try fresh.savePipelineCache()
            return elapsed
        }
        let cold = try time()
        let warm = try time()
        return (cold, warm)
    }

    /// Runs `model` at the check size, batch 1, on the device and on the CPU; returns the relative L2 error of the
    /// logits and, with BOSSNET_CHECK=1, the first node that diverges.
    func checkNumerics(_ model: Model, kernels: KernelChoice) throws -> (
        error: Double, divergence: String?, tolerance: Double
    ) {
        let graph = try model.graph(
            batch: checkBatch, inputSize: checkInputSize,
            weights: try weights ?? SyntheticWeights(calibratedFor: model, inputSize: checkInputSize))
        // Smooth images, as photographs are (white noise drives peaked attention to near-ties).
        let input = (0..<checkBatch).flatMap { SyntheticWeights.smoothImage(size: checkInputSize, variant: $0) }
        let session = try InferenceSession(
            graph: graph, device: device, pipelines: pipelines,
            options: SessionOptions(kernels: kernels))
        let logits = try session.run(input)
        let error = Comparison(logits, CPUExecutor.run(graph, input: input)).relativeL2
        var divergence: String?
        if findDivergence,
            let node = try GraphCheck.firstDivergence(graph: graph, device: device, input: input, kernels: kernels)
        {
            divergence = "\(node.name) (\(node.op) \(node.shape)): relative L2 error \(node.relativeL2)"
        }
        return (error, divergence, Self.checkTolerance(kernels))
    }

    /// The per-node times of the iteration with the median wall time, slowest first.
    static func summarize(profiles: [[NodeTime]], wall: [Double]) -> [ProfileEntry] {
        guard !profiles.isEmpty else { return [] }
        let order = wall.indices.sorted { wall[$0] < wall[$1] }
        let nodes = profiles[order[order.count / 2]]
        let total = nodes.reduce(0) { $0 + $1.nanoseconds }
        return nodes.sorted { $0.nanoseconds > $1.nanoseconds }.map { node in
            let seconds = node.nanoseconds / 1e9
            return ProfileEntry(
                node: node.name, op: node.op, kernel: node.kernel, shape: node.shape, ms: node.nanoseconds / 1e6,
                share: total > 0 ? node.nanoseconds / total : 0,
                gflops: node.madds > 0 && seconds > 0 ? 2 * Double(node.madds) / seconds / 1e9 : nil,
                gigabytes_per_second: seconds > 0 ? Double(node.bytes) / seconds / 1e9 : 0)
        }
    }
}

/// The whole benchmark's output.
public struct BenchmarkReport: Sendable, Codable {
    public let device: DeviceInfo
    public let rows: [BenchmarkResult]

    public init(device: DeviceInfo, rows: [BenchmarkResult]) {
        self.device = device
        self.rows = rows
    }
}

func milliseconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
}
