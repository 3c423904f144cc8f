import ArgumentParser
import Benchmark
import Foundation
import Kernels
import Models
import NetworkGraph
import VulkanCompute

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure steptime (per batch and per image) beside the published table.",
        discussion: """
            With no --model or --arch, runs the five published rows (BossNet-T0 w/o SE, T0, T0^ at 288, T1, T1^ at 256) \
            at each --batch size. Steptime is the wall time of one batch: input copied in, network run, logits copied \
            out; figures are medians over --iterations runs after --warmup, with min and max. The authors' steptimes \
            are shown beside, not compared: they most likely follow BoTNet's protocol (a training step of batch 32 on \
            TPU-v3). Each model is also run once at a small input on the CPU reference and its relative error printed. \
            Weights are synthetic, calibrated so that activations stay near unit scale, and the input is smooth \
            synthetic images: on CPU devices steptime depends on the values (random noise took 1.06x the time on lavapipe), \
            and these run as fast as the authors' weights on a photograph.
            """)

    @OptionGroup var selection: DeviceSelection
    @OptionGroup var kernels: KernelFamilyList

    /// Default: the published rows.
    @OptionGroup var modelList: ModelList

    @Option(help: "Input size for --model/--arch rows (default 224; the published rows use their own sizes).")
    var inputSize: Int?

    @Option(
        name: .customLong("batch"), parsing: .upToNextOption,
        help: "Batch sizes: --batch 1 8, or --batch 1 --batch 8 (default 1 and 8; 32 with --train).")
    var batchList: [Int] = []

    @Flag(help: "Time a training step (forward, backward, AdamW) beside the inference steptime at the same batch.")
    var train = false

    @Option(help: "With --train: stochastic depth's rate (the authors' --drop-path; default 0, off).")
    var dropPath = 0.0

    @Option(
        help: """
            With --train: when the backward makes block-interior outputs again instead of keeping them: auto (where \
            memory is short), always, never.
            """)
    var recompute = RecomputeChoice.auto

    /// The batches asked for, or the defaults.
    var batches: [Int] { batchList.isEmpty ? (train ? [32] : [1, 8]) : batchList }

    @Option(help: "Timed runs per row.")
    var iterations = 5

    @Option(help: "Untimed runs before them.")
    var warmup = 1

    @Option(help: "Input size of the numerics check against the CPU reference.")
    var checkSize = 64

    @Option(help: "Batch of the numerics check (distinct images).")
    var checkBatch = 1

    @Flag(help: "Print per-node device times, slowest first.")
    var profile = false

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    func validate() throws {
        if let inputSize { try validateInputSize(inputSize) }
        try validateInputSize(checkSize, option: "--check-size")
        guard (1...64).contains(checkBatch) else { throw ValidationError("--check-batch must be between 1 and 64.") }
        guard !batches.isEmpty, batches.allSatisfy({ (1...256).contains($0) }) else {
            throw ValidationError("--batch must be between 1 and 256.")
        }
        guard (1...10_000).contains(iterations), (0...1000).contains(warmup) else {
            throw ValidationError("--iterations must be at least 1 and --warmup at least 0.")
        }
        guard (0..<1).contains(dropPath) && (train || dropPath == 0) else {
            throw ValidationError("--drop-path must be in [0, 1), and goes with --train; got \(dropPath).")
        }
        _ = try cases()
    }

    /// Every row, once per `--kernels` choice, the choices side by side.
    func cases() throws -> [BenchmarkCase] {
        let kernels = try self.kernels.choices()
        return try baseCases().flatMap { row in kernels.map { row.with($0) } }
    }

    func baseCases() throws -> [BenchmarkCase] {
        if modelList.isEmpty {
            if inputSize != nil {
                throw ValidationError(
                    "--input-size applies to --model or --arch rows; the published rows have their own sizes.")
            }
            return try BenchmarkCase.publishedTable(batches: batches)
        }
        let chosen = try modelList.resolve()
        let published = try BenchmarkCase.publishedTable(batches: [1])
        return chosen.flatMap { model in
            batches.map { batch in
                let size = inputSize ?? 224
                // A named model at a published size keeps the published figures beside it.
                let row = published.first { $0.model.architecture == model.architecture && $0.inputSize == size }
                return BenchmarkCase(
                    model: model, label: row?.label, inputSize: size, batch: batch, published: row?.published)
            }
        }
    }

    func run() throws {
        let device: VulkanDevice
        do { device = try selection.open() } catch { throw report(error) }
        if train { return try runTraining(on: device) }
        // Families the device cannot run are skipped when several are compared, an error when asked for alone.
        let runnable: [KernelChoice]
        do { runnable = try kernels.runnable(on: device) } catch { throw report(error) }
        let cases = try cases().filter { runnable.contains($0.kernels) }
        // Progress goes to standard error, with --json too (standard output holds only the JSON).
        let benchmarker = Benchmarker(
            device: device, iterations: iterations, warmup: warmup, profile: profile,
            checkInputSize: checkSize, checkBatch: checkBatch,
            findDivergence: Environment.check, progress: { text in progress(text) })
        let finished = FinishedRows()
        let (json, profile, info, total) = (json, profile, device.info, cases.count)
        // Interrupted (Ctrl-C, a scheduler's SIGTERM), print the rows finished so far before leaving.
        let interrupt = onInterrupt {
            progressDone()
            FileHandle.standardError.write(Data("interrupted: \(finished.rows.count) of \(total) rows finished\n".utf8))
            try? Self.printReport(BenchmarkReport(device: info, rows: finished.rows), json: json, profile: profile)
        }
        defer { interrupt.cancel() }
        if cases.count > 1 {
            note(
                "bench: \(cases.count) rows on \(info.name); the time left shows after each row (Ctrl-C prints those done)"
            )
        }
        let started = Date()
        for (index, benchmark) in cases.enumerated() {
            do {
                let result = try benchmarker.run(benchmark)
                finished.append(result)
                progressDone()
                let left = Date().timeIntervalSince(started) / Double(index + 1) * Double(cases.count - index - 1)
                note(
                    "[\(index + 1)/\(cases.count)] \(result.label) \(result.input_size)px batch \(result.batch) "
                        + "kernels \(result.kernels): \(String(format: "%.1f", result.ms_per_batch.median)) ms per batch"
                        + (index + 1 < cases.count ? ", about \(clockDuration(left)) left" : ""))
            } catch {
                progressDone()
                throw report(error)
            }
        }
        let rows = finished.rows
        let silent = reportValidation(device.instance)
        try Self.printReport(BenchmarkReport(device: device.info, rows: rows), json: json, profile: profile)
        if !silent || rows.contains(where: { !$0.check_pass || $0.check_first_divergence != nil }) { throw ExitCode(1) }
    }
}

