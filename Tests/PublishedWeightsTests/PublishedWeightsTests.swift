import Checkpoint
import Foundation
import Models
import PublishedWeights
import TestSupport
import Testing

/// A fixture of this target, or of another (Tests/<target>/Fixtures).
private func fixture(_ name: String, target: String = "PublishedWeightsTests") -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(target).appendingPathComponent("Fixtures").appendingPathComponent(name)
}

/// The stand-in for BossNet-T0's published checkpoint (made by torch.save; binds strictly to bossnet_T0).
private let checkpointBytes = try! Data(contentsOf: fixture("BossNet-T0-80_8.pth"))
private let assetPath = "/v0.1/BossNet-T0-80_8.pth"

/// A loopback server answering `routes`, a fresh cache folder (not yet created) and a cache that downloads into it
/// from the server's v0.1/, and the checkpoint the tests fetch (BossNet-T0's).
private struct Setup {
    let server: LoopbackHTTPServer
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
        "bossnet-weights-\(UUID().uuidString)", isDirectory: true)
    let checkpoint: PublishedCheckpoint

    init(routes: [String: [LoopbackHTTPServer.Behaviour]]) throws {
        server = try LoopbackHTTPServer(routes: routes)
        checkpoint = try PublishedCheckpoint.of(model: "bossnet_T0")
    }

    var cache: WeightsCache { WeightsCache(directory: folder, source: server.url("v0.1/")) }

    /// Creates the cache folder, for a test that places files in it first.
    func createFolder() throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    /// Stops the server and removes the folder.
    func close() {
        server.stop()
        try? FileManager.default.removeItem(at: folder)
    }
}

/// Collects errors from several threads.
private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [String] = []
    func add(_ error: Error) { lock.withLock { errors.append("\(error)") } }
    var all: [String] { lock.withLock { errors } }
}

/// Collects a cache's events.
private final class Events: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [DownloadEvent] = []
    func add(_ event: DownloadEvent) { lock.withLock { events.append(event) } }
    var retries: [Int64] {
        lock.withLock { events.compactMap { if case let .retrying(received, _) = $0 { received } else { nil } } }
    }
    var resumptions: [Int64] {
        lock.withLock { events.compactMap { if case let .started(_, _, from) = $0 { from } else { nil } } }
    }
    var finished: Bool { lock.withLock { events.contains { if case .finished = $0 { true } else { false } } } }
}

private let model = try! Model(name: "bossnet_T0")

@Test(
    "the published checkpoint downloads once (through a redirect, as GitHub serves it), binds, and is then read from the cache"
)
func downloadsOnce() throws {
    let setup = try Setup(routes: [
        assetPath: [.redirect(to: "assets/BossNet-T0-80_8.pth")],
        "/assets/BossNet-T0-80_8.pth": [.serve(checkpointBytes)],
    ])
    defer { setup.close() }
    let server = setup.server
    let cache = setup.cache
    let events = Events()

    let weights = try cache.weights(for: model, progress: events.add)
    let direct = try CheckpointWeights(
        state: TorchCheckpoint.stateDict(at: fixture("BossNet-T0-80_8.pth")), model: model)
    #expect(weights.state.tensors.map(\.values) == direct.state.tensors.map(\.values))
    #expect(try Data(contentsOf: cache.path(of: setup.checkpoint)) == checkpointBytes)
    #expect(
        !FileManager.default.fileExists(
            atPath: cache.partialPath(of: setup.checkpoint).path))
    #expect(events.finished && events.resumptions == [0])
    #expect(server.requests.map(\.path) == [assetPath, "/assets/BossNet-T0-80_8.pth"])

    _ = try cache.weights(for: model)
    #expect(server.requests.count == 2, "a cached checkpoint is never downloaded again")
}

@Test("a transfer cut off midway resumes from where it stopped with a Range request, in the same call")
func resumesInTheSameCall() throws {
    let setup = try Setup(routes: [
        assetPath: [.interrupt(checkpointBytes, afterBytes: 50_000), .serve(checkpointBytes)]
    ])
    defer { setup.close() }
    let (server, folder) = (setup.server, setup.folder)
    let events = Events()
    _ = try setup.cache.weights(for: model, progress: events.add)
    #expect(server.requests.map(\.range) == [nil, "bytes=50000-"])
    #expect(events.retries == [50_000] && events.resumptions == [0, 50_000])
    #expect(try Data(contentsOf: folder.appendingPathComponent("BossNet-T0-80_8.pth")) == checkpointBytes)
}

