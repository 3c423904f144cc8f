import Checkpoint
import Foundation
import Images
import Kernels
import Models
import Testing

/// A fixture of another test target (Tests/ModelsTests/Fixtures or Tests/ImagesTests/Fixtures).
func sharedFixture(_ target: String, _ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(target).appendingPathComponent("Fixtures").appendingPathComponent(name)
}

/// BossNet-T0's calibrated synthetic weights under the authors' state-dict names, as a safetensors checkpoint: written
/// once per test run (150 MB), for every test that needs a --weights file.
func syntheticCheckpoint() throws -> URL {
    try SyntheticCheckpoint.shared.url()
}

final class SyntheticCheckpoint: @unchecked Sendable {
    static let shared = SyntheticCheckpoint()
    private let lock = NSLock()
    private var written: URL?

    func url() throws -> URL {
        try lock.withLock {
            if let written { return written }
            let model = try Model(name: "bossnet_T0")
            let url = Self.path
            try SafeTensors.write(StateDict(model: model, weights: SyntheticWeights(calibratedFor: model)), to: url)
            written = url
            // A static instance is never deinitialised: the file goes when the process exits (each run left 150 MB in
            // the temporary directory before).
            atexit { try? FileManager.default.removeItem(at: SyntheticCheckpoint.path) }
            return url
        }
    }

    /// This process's file.
    private static var path: URL {
        FileManager.default.temporaryDirectory.appendingPathComponent(
            "bossnet-cli-t0-synthetic-\(ProcessInfo.processInfo.processIdentifier).safetensors")
    }
}

@Test(
    "classify --weights on a checkpoint in the authors' layout gives the authors' model's logits, .npy and PNG (64x64)")
func classifyCheckpointMatchesAuthors() throws {
    let checkpoint = try syntheticCheckpoint(), logits = temporary("logits.npy")
    defer { try? FileManager.default.removeItem(at: logits) }
    let result = try run([
        "classify", "--model", "bossnet_T0", "--weights", checkpoint.path, "--input-size", "64",
        "--logits", logits.path, sharedFixture("ModelsTests", "input_64.npy").path,
        sharedFixture("ImagesTests", "gradient.png").path,
    ])
    #expect(result.status == 0, "\(result.error)")
    #expect(!result.error.contains("SYNTHETIC"))
    let values = try NumPyArray(contentsOf: logits).values
    #expect(values.count == 2000)
    let npy = try NumPyArray(contentsOf: sharedFixture("ModelsTests", "bossnet_T0_logits_64.npy")).values
    let png = try NumPyArray(contentsOf: sharedFixture("ModelsTests", "bossnet_T0_png_logits_64.npy")).values
    let fromNPY = Comparison(Array(values.prefix(1000)), npy), fromPNG = Comparison(Array(values.dropFirst(1000)), png)
    #expect(fromNPY.relativeL2 < 1e-4, "\(fromNPY)")
    #expect(fromPNG.relativeL2 < 1e-4, "\(fromPNG)")
}
