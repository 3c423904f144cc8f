import Checkpoint
import Foundation
import Models

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a ``WeightsCache`` is doing, for a progress display.
public enum DownloadEvent: Sendable {
    /// A download (or its resumption from `resumingFrom` bytes) has begun.
    case started(url: URL, destination: URL, resumingFrom: Int64)
    /// Bytes arrived.
    case progress(DownloadProgress)
    /// The transfer stopped early after `received` bytes; it is tried again from there.
    case retrying(received: Int64, attempt: Int)
    /// The file is complete and being checked (read as a torch.save archive and bound to the model).
    case verifying
    /// The checked file is in the cache.
    case finished(path: URL, bytes: Int64)
}

/// A folder of published checkpoints, each downloaded once from the authors' release (or a mirror), checked, and
/// then used from the folder without downloading again: the same idea as timm's and torch.hub's caches.
///
/// ```swift
/// let cache = WeightsCache(directory: URL(fileURLWithPath: "/var/cache/bossnet/weights"))
/// let weights = try cache.weights(for: try Model(name: "bossnet_T0"))   // downloads on first use only
/// ```
///
/// A download goes to `<file>.part` beside its final place, resumes from there after an interruption (in the same
/// call up to ``attempts`` times, and in a later call), and is renamed into place only once it reads as a torch.save
/// archive that binds strictly to the model. A file placed in the folder by hand, under the published name, is used
/// as it is. Several processes sharing the folder (a sharded evaluation on a shared file system) take turns: one
/// downloads while the others wait for its file.
public struct WeightsCache: Sendable {
    /// The folder holding the checkpoints, under their published file names.
    public let directory: URL
    /// The folder URL the files are downloaded from: the authors' release, or a mirror holding the same file names.
    public let source: URL
    /// How many times one call tries a transfer that stops early before giving up (keeping what arrived).
    public var attempts: Int = 3
    /// Seconds without data after which an attempt counts as stopped.
    public var timeout: TimeInterval = 60

    /// A cache in `directory` (created when first needed), downloading from `source`.
    public init(directory: URL, source: URL = PublishedCheckpoint.releaseURL) {
        self.directory = directory
        self.source = source
    }

    /// Where `checkpoint` lives in the cache.
    public func path(of checkpoint: PublishedCheckpoint) -> URL {
        directory.appendingPathComponent(checkpoint.file, isDirectory: false)
    }

    /// Where an unfinished download of `checkpoint` is kept until it completes.
    public func partialPath(of checkpoint: PublishedCheckpoint) -> URL {
        directory.appendingPathComponent(checkpoint.file + ".part", isDirectory: false)
    }

    /// Whether `checkpoint` is in the cache (it is then used without downloading).
    public func isCached(_ checkpoint: PublishedCheckpoint) -> Bool {
        FileManager.default.fileExists(atPath: path(of: checkpoint).path)
    }

    /// The published weights of `model` (`model_ema` with `ema`), bound to it: from the cache, or downloaded into it
    /// first. Blocks while it downloads; `progress` hears how it goes.
    public func weights(
        for model: Model, ema: Bool = false,
        progress: @escaping @Sendable (DownloadEvent) -> Void = { _ in }
    ) throws -> CheckpointWeights {
        let checkpoint = try PublishedCheckpoint.of(model: model.name)
        let file = path(of: checkpoint)
        // A fresh download was read and bound to check it: those weights serve, unless the EMA ones are asked for.
        if !isCached(checkpoint), let verified = try fetch(checkpoint, model: model, progress: progress).weights, !ema {
            return verified
        }
        do {
            return try CheckpointWeights(state: TorchCheckpoint.stateDict(at: file, ema: ema), model: model)
        } catch CheckpointError.noStateDict(let reason) {
            // A checkpoint without `model_ema` is not a bad file: say so as it is.
            throw CheckpointError.noStateDict(reason)
        } catch {
            throw PublishedWeightsError.cachedFileInvalid(path: file, model: model.name, reason: "\(error)")
        }
    }