@Test("a transfer cut off on every attempt keeps what arrived, says so, and the next call resumes from there")
func resumesInALaterCall() throws {
    let setup = try Setup(routes: [
        assetPath: [
            .interrupt(checkpointBytes, afterBytes: 40_000),
            .interrupt(checkpointBytes, afterBytes: 30_000),
        ]
    ])
    defer { setup.close() }
    let server = setup.server
    var cache = setup.cache
    cache.attempts = 2
    let checkpoint = setup.checkpoint
    #expect(
        throws: PublishedWeightsError.interrupted(
            url: checkpoint.url(source: server.url("v0.1/")), received: 70_000,
            expected: Int64(checkpointBytes.count), partialPath: cache.partialPath(of: checkpoint))
    ) {
        _ = try cache.weights(for: model)
    }
    #expect(try Data(contentsOf: cache.partialPath(of: checkpoint)) == checkpointBytes.prefix(70_000))
    #expect(!cache.isCached(checkpoint))

    server.set(assetPath, [.serve(checkpointBytes)])
    _ = try cache.weights(for: model)
    #expect(server.requests.last?.range == "bytes=70000-")
    #expect(try Data(contentsOf: cache.path(of: checkpoint)) == checkpointBytes)
}

@Test("a server that ignores the Range request sends the whole file, which replaces the partial one")
func serverIgnoringRange() throws {
    let setup = try Setup(routes: [assetPath: [.serveIgnoringRange(checkpointBytes)]])
    defer { setup.close() }
    let server = setup.server
    let cache = setup.cache
    let checkpoint = setup.checkpoint
    try setup.createFolder()
    try Data(repeating: 0xAB, count: 1000).write(to: cache.partialPath(of: checkpoint))
    _ = try cache.weights(for: model)
    #expect(server.requests.map(\.range) == ["bytes=1000-"])
    #expect(try Data(contentsOf: cache.path(of: checkpoint)) == checkpointBytes)
}

@Test(
    "a partial file that already holds the whole file is finished with one request; one longer than the server's starts over"
)
func partialFileAtOrPastTheEnd() throws {
    let setup = try Setup(routes: [assetPath: [.serve(checkpointBytes)]])
    defer { setup.close() }
    let server = setup.server
    let cache = setup.cache
    let checkpoint = setup.checkpoint
    try setup.createFolder()

    // Whole: the server answers 416 with its size, which is the file's.
    try checkpointBytes.write(to: cache.partialPath(of: checkpoint))
    _ = try cache.weights(for: model)
    #expect(server.requests.map(\.range) == ["bytes=\(checkpointBytes.count)-"])
    #expect(try Data(contentsOf: cache.path(of: checkpoint)) == checkpointBytes)

    // Longer (the file changed on the server, or another mirror): emptied, and the whole file asked for again.
    try FileManager.default.removeItem(at: cache.path(of: checkpoint))
    try (checkpointBytes + Data(repeating: 7, count: 100)).write(to: cache.partialPath(of: checkpoint))
    _ = try cache.weights(for: model)
    #expect(server.requests.dropFirst().map(\.range) == ["bytes=\(checkpointBytes.count + 100)-", nil])
    #expect(try Data(contentsOf: cache.path(of: checkpoint)) == checkpointBytes)
}

@Test("two callers sharing a cache take turns: one downloads, the other uses its file")
func sharedCacheDownloadsOnce() throws {
    let setup = try Setup(routes: [assetPath: [.serve(checkpointBytes)]])
    defer { setup.close() }
    let cache = setup.cache
    let group = DispatchGroup()
    let failures = Failures()
    for _ in 0..<2 {
        DispatchQueue.global().async(group: group) {
            do { _ = try cache.weights(for: model) } catch { failures.add(error) }
        }
    }
    group.wait()
    #expect(failures.all.isEmpty, "\(failures.all)")
    #expect(setup.server.requests.count == 1, "the second caller waited for the first one's file")
    #expect(try Data(contentsOf: cache.path(of: setup.checkpoint)) == checkpointBytes)
}

