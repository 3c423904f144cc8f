import ArgumentParser
import Checkpoint
import Foundation
import Models
import PublishedWeights

/// `--weights FILE|published` and `--ema`, shared by the commands that load weights.
struct WeightsSelection: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Weights: a .pth checkpoint (torch.save zip format), a .safetensors file, or 'published'.",
            discussion:
                "'published' takes the authors' checkpoint of --model from the cache, downloading it there on first use (see `bossnet weights list`)."
        ))
    var weights: String?

    @Flag(help: "Use the checkpoint's EMA weights ('model_ema').")
    var ema = false

    /// Whether the weights are the published checkpoint of the model.
    var isPublished: Bool { weights == "published" }

    /// Checks what can be checked before any work.
    func validate(model: Model) throws {
        if ema && weights == nil {
            throw ValidationError("--ema chooses the EMA weights of a --weights checkpoint; give --weights too.")
        }
        if isPublished {
            do { _ = try PublishedCheckpoint.of(model: model.name) } catch {
                throw ValidationError("--weights published: \(error)")
            }
        } else if let weights, !FileManager.default.fileExists(atPath: weights) {
            throw ValidationError(
                "--weights \(weights) does not exist. Give a .pth or .safetensors file, or 'published' for the authors' checkpoint."
            )
        }
    }

    /// The weights bound to `model`, or nil when none were given; 'published' downloads into the cache on first use.
    func load(for model: Model) throws -> CheckpointWeights? {
        guard let weights else { return nil }
        guard isPublished else {
            return try CheckpointWeights(state: WeightsFile.read(URL(fileURLWithPath: weights), ema: ema), model: model)
        }
        return try Environment.weightsCache().weights(for: model, ema: ema, progress: DownloadReporter().report)
    }

    /// What the weights are called in outputs: the file's name (the published file's for 'published').
    func label(for model: Model) -> String? {
        guard let weights else { return nil }
        guard isPublished else { return URL(fileURLWithPath: weights).lastPathComponent }
        return (try? PublishedCheckpoint.of(model: model.name).file) ?? weights
    }
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
        subcommands: [List.self, Fetch.self],
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
            do {
                let cache = try Environment.weightsCache()
                for checkpoint in PublishedCheckpoint.all where model.isEmpty || model.contains(checkpoint.model) {
                    if cache.isCached(checkpoint) {
                        print("\(checkpoint.model): cached at \(cache.path(of: checkpoint).path)")
                        continue
                    }
                    let path = try cache.download(
                        checkpoint, model: try Model(name: checkpoint.model), progress: DownloadReporter().report)
                    print("\(checkpoint.model): downloaded to \(path.path)")
                }
            } catch let error as ExitCode { throw error } catch { throw report(error) }
        }
    }
}