extension Bench {
    /// Prints a report as JSON or as tables on standard output.
    static func printReport(_ report: BenchmarkReport, json: Bool, profile: Bool) throws {
        if json { try printJSON(report) } else { print(BenchTables.render(report, profile: profile)) }
    }
}

/// The rows a benchmark has finished, readable from a signal handler while the next one runs.
final class FinishedRows: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [BenchmarkResult] = []
    var rows: [BenchmarkResult] { lock.withLock { list } }
    func append(_ row: BenchmarkResult) { lock.withLock { list.append(row) } }
}

/// Runs `body`, then exits with status 130, on SIGINT or SIGTERM, until ``InterruptHandler/cancel()``.
func onInterrupt(_ body: @escaping @Sendable () -> Void) -> InterruptHandler {
    onSignals {
        body()
        exit(130)
    }
}

/// Runs `handler` on every SIGINT and SIGTERM (their default action off) until ``InterruptHandler/cancel()``.
func onSignals(_ handler: @escaping @Sendable () -> Void) -> InterruptHandler {
    InterruptHandler(
        sources: [SIGINT, SIGTERM].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        })
}

/// The signal sources of ``onInterrupt(_:)``.
final class InterruptHandler: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]
    init(sources: [any DispatchSourceSignal]) { self.sources = sources }

    /// Stops handling the signals and gives them back their default action.
    func cancel() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// The human-readable tables of a benchmark report.
enum BenchTables {
    static func render(_ report: BenchmarkReport, profile: Bool) -> String {
        let device = report.device
        let driver = [device.driverName, device.driverInfo].compactMap { $0 }.joined(separator: " ")
        var out = [
            "Steptime on \(device.name) (\(device.type.rawValue), Vulkan \(device.apiVersion)"
                + (driver.isEmpty ? "" : ", " + driver) + "), synthetic weights", "",
        ]
        out += steptimeTable(report.rows)
        out.append("")
        out += setupTable(report.rows)
        if profile { out += report.rows.flatMap(profileTable) }
        return out.joined(separator: "\n")
    }

