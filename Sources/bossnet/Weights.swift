import ArgumentParser
import Checkpoint
import Foundation
import Models
import PublishedWeights

/// `--weights FILE|published|synthetic`, `--ema` and `--force-model`, shared by the commands that load weights.
struct WeightsSelection: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Weights: a .pth checkpoint (torch.save zip format), a .safetensors file, 'published' or 'synthetic'.",
            discussion: """
                'published' takes the authors' checkpoint of --model from the cache, downloading it there on first \
                use (see `bossnet weights list`). 'synthetic' makes calibrated synthetic weights (no file, no \
                network; the classes mean nothing), as `bossnet weights synthetic` writes them.
                """))
    var weights: String?

    @Flag(help: "Use the checkpoint's EMA weights ('model_ema').")
    var ema = false

    @Flag(help: "Run the weights as --model/--arch even where the checkpoint names another model.")
    var forceModel = false

    /// Whether the weights are the published checkpoint of the model.
    var isPublished: Bool { weights == "published" }

    /// Whether the weights are synthetic: asked for, or (where a command allows it) no --weights at all.
    var isSynthetic: Bool { weights == nil || weights == "synthetic" }

    /// Checks what can be checked before any work; `requested` is the model given with --model or --arch.
    func validate(requested: Model?) throws {
        if ema && isSynthetic {
            throw ValidationError("--ema chooses the EMA weights of a --weights checkpoint; give --weights FILE too.")
        }
        if isPublished {
            let name = requested?.name ?? WeightsSelection.defaultModel
            do { _ = try PublishedCheckpoint.of(model: name) } catch {
                throw ValidationError("--weights published: \(error)")
            }
        } else if let weights, !isSynthetic {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: weights, isDirectory: &isDirectory) else {
                throw ValidationError(
                    "--weights \(weights) does not exist. Give a .pth or .safetensors file, 'published' for the authors' checkpoint, or 'synthetic'."
                )
            }
            guard !isDirectory.boolValue else {
                throw ValidationError("--weights \(weights) is a folder; give a .pth or .safetensors file.")
            }
        }
    }

    /// The model run when neither --model nor --arch is given and the weights name none.
    static let defaultModel = "bossnet_T0"

    /// The weights and the model they are for (see ``CheckpointWeights/bind(_:requested:allowOtherModel:)``);
    /// synthetic ones come with a warning on standard error, 'published' downloads into the cache on first use.
    func load(requested: Model?) throws -> LoadedWeights {
        if isSynthetic {
            let model = try requested ?? Model(name: Self.defaultModel)
            warnSynthetic()
            let state = try StateDict(model: model, weights: SyntheticWeights(calibratedFor: model))
            return LoadedWeights(model: model, weights: try CheckpointWeights(state: state, model: model), label: nil)
        }
        if isPublished {
            let model = try requested ?? Model(name: Self.defaultModel)
            let loaded = try Environment.weightsCache().weights(
                for: model, ema: ema, progress: DownloadReporter().report)
            if !forceModel { try CheckpointWeights.checkModel(of: loaded.state, is: model) }
            return LoadedWeights(
                model: model, weights: loaded, label: try PublishedCheckpoint.of(model: model.name).file)
        }
        let path = weights ?? ""
        let state = try WeightsFile.read(URL(fileURLWithPath: path), ema: ema)
        let (model, bound) = try CheckpointWeights.bind(state, requested: requested, allowOtherModel: forceModel)
        if state.metadata[syntheticKey] == "true" { warnSynthetic() }
        return LoadedWeights(model: model, weights: bound, label: path)
    }
}

/// Weights bound to the model they run as.
struct LoadedWeights {
    let model: Model
    let weights: CheckpointWeights
    /// What outputs call them: the path given, or the published file's name; nil for synthetic weights.
    let label: String?

    var isSynthetic: Bool { label == nil }
    var digest: WeightsDigest { weights.digest }
}

/// The metadata key `bossnet weights synthetic` sets to "true" in the files it writes.
let syntheticKey = "bossnet.synthetic"

/// The warning every command gives before it runs synthetic weights.
func warnSynthetic() {
    note(
        """
        WARNING: the weights are SYNTHETIC: the classes they give mean nothing. For real predictions pass
                 --weights published (the authors' checkpoint, downloaded once) or a checkpoint file.
        """)
}

/// Shows a download on standard error: where from and to, a progress bar on a terminal, and the result.
final class DownloadReporter: Sendable {
    func report(_ event: DownloadEvent) {
        switch event {
        case let .started(url, destination, resumingFrom):
            note(
                resumingFrom > 0
                    ? "resuming \(url.absoluteString) at \(megabytes(resumingFrom))"
                    : "downloading \(url.absoluteString)")
            note("  into \(destination.path)")
        case let .progress(p):
            let fraction = p.total.map { Double(p.received) / Double(max($0, 1)) }
            let bar =
                fraction.map { f in
                    let filled = Int((min(max(f, 0), 1) * 30).rounded(.down))
                    return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
                        + String(format: "] %3.0f%% ", f * 100)
                } ?? ""
            progress(
                "\(bar)\(megabytes(p.received))\(p.total.map { " of \(megabytes($0))" } ?? "")  \(megabytes(Int64(p.bytesPerSecond)))/s"
            )
        case let .retrying(received, attempt):
            progressDone()
            note("the transfer stopped at \(megabytes(received)); trying again (attempt \(attempt))")
        case .verifying:
            progressDone()
            note("checking the checkpoint (a torch.save archive that binds to the model)")
        case let .finished(path, bytes):
            note("saved \(path.path) (\(megabytes(bytes)))")
        }
    }

