import ArgumentParser
import Checkpoint
import Evaluation
import Foundation
import Images
import Models
import VulkanCompute

struct Eval: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Top-1 and top-5 accuracy over a labelled image set (PNG and JPEG), sharded over machines if need be.",
        subcommands: [EvalRun.self, EvalMerge.self],
        defaultSubcommand: EvalRun.self)
}

struct EvalRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Evaluate DIR: `bossnet eval --model NAME --weights FILE DIR` (run is the default).",
        usage: """
            bossnet eval [run] --model NAME --weights FILE|published|synthetic [<options>] DIR
            bossnet eval merge [--json] SHARD.jsonl ...
            """,
        discussion: """
            DIR is in torchvision's ImageFolder layout (one subfolder per class, classes numbered in sorted order, \
            every .jpg/.jpeg/.png/... file below it an image), or any folder with --labels FILE of \
            `relative/path class_index` lines. Images are read by their first bytes (PNG or JPEG), decoded as PIL \
            decodes them and preprocessed as the authors evaluate. An image that cannot be read is reported and \
            counted apart (--strict stops instead); the accuracies are over the images classified.

            --shard K/N takes every N-th image of the sorted set from the K-th (K from 0): run shard 0/N to \
            (N-1)/N on N machines, each with --predictions, then `bossnet eval merge` over their files. A run with \
            --predictions resumes where an interrupted one stopped.
            """)

    @OptionGroup var modelSelection: ModelSelection

    @OptionGroup var weightsSelection: WeightsSelection

    @Option(help: "A labels file of 'relative/path class_index' lines, instead of the ImageFolder layout.")
    var labels: String?

    @Option(help: "Input size S (the network's input is S x S).")
    var inputSize = 224

    @Option(help: "Images per batch on each device.")
    var batch = 8

    @Option(help: "Evaluate part K of N of the sorted set (K from 0), e.g. 3/8.")
    var shard: String?

    @Option(
        help:
            "Write one JSON line per image (path, label, top-5 classes and probabilities) here; resumes from it if it exists."
    )
    var predictions: String?

    @Flag(help: "Stop at the first image that cannot be read.")
    var strict = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Flag(help: "With --json, include each device's extension names.")
    var verbose = false

    @Option(help: "Devices to run on side by side, by their numbers in `bossnet devices`, e.g. 0,1 (one session each).")
    var devices: String?

    @OptionGroup var deviceSelection: DeviceSelection
    @OptionGroup var kernels: KernelFamilyOption

    @Flag(help: "Run on the CPU reference instead of Vulkan (slow; for checking).")
    var cpu = false

    @Argument(help: "The image set's folder.")
    var directory: String

    func validate() throws {
        try validateInputSize(inputSize)
        guard (1...256).contains(batch) else { throw ValidationError("--batch must be between 1 and 256.") }
        if [cpu, deviceSelection.device != nil, devices != nil].filter({ $0 }).count > 1 {
            throw ValidationError("Give one of --cpu, --device and --devices.")
        }
        if let shard { do { _ = try Shard(parsing: shard) } catch { throw ValidationError("--shard: \(error)") } }
        _ = try deviceIndices()
        _ = try kernels.choice()
        guard weightsSelection.weights != nil else {
            throw ValidationError(
                "Give --weights: a .pth or .safetensors checkpoint, 'published' for the authors' checkpoint of --model, or 'synthetic' to try the command without one."
            )
        }
        try weightsSelection.validate(requested: try modelSelection.requested())
        if let predictions { try checkWritable(predictions, option: "--predictions") }
    }

    func deviceIndices() throws -> [Int?] {
        guard let devices else { return [deviceSelection.device] }
        let parts = devices.split(separator: ",", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw ValidationError("--devices takes device numbers separated by commas, e.g. 0,1; got '\(devices)'.")
        }
        guard Set(parts).count == parts.count else {
            throw ValidationError(
                "--devices names a device twice ('\(devices)'): each device runs one session; give each number once.")
        }
        return parts
    }

    func run() async throws {
        do { try await evaluate() } catch let error as ExitCode { throw error } catch { throw report(error) }
    }

    private func evaluate() async throws {
        let root = URL(fileURLWithPath: directory)
        let shard = try shard.map(Shard.init(parsing:)) ?? .whole
        let whole =
            try labels.map { try ImageSet(root: root, labelsFile: URL(fileURLWithPath: $0)) }
            ?? ImageSet(imageFolder: root)
        let set = whole.shard(shard)
        if whole.images.isEmpty {
            // Before any work: no weights loaded, no device opened, no summary of 0 images.
            let extensions = ImageSet.imageExtensions.sorted().map { "." + $0 }.joined(separator: ", ")
            let place = labels.map { "listed in \($0)" } ?? "in class folders"
            note("error: \(directory) holds no images (files named \(extensions) \(place)): nothing to evaluate.")
            throw ExitCode(1)
        }
        let loaded = try weightsSelection.load(requested: try modelSelection.requested())
        let model = loaded.model
        let header = PredictionsHeader(
            model: model.name, weights: loaded.label ?? "synthetic", weightsSHA256: loaded.digest.hex,
            ema: weightsSelection.ema, inputSize: inputSize, shard: shard, images: set.images.count,
            setImages: whole.images.count)

        // The predictions file: checked (and resumed) before any work.
        var resumed: [PredictionRecord] = []
        var output: FileHandle?
        if let predictions {
            (resumed, output) = try openPredictions(URL(fileURLWithPath: predictions), header: header, set: set)
        }
        let graph = try model.graph(
            batch: min(batch, max(set.images.count, 1)), inputSize: inputSize, weights: loaded.weights)
        let factories: [DeviceFactory] =
            cpu
            ? [{ nil }]
            : try deviceIndices().map { index in
                { try openDevice(index: index) }
            }
        if !resumed.isEmpty, !json {
            note("resuming: \(resumed.count) of \(set.images.count) images already in \(predictions ?? "")")
        }

        let writer = output.map(LineWriter.init)
        let reporter = ProgressReporter(total: set.images.count - resumed.count)
        let interrupt = onInterrupt { [predictions, resumed = resumed.count, total = set.images.count] in
            reporter.finish()
            let done = resumed + reporter.done
            note(
                predictions.map {
                    "interrupted: \(done) of \(total) images are in \($0); run the same command again to resume from there."
                }
                    ?? "interrupted after \(done) of \(total) images; nothing was kept. Pass --predictions FILE to make a run resumable."
            )
        }
        let evaluator = Evaluator(set: set, graph: graph, strict: strict)
        let start = Date()
        let result = try await evaluator.run(
            devices: factories, kernels: try kernels.choice(), resumed: resumed,
            record: { record in try writer?.write(record) },
            progress: { reporter.update($0) })
        interrupt.cancel()
        reporter.finish()
        try output?.close()
        let seconds = Date().timeIntervalSince(start)
        let accuracy = result.accuracy
        let newImages = accuracy.images + accuracy.errors.count - resumed.count
        let summary = EvalSummary(
            model: model.name, weights: header.weights, weights_sha256: loaded.digest.hex,
            ema: weightsSelection.ema, input_size: inputSize, shard: shard.description,
            images: accuracy.images, top1: accuracy.top1, top5: accuracy.top5, errors: accuracy.errors,
            resumed: resumed.count, seconds: seconds, images_per_second: seconds > 0 ? Double(newImages) / seconds : 0,
            devices: result.devices, predictions: predictions)
        guard reportValidation(result.validationMessages) else { throw ExitCode(1) }
        if json { try printJSON(summary, verbose: verbose) } else { summary.print() }
        if accuracy.images == 0 {
            // The whole set has images (checked before any work), so an empty set here is an empty shard.
            note(
                set.images.isEmpty
                    ? "error: shard \(shard) of \(directory) holds no images: nothing was evaluated."
                    : "error: none of the \(set.images.count) images could be read: nothing was evaluated.")
            throw ExitCode(1)
        }
    }

    /// Opens the predictions file for appending: a new one gets the header; an existing one must be of this run, and
    /// its complete records are returned so the run resumes after them (a last line cut short is dropped).
    private func openPredictions(_ url: URL, header: PredictionsHeader, set: ImageSet) throws -> (
        [PredictionRecord], FileHandle
    ) {
        if FileManager.default.fileExists(atPath: url.path) {
            let contents = try PredictionsFile.read(url)
            let differences = contents.header.differences(from: header, here: url.path, there: "this run")
            guard differences.isEmpty else {
                throw ImageSetError(
                    "--predictions: \(url.path) holds another run's predictions; they differ in "
                        + differences.joined(separator: "; ") + ". Remove it or give another file.")
            }
            let paths = Set(set.images.map(\.path))
            guard contents.records.allSatisfy({ paths.contains($0.path) }) else {
                throw ImageSetError("--predictions: \(url.path) predicts images that are not in this set")
            }
            let handle = try FileHandle(forUpdating: url)
            try handle.truncate(atOffset: UInt64(contents.completeLength))
            try handle.seekToEnd()
            return (contents.records, handle)
        }
        do {
            try PredictionsFile.line(header).write(to: url)
            let handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
            return ([], handle)
        } catch {
            throw WriteError(path: url.path, error)
        }
    }
}

