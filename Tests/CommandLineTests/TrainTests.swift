import Checkpoint
import Foundation
import Images
import Testing

/// A train/ and val/ ImageFolder of the evaluation fixtures' photographs (cat, dog, fish; the broken file left out).
private func photoFolder() throws -> URL {
    let root = temporary("train-set")
    for split in ["train", "val"] {
        for label in ["cat", "dog", "fish"] {
            let folder = root.appendingPathComponent("\(split)/\(label)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let source = evaluationFixture("set/\(label)")
            for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where file.hasPrefix(label) {
                try FileManager.default.copyItem(
                    at: source.appendingPathComponent(file), to: folder.appendingPathComponent(file))
            }
        }
    }
    return root
}

@Test(
    "bossnet train: Ctrl-C after an epoch keeps its checkpoint and says how to resume; --resume finishes the run; classify takes it"
)
func trainInterruptAndResume() throws {
    let data = try photoFolder(), output = temporary("train-output")
    defer { for url in [data, output] { try? FileManager.default.removeItem(at: url) } }
    // The authors' defaults (RandAugment, mixup, cutmix, erasing, the EMA, stochastic depth) on a small network at
    // 40 px, three steps an epoch, two epochs.
    let arguments = [
        "train", "--model", "hytra:1-0-_-11,last-stride=1", "--data-path", data.path, "--input-size", "40",
        "--batch-size", "4", "--epochs", "2", "--warmup-epochs", "1", "--no-repeated-aug", "--output_dir", output.path,
    ]
    let process = Process()
    process.executableURL = try bossnet()
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(
        ["BOSSNET_VALIDATION": "1", "BOSSNET_PIPELINE_CACHE": "0"]) { _, new in new }
    let (stdout, stderr) = (Pipe(), Pipe())
    (process.standardOutput, process.standardError) = (stdout, stderr)
    try process.run()
    // Interrupted once the first epoch has reported: the run stops after its next step.
    var seen = Data()
    while !String(decoding: seen, as: UTF8.self).contains("epoch 0:") {
        let chunk = stdout.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        seen += chunk
    }
    process.interrupt()
    seen += stdout.fileHandleForReading.readDataToEndOfFile()
    let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 130, "\(errors)")
    #expect(errors.contains("holds epoch 0") && errors.contains("--resume"), "\(errors)")
    let checkpoint = output.appendingPathComponent("checkpoint.pth").path
    #expect(FileManager.default.fileExists(atPath: checkpoint))

    let resumed = try run(arguments + ["--resume", checkpoint])
    #expect(resumed.status == 0, "\(resumed.error)")
    #expect(resumed.output.contains("epoch 1:") && !resumed.output.contains("epoch 0:"), "\(resumed.output)")
    let log = try String(contentsOf: output.appendingPathComponent("log.txt"), encoding: .utf8)
    #expect(log.split(separator: "\n").count == 2)
    let curves = try RGBImage(contentsOf: output.appendingPathComponent("curves.png"))
    #expect(curves.width == 960 && curves.height == 360)

    // The trained checkpoint runs as the model it names, with its three classes, named by index.
    let classify = try run([
        "classify", "--weights", checkpoint, "--input-size", "40", "--top", "3",
        evaluationFixture("set/cat/cat_1.jpg").path,
    ])
    #expect(classify.status == 0 && classify.output.contains("class "), "\(classify.error)")
}

@Test(
    "bossnet train --devices 0,0 --kernels storage --num-classes 5: two devices side by side, one batch each, the rate scaled by both, a head wider than the folder"
)
func trainDataParallel() throws {
    let data = try photoFolder(), output = temporary("train-parallel")
    defer { for url in [data, output] { try? FileManager.default.removeItem(at: url) } }
    let result = try run(
        [
            "train", "--model", "hytra:1-0-_-11,last-stride=1", "--data-path", data.path, "--input-size", "40",
            "--batch-size", "4", "--epochs", "1", "--warmup-epochs", "0", "--no-repeated-aug", "--devices", "0,0",
            "--kernels", "storage", "--num-classes", "5", "--output_dir", output.path,
        ],
        environment: ProcessInfo.processInfo.environment.merging(
            ["BOSSNET_VALIDATION": "1", "BOSSNET_PIPELINE_CACHE": "0"]) { _, new in new })
    #expect(result.status == 0, "\(result.error)")
    #expect(result.error.contains("1 steps an epoch on 2 devices side by side"), "\(result.error)")
    // 12 images: one step of 4 on each device; the rate scaled by 8 / 512.
    let log = try String(contentsOf: output.appendingPathComponent("log.txt"), encoding: .utf8)
    let record = try JSONSerialization.jsonObject(with: Data(log.utf8)) as? [String: Any]
    let rate = try #require(record?["train_lr"] as? Double, "\(log)")
    #expect(abs(rate - 5e-4 * 8 / 512) <= 1e-12 * rate, "\(log)")
    // A head of 5 classes over the folder's 3 trains (as the authors' IMNET head of 1000 does); one of 2 cannot.
    let state = try TorchCheckpoint.stateDict(at: output.appendingPathComponent("checkpoint.pth"))
    #expect(state.tensors.first { $0.name == "fc.bias" }?.shape == [5])
    let fewer = try run([
        "train", "--data-path", data.path, "--aa", "none", "--num-classes", "2", "--output_dir", output.path,
    ])
    #expect(fewer.status == 1 && fewer.error.contains("--num-classes must be at least the folder's"), "\(fewer.error)")
    let empty = try run(["train", "--data-path", data.path, "--devices", ""])
    #expect(empty.status == 64 && empty.error.contains("--devices takes device numbers"), "\(empty.error)")
}