    private func megabytes(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}

struct Weights: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The authors' published checkpoints: where they come from and whether they are in the cache.",
        discussion: """
            `--weights published` (classify, eval) downloads a model's checkpoint into the cache on first use, resuming \
            an interrupted download, and checks it before use; later runs read it from the cache. The cache is \
            BOSSNET_WEIGHTS_CACHE, else $XDG_CACHE_HOME/bossnet/weights, else ~/.cache/bossnet/weights; a file \
            placed there by hand under its published name is used as it is. BOSSNET_WEIGHTS_URL names a mirror \
            (a folder URL holding the same file names) instead of the authors' release.
            """,
        subcommands: [List.self, Fetch.self, Synthetic.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List each model's checkpoint: URL, cache path, whether it is cached.")

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() throws {
            do {
                let cache = try Environment.weightsCache()
                struct Row: Encodable {
                    let model: String, file: String, url: String, path: String, cached: Bool, bytes: Int64?,
                        top1: Double, top5: Double
                }
                let rows = PublishedCheckpoint.all.map { checkpoint in
                    let bytes = cache.cachedSize(of: checkpoint)
                    return Row(
                        model: checkpoint.model, file: checkpoint.file,
                        url: checkpoint.url(source: cache.source).absoluteString,
                        path: cache.path(of: checkpoint).path, cached: bytes != nil, bytes: bytes,
                        top1: checkpoint.top1, top5: checkpoint.top5)
                }
                if json {
                    struct Output: Encodable { let cache: String; let checkpoints: [Row] }
                    try printJSON(Output(cache: cache.directory.path, checkpoints: rows))
                    return
                }
                print("cache: \(cache.directory.path)")
                for row in rows {
                    print(
                        "\(row.model.padding(toLength: 16, withPad: " ", startingAt: 0)) \(row.cached ? "cached    " : "not cached") top-1 \(row.top1)%  \(row.url)"
                    )
                }
            } catch let error as ExitCode { throw error } catch { throw report(error) }
        }
    }

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download checkpoints into the cache ahead of use (on a shared cache, once for a whole cluster).")

        @Option(parsing: .upToNextOption, help: "The models whose checkpoints to fetch (default: all).")
        var model: [String] = []

        func validate() throws {
            for name in model {
                do { _ = try PublishedCheckpoint.of(model: name) } catch { throw ValidationError("--model: \(error)") }
            }
        }

        func run() throws {
            let cache: WeightsCache
            do { cache = try Environment.weightsCache() } catch { throw report(error) }
            var failures: [String] = []
            for checkpoint in PublishedCheckpoint.all where model.isEmpty || model.contains(checkpoint.model) {
                if cache.isCached(checkpoint) {
                    print("\(checkpoint.model): cached at \(cache.path(of: checkpoint).path)")
                    continue
                }
                do {
                    let path = try cache.download(
                        checkpoint, model: try Model(name: checkpoint.model), progress: DownloadReporter().report)
                    print("\(checkpoint.model): downloaded to \(path.path)")
                } catch {
                    progressDone()
                    print("\(checkpoint.model): FAILED: \(error)")
                    failures.append(checkpoint.model)
                }
            }
            if !failures.isEmpty {
                note(
                    "error: \(failures.count) checkpoint\(failures.count == 1 ? "" : "s") could not be fetched (\(failures.joined(separator: ", "))); run the command again to resume, or set BOSSNET_WEIGHTS_URL to a mirror."
                )
                throw ExitCode(1)
            }
        }
    }

    struct Synthetic: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write calibrated synthetic weights as a checkpoint, to try every command with no network.",
            discussion: """
                The weights are the engine's deterministic synthetic weights (the same on every machine), calibrated \
                so that activations stay near unit scale; they classify nothing. The file is float32 safetensors \
                under the authors' state-dict names and names its model, so `classify --weights FILE` and `eval \
                --weights FILE` run it as that model. `--weights synthetic` makes the same weights without a file.
                """)

        @OptionGroup var modelSelection: ModelSelection

        @Option(help: "The .safetensors file to write.")
        var output: String

        func validate() throws {
            try checkOutput(output, option: "--output", kind: .safetensors, inputs: [])
        }

        func run() throws {
            do {
                let model = try modelSelection.resolve()
                warnSynthetic()
                let made = try StateDict(model: model, weights: SyntheticWeights(calibratedFor: model))
                let state = try StateDict(made.tensors, metadata: made.metadata.merging([syntheticKey: "true"]) { $1 })
                let digest = try CheckpointWeights(state: state, model: model).digest
                try writing(output) { try SafeTensors.write(state, to: URL(fileURLWithPath: output)) }
                print("wrote synthetic weights for \(model.name) to \(output) (\(state.count) tensors, \(digest))")
            } catch let error as ExitCode { throw error } catch { throw report(error) }
        }
    }
}