@Test("a wrong file (a torch.save archive of another model, a PNG) is refused, deleted and never cached")
func wrongFile() throws {
    let other = try Data(contentsOf: fixture("tensors.pth", target: "CheckpointTests"))
    let png = try Data(contentsOf: fixture("gradient.png", target: "ImagesTests"))
    let setup = try Setup(routes: [assetPath: [.serve(other), .serve(png)]])
    defer { setup.close() }
    let server = setup.server
    let cache = setup.cache
    let checkpoint = setup.checkpoint
    for expected in ["does not fit model bossnet_T0", "not a PyTorch checkpoint"] {
        do {
            _ = try cache.weights(for: model)
            Issue.record("a wrong file was accepted")
        } catch let PublishedWeightsError.verificationFailed(url, name, reason) {
            #expect(url == checkpoint.url(source: server.url("v0.1/")) && name == "bossnet_T0")
            #expect(reason.contains(expected), "\(reason)")
        }
        #expect(
            !cache.isCached(checkpoint)
                && !FileManager.default.fileExists(atPath: cache.partialPath(of: checkpoint).path))
    }
}

@Test("a server error and an unreachable server name the URL and where to place the file by hand")
func serverErrorAndOffline() throws {
    let setup = try Setup(routes: [assetPath: [.status(500)]])
    defer { setup.close() }
    let (server, folder) = (setup.server, setup.folder)
    let checkpoint = setup.checkpoint
    let cache = setup.cache
    let url = checkpoint.url(source: server.url("v0.1/"))
    #expect(throws: PublishedWeightsError.httpStatus(url: url, status: 500, cachePath: cache.path(of: checkpoint))) {
        _ = try cache.weights(for: model)
    }
    #expect(
        throws: PublishedWeightsError.httpStatus(
            url: checkpoint.url(source: server.url("elsewhere/")), status: 404,
            cachePath: cache.path(of: checkpoint))
    ) {
        _ = try WeightsCache(directory: folder, source: server.url("elsewhere/")).weights(for: model)
    }
    #expect(
        !FileManager.default.fileExists(atPath: cache.partialPath(of: checkpoint).path), "no empty partial file is left"
    )

    // A port nothing listens on: the connection is refused, as offline.
    let closed = try LoopbackHTTPServer(routes: [:])
    closed.stop()
    let offline = WeightsCache(directory: folder, source: closed.url("v0.1/"))
    do {
        _ = try offline.weights(for: model)
        Issue.record("an unreachable server gave weights")
    } catch let error as PublishedWeightsError {
        guard case .unreachable = error else { Issue.record("\(error)"); return }
        #expect(error.description.contains(checkpoint.url(source: closed.url("v0.1/")).absoluteString))
        #expect(error.description.contains(offline.path(of: checkpoint).path))
    }
}

@Test(
    "a file placed in the cache by hand is used without a request; a bad one is named; an architecture has no published weights"
)
func placedByHand() throws {
    let setup = try Setup(routes: [:])
    defer { setup.close() }
    let server = setup.server
    let cache = setup.cache
    let checkpoint = setup.checkpoint
    try setup.createFolder()
    try checkpointBytes.write(to: cache.path(of: checkpoint))
    _ = try cache.weights(for: model)
    #expect(server.requests.isEmpty)

    try Data("not a checkpoint".utf8).write(to: cache.path(of: checkpoint))
    do {
        _ = try cache.weights(for: model)
        Issue.record("a bad cached file gave weights")
    } catch let PublishedWeightsError.cachedFileInvalid(path, name, _) {
        #expect(path == cache.path(of: checkpoint) && name == "bossnet_T0")
    }
    #expect(server.requests.isEmpty, "a bad file in the cache is reported, not replaced")

    let architecture = Model(try Architecture.parse("hytra:1-1-11101-000100001"))
    #expect(
        throws: PublishedWeightsError.notPublished(
            model: architecture.name, published: ["bossnet_T0", "bossnet_T0_nose", "bossnet_T1"])
    ) {
        _ = try cache.weights(for: architecture)
    }
}

@Test("the registry names the authors' release assets")
func registry() throws {
    #expect(
        try PublishedCheckpoint.of(model: "bossnet_T1").url().absoluteString
            == "https://github.com/changlin31/BossNAS/releases/download/v0.1/BossNet-T1-81_9.pth")
    #expect(PublishedCheckpoint.all.map(\.model) == ["bossnet_T0", "bossnet_T0_nose", "bossnet_T1"])
}