struct EvalMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Combine the predictions files of every shard of a run into its accuracy.",
        discussion:
            "Refuses files of different runs, a shard given twice or missing, an unfinished shard, and an image predicted twice."
    )

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Argument(help: "The predictions files (--predictions) of shards 0/N to (N-1)/N, in any order.")
    var files: [String] = []

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("Give the predictions file of every shard.") }
    }

    func run() throws {
        do {
            let (header, accuracy) = try PredictionsFile.merge(files.map { URL(fileURLWithPath: $0) })
            let summary = EvalSummary(
                model: header.model, weights: header.weights, weights_sha256: header.weights_sha256, ema: header.ema,
                input_size: header.input_size,
                shard: "\(header.shards) shards merged", images: accuracy.images, top1: accuracy.top1,
                top5: accuracy.top5,
                errors: accuracy.errors, resumed: 0, seconds: nil, images_per_second: nil, devices: nil,
                predictions: nil)
            if json { try printJSON(summary) } else { summary.print() }
        } catch let error as ExitCode { throw error } catch { throw report(error) }
    }
}

/// What `bossnet eval` prints (and, with --json, its JSON).
struct EvalSummary: Encodable {
    let model: String
    let weights: String
    /// The SHA-256 of the weights as bound (``WeightsDigest``).
    let weights_sha256: String
    let ema: Bool
    let input_size: Int
    let shard: String
    /// Images classified (those that could not be read are in `errors`).
    let images: Int
    let top1: Double
    let top5: Double
    let errors: [ImageFailure]
    let resumed: Int
    let seconds: Double?
    let images_per_second: Double?
    /// The devices the sessions ran on, as `bossnet devices --json` shows them (empty for the CPU reference).
    let devices: [DeviceInfo]?
    let predictions: String?

