import Foundation
import Images
import Kernels
import TestSupport
import Testing

@Test(
    "classify --weights published downloads the checkpoint from the (loopback) release once, then reads the cache; weights list says so"
)
func classifyPublishedWeights() throws {
    let checkpoint = try Data(contentsOf: sharedFixture("PublishedWeightsTests", "BossNet-T0-80_8.pth"))
    let server = try LoopbackHTTPServer(routes: [
        "/v0.1/BossNet-T0-80_8.pth": [.interrupt(checkpoint, afterBytes: 100_000), .serve(checkpoint)]
    ])
    defer { server.stop() }
    let cache = temporary("weights")
    defer { try? FileManager.default.removeItem(at: cache) }
    var environment = ProcessInfo.processInfo.environment
    environment["BOSSNET_WEIGHTS_CACHE"] = cache.path
    environment["BOSSNET_WEIGHTS_URL"] = server.url("v0.1").absoluteString  // no trailing slash: the tool adds it

    let before = try run(["weights", "list", "--json"], environment: environment)
    #expect(before.status == 0, "\(before.error)")
    let listed = try #require(try JSONSerialization.jsonObject(with: Data(before.output.utf8)) as? [String: Any])
    let rows = try #require(listed["checkpoints"] as? [[String: Any]])
    #expect(rows.map { $0["model"] as? String } == ["bossnet_T0", "bossnet_T0_nose", "bossnet_T1"])
    #expect(rows.first?["url"] as? String == server.url("v0.1/BossNet-T0-80_8.pth").absoluteString)
    #expect(rows.first?["path"] as? String == cache.appendingPathComponent("BossNet-T0-80_8.pth").path)
    #expect(rows.allSatisfy { $0["cached"] as? Bool == false })

    // The first run downloads (the transfer is cut once and resumed), checks and uses the checkpoint: the authors'
    // model's logits under these weights.
    let logits = temporary("published.npy")
    defer { try? FileManager.default.removeItem(at: logits) }
    let arguments = [
        "classify", "--model", "bossnet_T0", "--weights", "published", "--input-size", "64", "--json",
        "--logits", logits.path, sharedFixture("ModelsTests", "input_64.npy").path,
    ]
    let first = try run(arguments, environment: environment)
    #expect(first.status == 0, "\(first.error)")
    #expect(
        first.error.contains("downloading") && first.error.contains("trying again")
            && !first.error.contains("SYNTHETIC"), "\(first.error)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(first.output.utf8)) as? [String: Any])
    #expect(json["weights"] as? String == "BossNet-T0-80_8.pth" && json["synthetic_weights"] as? Bool == false)
    let expected = try NumPyArray(contentsOf: sharedFixture("PublishedWeightsTests", "published_T0_logits_64.npy"))
        .values
    let comparison = Comparison(try NumPyArray(contentsOf: logits).values, expected)
    #expect(comparison.relativeL2 < 1e-4, "\(comparison)")
    #expect(server.requests.map(\.range) == [nil, "bytes=100000-"])

    // The second reads the cache: no request.
    let second = try run(arguments, environment: environment)
    #expect(second.status == 0 && !second.error.contains("downloading"), "\(second.error)")
    #expect(server.requests.count == 2)
    let after = try run(["weights", "list"], environment: environment)
    #expect(after.output.contains("bossnet_T0       cached"), "\(after.output)")

    // Offline (nothing listens): the error names the URL and where to place the file.
    server.stop()
    environment["BOSSNET_WEIGHTS_CACHE"] = cache.appendingPathComponent("empty").path
    let offline = try run(
        [
            "classify", "--model", "bossnet_T1", "--weights", "published", "--input-size", "64",
            sharedFixture("ModelsTests", "input_64.npy").path,
        ], environment: environment)
    #expect(offline.status == 1)
    #expect(offline.error.contains(server.url("v0.1/BossNet-T1-81_9.pth").absoluteString), "\(offline.error)")
    #expect(offline.error.contains(cache.appendingPathComponent("empty/BossNet-T1-81_9.pth").path), "\(offline.error)")

    // An architecture has no published checkpoint: a usage error before any work.
    let architecture = try run(
        [
            "classify", "--arch", "hytra:1-1-11101-000100001", "--weights", "published",
            sharedFixture("ModelsTests", "input_64.npy").path,
        ], environment: environment)
    #expect(
        architecture.status == 64 && architecture.error.contains("no published checkpoint"), "\(architecture.error)")
}