    /// Downloads `checkpoint` into the cache unless it is there, checking that it binds to `model` before it takes
    /// its place. Returns its path.
    @discardableResult
    public func download(
        _ checkpoint: PublishedCheckpoint, model: Model,
        progress: @escaping @Sendable (DownloadEvent) -> Void = { _ in }
    ) throws -> URL {
        try fetch(checkpoint, model: model, progress: progress).path
    }

    /// ``download(_:model:progress:)``, also giving the weights it bound to check the file (nil when another process
    /// had already put the file in place).
    func fetch(
        _ checkpoint: PublishedCheckpoint, model: Model, progress: @escaping @Sendable (DownloadEvent) -> Void
    ) throws -> (path: URL, weights: CheckpointWeights?) {
        let file = path(of: checkpoint), partial = partialPath(of: checkpoint), url = checkpoint.url(source: source)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw PublishedWeightsError.cacheUnwritable(path: directory, reason: Self.describe(error))
        }
        let lock = try FileLock(directory.appendingPathComponent(checkpoint.file + ".lock", isDirectory: false))
        defer { lock.unlock() }
        if isCached(checkpoint) { return (file, nil) }  // another process finished it while this one waited

        var attempt = 1
        var bytes: Int64 = 0
        while true {
            let resumingFrom = Self.size(of: partial)
            progress(.started(url: url, destination: file, resumingFrom: resumingFrom))
            let outcome: HTTPDownload.Outcome
            do {
                outcome = try HTTPDownload.attempt(url, into: partial, timeout: timeout) { progress(.progress($0)) }
            } catch {
                // Nothing to resume from: leave no empty partial file behind.
                if Self.size(of: partial) == 0 { try? FileManager.default.removeItem(at: partial) }
                switch error {
                case let .status(status):
                    throw PublishedWeightsError.httpStatus(url: url, status: status, cachePath: file)
                case let .unreachable(reason):
                    throw PublishedWeightsError.unreachable(url: url, cachePath: file, reason: reason)
                case let .file(reason): throw PublishedWeightsError.cacheUnwritable(path: partial, reason: reason)
                }
            }
            guard case let .interrupted(received, expected) = outcome else {
                if case let .complete(size) = outcome { bytes = size }
                break
            }
            guard attempt < attempts else {
                throw PublishedWeightsError.interrupted(
                    url: url, received: received, expected: expected, partialPath: partial)
            }
            attempt += 1
            progress(.retrying(received: received, attempt: attempt))
        }

        progress(.verifying)
        let weights: CheckpointWeights
        do {
            weights = try CheckpointWeights(state: TorchCheckpoint.stateDict(at: partial), model: model)
        } catch {
            try? FileManager.default.removeItem(at: partial)
            throw PublishedWeightsError.verificationFailed(url: url, model: model.name, reason: "\(error)")
        }
        do {
            try FileManager.default.moveItem(at: partial, to: file)
        } catch {
            throw PublishedWeightsError.cacheUnwritable(path: file, reason: Self.describe(error))
        }
        progress(.finished(path: file, bytes: bytes))
        return (file, weights)
    }

    /// The size of `checkpoint`'s file in the cache, or nil when it is not there.
    public func cachedSize(of checkpoint: PublishedCheckpoint) -> Int64? {
        isCached(checkpoint) ? Self.size(of: path(of: checkpoint)) : nil
    }

    static func size(of url: URL) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.int64Value ?? 0
    }

    static func describe(_ error: Error) -> String {
        let ns = error as NSError
        if let posix = ns.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(posix.code)))
        }
        return ns.localizedDescription
    }
}

/// An exclusive advisory lock on a file (flock), held until ``unlock()``: processes sharing a cache take turns.
final class FileLock {
    private var descriptor: Int32

    init(_ url: URL) throws {
        descriptor = open(url.path, O_RDWR | O_CREAT, 0o644)
        guard descriptor >= 0 else {
            throw PublishedWeightsError.cacheUnwritable(path: url, reason: String(cString: strerror(errno)))
        }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                // A file system without locks: go on unlocked rather than fail (one process per cache is the usual case).
                break
            }
        }
    }

    func unlock() {
        guard descriptor >= 0 else { return }
        _ = flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { unlock() }
}