    /// Steptime, throughput and the published figures; with several kernel families, each row over the first's.
    static func steptimeTable(_ results: [BenchmarkResult]) -> [String] {
        var out: [String] = []
        // With several kernel families, each row's steptime over the first family's for the same model, size and
        // batch: the side-by-side comparison in one run.
        let compared = Set(results.map(\.kernels)).count > 1
        func ratio(_ r: BenchmarkResult) -> String {
            guard
                let first = results.first(where: {
                    $0.label == r.label && $0.input_size == r.input_size && $0.batch == r.batch
                }), first.ms_per_batch.median > 0
            else { return "-" }
            return String(format: "%.2fx %@", r.ms_per_batch.median / first.ms_per_batch.median, first.kernels)
        }
        var rows = [
            [
                "model", "input", "batch", "kernels", "MAdds", "params", "top-1*", "steptime*", "ms/batch (min-max)",
                "ms/image",
                "images/s", "GFLOP/s", "device ms",
            ] + (compared ? ["vs first"] : [])
        ]
        for r in results {
            rows.append(
                [
                    r.label, "\(r.input_size)", "\(r.batch)", r.kernels, formatGiga(r.madds),
                    String(format: "%.1f M", Double(r.parameters) / 1e6),
                    r.published.map { String(format: "%.1f%%", $0.top1) } ?? "-",
                    r.published.map { String(format: "%.0f ms", $0.steptime_ms) } ?? "-",
                    String(format: "%.1f (%.1f-%.1f)", r.ms_per_batch.median, r.ms_per_batch.min, r.ms_per_batch.max),
                    String(format: "%.1f", r.ms_per_image.median), String(format: "%.2f", r.images_per_second.median),
                    String(format: "%.1f", r.gflops.median),
                    r.device_ms.map { String(format: "%.1f", $0.median) } ?? "-",
                ] + (compared ? [ratio(r)] : []))
        }
        out.append(formatTable(rows))
        if compared {
            out.append("vs first: ms per batch over the first kernel family's for the same model, input and batch.")
        }
        out.append(
            "* top-1 and steptime as the authors published them; the steptime is most likely BoTNet's protocol (a training step of batch 32 on TPU-v3): not comparable with the figures measured here."
        )
        return out
    }

    /// Each row's data paths, memory, dispatches, pipeline and setup times, and its check against the CPU reference.
    static func setupTable(_ results: [BenchmarkResult]) -> [String] {
        var out: [String] = []
        var setup = [
            [
                "model", "input", "batch", "kernels", "data paths", "weights", "activations", "peak memory",
                "dispatches",
                "barriers", "pipelines", "cold", "warm", "setup", "check",
            ]
        ]
        for r in results {
            let paths =
                r.data_paths.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                + (r.micro_batch < r.batch ? "; \(r.micro_batch) per submission" : "")
            setup.append([
                r.label, "\(r.input_size)", "\(r.batch)", r.kernels, paths, formatBytes(UInt64(r.weight_bytes)),
                formatBytes(UInt64(r.activation_bytes)),
                formatBytes(UInt64(r.peak_device_bytes)), "\(r.dispatches)", "\(r.barriers)", "\(r.pipelines)",
                String(format: "%.0f ms", r.pipelines_cold_ms), String(format: "%.0f ms", r.pipelines_warm_ms),
                String(format: "%.0f ms", r.setup_ms),
                String(
                    format: "%.1e at %dpx x%d %@", r.check_rel_error, r.check_input_size, r.check_batch,
                    r.check_pass ? "ok" : "FAIL"),
            ])
        }
        out.append(formatTable(setup))
        out.append(
            "cold/warm: creating every pipeline with an empty pipeline cache, then with the cache that left; setup: planning, weight upload and recording; check: relative L2 error of the logits against the CPU reference."
        )
        for r in results {
            if let divergence = r.check_first_divergence {
                out.append("BOSSNET_CHECK: \(r.label) first diverges at \(divergence)")
            }
        }
        return out
    }

    /// One row's profile (the median run, slowest node first); nothing without one.
    static func profileTable(_ r: BenchmarkResult) -> [String] {
        guard let entries = r.profile else { return [] }
        var table = [["node", "op", "kernel", "shape", "ms", "share", "GFLOP/s", "GB/s"]]
        for e in entries {
            table.append([
                e.node, e.op, e.kernel, e.shape, String(format: "%.3f", e.ms), String(format: "%.1f%%", e.share * 100),
                e.gflops.map { String(format: "%.1f", $0) } ?? "-", String(format: "%.2f", e.gigabytes_per_second),
            ])
        }
        return [
            "",
            "Profile: \(r.label) \(r.input_size)px batch \(r.batch) kernels \(r.kernels) (the median run, slowest first)",
            formatTable(table),
        ]
    }
}
