// Weights that cannot be mixed up, an offline first run and honest messages, on a tiny architecture (fast in debug).
import Checkpoint
import Foundation
import Images
import Testing

/// A tiny network (one ResConv stage and one ResAtt stage) and another with the same parameter shapes.
private let tiny = "hytra:1-_-0-_,act=relu,se=yes"
private let tinySiLU = "hytra:1-_-0-_,act=silu,se=yes"

/// `bossnet weights synthetic --arch ARCH --output FILE`, returning the file and the digest the tool printed.
private func writeSynthetic(_ arch: String, _ name: String) throws -> (URL, String) {
    let file = temporary(name)
    let result = try run(["weights", "synthetic", "--arch", arch, "--output", file.path])
    #expect(result.status == 0, "\(result.error)")
    #expect(result.error.contains("SYNTHETIC"), "the same warning classify gives")
    let digest = try #require(result.output.components(separatedBy: "sha256:").last?.prefix(12))
    return (file, String(digest))
}

private func json(_ output: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
}

@Test(
    "offline first run: weights synthetic writes a file that classify runs as the model it names, as --weights synthetic"
)
func offlineFirstRun() throws {
    let (file, printed) = try writeSynthetic(tiny, "tiny.safetensors")
    let fromFile = temporary("file.npy"), inMemory = temporary("memory.npy")
    defer { for url in [file, fromFile, inMemory] { try? FileManager.default.removeItem(at: url) } }
    let photo = sharedFixture("ImagesTests", "gradient.png").path
    // No --arch: the file names its model.
    let a = try run([
        "classify", "--weights", file.path, "--input-size", "40", "--json", "--logits", fromFile.path, photo,
    ])
    #expect(a.status == 0, "\(a.error)")
    #expect(a.error.contains("SYNTHETIC"), "a file of synthetic weights still says so")
    let b = try run([
        "classify", "--weights", "synthetic", "--arch", tiny, "--input-size", "40", "--json", "--logits",
        inMemory.path, photo,
    ])
    #expect(b.status == 0, "\(b.error)")
    let (first, second) = (try json(a.output), try json(b.output))
    let digest = try #require(first["weights_sha256"] as? String)
    #expect(digest.hasPrefix(printed), "\(digest) vs \(printed)")
    // Python's hashlib over the file, by WeightsDigest's definition (each tensor in file order, num_batches_tracked
    // aside: its name's bytes, a zero byte, its float32 bytes).
    #expect(digest == "2a271fd70d2cdde719f91f4fd11278ee416a8c5fa31504bd4d7732b9f90c09eb")
    #expect(second["weights_sha256"] as? String == digest, "the same weights, whether from the file or made")
    #expect(first["model"] as? String == second["model"] as? String)
    #expect(try NumPyArray(contentsOf: fromFile).values == NumPyArray(contentsOf: inMemory).values)
    // The device object is compact unless --verbose.
    #expect((first["device"] as? [String: Any])?["extensions"] == nil)
    let devices = try run(["devices", "--json", "--verbose"])
    #expect(devices.output.contains("\"extensions\""))
}

@Test("a checkpoint runs as the model it names; another --model is refused unless forced")
func modelNamedByCheckpoint() throws {
    let (file, _) = try writeSynthetic(tiny, "named.safetensors")
    defer { try? FileManager.default.removeItem(at: file) }
    let photo = sharedFixture("ImagesTests", "gradient.png").path
    let other = try run(["classify", "--weights", file.path, "--arch", tinySiLU, "--input-size", "40", photo])
    #expect(other.status == 1)
    #expect(other.error.contains("--force-model") && other.error.contains("act=relu"), "\(other.error)")
    let forced = try run([
        "classify", "--weights", file.path, "--arch", tinySiLU, "--force-model", "--input-size", "40", "--json", photo,
    ])
    #expect(forced.status == 0, "\(forced.error)")
    #expect(try json(forced.output)["model"] as? String == "hytra:1-_-0-_,act=silu,se=yes,last-stride=2")
}

@Test("resume and merge refuse predictions made with other weights under the same file name, naming both")
func predictionsRefuseOtherWeights() throws {
    let (file, _) = try writeSynthetic(tiny, "weights.safetensors")
    let shard0 = temporary("shard0.jsonl"), shard1 = temporary("shard1.jsonl")
    defer { for url in [file, shard0, shard1] { try? FileManager.default.removeItem(at: url) } }
    let set = evaluationFixture("set").path
    func eval(_ extra: [String]) throws -> (status: Int32, output: String, error: String) {
        try run(["eval", "--weights", file.path, "--input-size", "40", "--batch", "4"] + extra + [set])
    }
    #expect(try eval(["--shard", "0/2", "--predictions", shard0.path]).status == 0)

    // The same file name, one value changed: other weights.
    let state = try WeightsFile.read(file)
    let changed = try StateDict(
        state.tensors.map { tensor in
            tensor.name != "fc.bias"
                ? tensor
                : NamedTensor(name: tensor.name, shape: tensor.shape, values: tensor.values.map { $0 + 0.5 })
        }, metadata: state.metadata)
    try SafeTensors.write(changed, to: file)

    let resumed = try eval(["--shard", "0/2", "--predictions", shard0.path])
    #expect(resumed.status == 1)
    #expect(resumed.error.contains("weights: sha256") && resumed.error.contains(shard0.path), "\(resumed.error)")
    #expect(try eval(["--shard", "1/2", "--predictions", shard1.path]).status == 0)
    let merged = try run(["eval", "merge", shard0.path, shard1.path])
    #expect(merged.status == 1)
    #expect(
        merged.error.contains("weights: sha256") && merged.error.contains(shard0.path)
            && merged.error.contains(shard1.path), "\(merged.error)")
}

@Test("outputs are checked before any work; an empty set, a folder to classify, a device twice are errors")
func honestMessages() throws {
    let photo = sharedFixture("ImagesTests", "gradient.png").path
    let start = Date()
    let logits = try run(["classify", "--arch", tiny, "--input-size", "40", "--logits", "/proc/nope.npy", photo])
    #expect(logits.status == 64 && logits.error.contains("cannot create files in /proc"), "\(logits.error)")
    let predictions = try run([
        "eval", "--arch", tiny, "--weights", "synthetic", "--input-size", "40", "--predictions", "/proc/x.jsonl",
        evaluationFixture("set").path,
    ])
    #expect(predictions.status == 64 && predictions.error.contains("cannot create files in /proc"))
    #expect(Date().timeIntervalSince(start) < 30, "refused before any work")

    let folder = try run(["classify", "--arch", tiny, evaluationFixture("set").path])
    #expect(folder.status == 64 && folder.error.contains("bossnet eval"), "\(folder.error)")
    let twice = try run(["eval", "--weights", "synthetic", "--devices", "0,0", evaluationFixture("set").path])
    #expect(twice.status == 64 && twice.error.contains("twice"), "\(twice.error)")

    let empty = temporary("empty-set")
    defer { try? FileManager.default.removeItem(at: empty) }
    for name in ["a", "b"] {
        try FileManager.default.createDirectory(
            at: empty.appendingPathComponent(name), withIntermediateDirectories: true)
    }
    let none = try run(["eval", "--arch", tiny, "--weights", "synthetic", "--input-size", "40", empty.path])
    #expect(none.status == 1 && none.error.contains("holds no images"), "\(none.error)")
    #expect(!none.output.contains("top-1") && !none.error.contains("SYNTHETIC"), "refused before any work")

    let help = try run(["eval", "--help"])
    #expect(help.status == 0 && help.output.contains("--predictions") && help.output.contains("--shard"))
}