    func print() {
        Swift.print(
            "\(model) at \(input_size)x\(input_size), weights \(weights)\(ema ? " (EMA)" : "") (sha256:\(weights_sha256.prefix(12)))"
                + (shard == Shard.whole.description ? "" : ", shard \(shard)"))
        Swift.print(String(format: "top-1 %.2f%%  top-5 %.2f%%  over %d images", top1 * 100, top5 * 100, images))
        if let seconds, let rate = images_per_second, let devices {
            let names = devices.isEmpty ? "the CPU reference" : devices.map(\.name).joined(separator: ", ")
            Swift.print(
                String(format: "%.1f s, %.2f images/s on %@", seconds, rate, names)
                    + (resumed > 0 ? " (\(resumed) resumed)" : ""))
        }
        if !errors.isEmpty {
            Swift.print("\(errors.count) image\(errors.count == 1 ? "" : "s") could not be read (not counted above):")
            for error in errors { Swift.print("  \(error.path): \(error.reason)") }
        }
    }
}

/// Appends prediction records to a file, one JSON line each, from any task.
final class LineWriter: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()
    init(_ handle: FileHandle) { self.handle = handle }
    func write(_ record: PredictionRecord) throws {
        let line = try PredictionsFile.line(record)
        try lock.withLock { try handle.write(contentsOf: line) }
    }
}

/// Progress on standard error: a bar with images/s, the time left and the running top-1 on a terminal; a plain line
/// every 10 seconds elsewhere.
final class ProgressReporter: @unchecked Sendable {
    private let total: Int
    private let lock = NSLock()
    private var lastLine = Date.distantPast
    private var shown = false
    private var finished = 0

    init(total: Int) { self.total = total }

    /// Images finished so far in this run.
    var done: Int { lock.withLock { finished } }

    func update(_ progress: EvaluationProgress) {
        lock.withLock {
            finished = progress.done
            let rate = String(format: "%.1f img/s", progress.imagesPerSecond)
            let left = progress.secondsLeft.map { "ETA \(clockDuration($0))" } ?? "ETA -"
            let top1 = String(format: "top-1 %.2f%%", progress.accuracy.top1 * 100)
            if standardErrorIsTerminal {
                let width = 30, filled = total > 0 ? width * progress.done / total : width
                let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
                FileHandle.standardError.write(
                    Data("\r\u{1B}[2K[\(bar)] \(progress.done)/\(total)  \(rate)  \(left)  \(top1)".utf8))
                shown = true
            } else if Date().timeIntervalSince(lastLine) >= 10 || progress.done == total {
                lastLine = Date()
                FileHandle.standardError.write(
                    Data("eval: \(progress.done)/\(total) images, \(rate), \(left), \(top1)\n".utf8))
            }
        }
    }

    func finish() { lock.withLock { if shown { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) } } }

}

/// A line on standard error.
func note(_ text: String) { FileHandle.standardError.write(Data("\(text)\n".utf8)) }
