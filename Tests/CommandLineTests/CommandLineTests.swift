import Foundation
import Images
import Testing

/// The `bossnet` executable SwiftPM built next to the test bundle.
func bossnet() throws -> URL {
    var folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = folder.appendingPathComponent("bossnet")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        folder = folder.deletingLastPathComponent()
    }
    throw CommandFailure("bossnet was not built next to the tests (\(CommandLine.arguments[0]))")
}

struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs bossnet with the validation layer on and returns its exit status, standard output and standard error.
func run(_ arguments: [String], environment base: [String: String] = ProcessInfo.processInfo.environment) throws
    -> (status: Int32, output: String, error: String)
{
    let process = Process()
    process.executableURL = try bossnet()
    process.arguments = arguments
    var environment = base
    environment["BOSSNET_VALIDATION"] = "1"
    environment["BOSSNET_PIPELINE_CACHE"] = "0"
    process.environment = environment
    let output = Pipe(), error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

func temporary(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("bossnet-cli-\(UUID().uuidString)-\(name)")
}

@Test("bossnet info reproduces the published figures, as JSON")
func infoCommand() throws {
    let result = try run(["info", "--model", "bossnet_T1", "--input-size", "256", "--json"])
    #expect(result.status == 0, "\(result.error)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
    #expect(json["parameters"] as? Int == 38_415_960)
    #expect(json["input_size"] as? Int == 256)
    #expect(abs(Double(json["madds"] as? Int ?? 0) / 1e9 - 10.51) < 0.005)
    let text = try run(["info", "--model", "bossnet_T1", "--input-size", "256"])
    #expect(text.output.contains("10.51 G MAdds"))
}

@Test("bossnet devices --json lists a device; a bad option is a usage error")
func devicesCommand() throws {
    let result = try run(["devices", "--json"])
    #expect(result.status == 0, "\(result.error)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
    #expect((json["devices"] as? [Any])?.isEmpty == false)
    #expect(try run(["info", "--input-size", "31"]).status == 64)
}

/// Three images through batches of two (the second padded) give the logits each image gets alone on the CPU.
@Test("bossnet classify batches, pads, writes logits and agrees with the CPU reference")
func classifyCommand() throws {
    var values: [Float] = []
    for index in 0..<(3 * 3 * 32 * 32) { values.append(Float(sin(Double(index) * 0.01)) * 1.5) }
    let input = temporary("in.npy"), logits = temporary("logits.npy"), reference = temporary("reference.npy")
    defer { for url in [input, logits, reference] { try? FileManager.default.removeItem(at: url) } }
    try NumPyArray(shape: [3, 3, 32, 32], values: values).write(to: input)
    let arch = "hytra:1-_-0-_,act=relu,se=yes"
    // --kernels right before the input: it takes one value, so the input stays an input.
    let device = try run([
        "classify", "--arch", arch, "--input-size", "32", "--batch", "2", "--top", "3", "--json",
        "--logits", logits.path, "--kernels", "tiled", input.path,
    ])
    #expect(device.status == 0, "\(device.error)")
    #expect(device.error.contains("SYNTHETIC"))
    let json = try #require(try JSONSerialization.jsonObject(with: Data(device.output.utf8)) as? [String: Any])
    let results = try #require(json["results"] as? [[String: Any]])
    #expect(results.count == 3)
    #expect((results[0]["top"] as? [Any])?.count == 3)
    #expect(json["synthetic_weights"] as? Bool == true)

    let cpu = try run([
        "classify", "--arch", arch, "--input-size", "32", "--batch", "1", "--cpu", "--logits", reference.path,
        input.path,
    ])
    #expect(cpu.status == 0, "\(cpu.error)")
    let a = try NumPyArray(contentsOf: logits), b = try NumPyArray(contentsOf: reference)
    #expect(a.shape == [3, 1000] && b.shape == [3, 1000])
    let difference = zip(a.values, b.values).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
    let norm = b.values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    #expect(difference / norm < 1e-4)
    // The three images differ, so their logits do.
    #expect(a.values[0..<1000] != a.values[1000..<2000])
}

@Test("bossnet classify refuses broken inputs with a message, not a crash")
func classifyErrors() throws {
    let broken = temporary("broken.png")
    defer { try? FileManager.default.removeItem(at: broken) }
    try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]).write(to: broken)
    let png = try run(["classify", "--input-size", "32", broken.path])
    #expect(png.status == 1)
    #expect(png.error.contains("cannot decode the PNG"))
    let missing = try run(["classify", "--input-size", "32", "--weights", "/nonexistent.pth", broken.path])
    #expect(missing.status == 64, "a missing weights file is a usage error, said before any work")
    #expect(missing.error.contains("/nonexistent.pth does not exist"))
    let wrongShape = temporary("wrong.npy")
    defer { try? FileManager.default.removeItem(at: wrongShape) }
    try NumPyArray(shape: [3, 8, 8], values: [Float](repeating: 0, count: 192)).write(to: wrongShape)
    let shape = try run(["classify", "--input-size", "32", wrongShape.path])
    #expect(shape.status == 1)
    #expect(shape.error.contains("[3, 32, 32]"))
}

/// The program the build-tool plugin runs: a shader that does not compile fails with glslang's message naming the
/// file, and a good one becomes embedded SPIR-V.
@Test("ShaderEmbed fails on a broken shader with glslang's message, and embeds a good one")
func shaderEmbed() throws {
    let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let tool = try #require(
        ["ShaderEmbed-tool", "ShaderEmbed"].map { folder.appendingPathComponent($0) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) })
    let directory = temporary("shaders")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let good =
        "#version 450\nlayout(local_size_x = 8) in;\nlayout(binding = 0) buffer B { float y[]; };\n"
        + "void main() { y[gl_GlobalInvocationID.x] = 1.0; }\n"
    let source = directory.appendingPathComponent("probe.comp"), output = directory.appendingPathComponent("out.swift")
    func embed() throws -> (Int32, String) {
        let process = Process()
        process.executableURL = tool
        process.arguments = [
            "compile", "--source", source.path, "--include-dir", directory.path, "--output", output.path,
        ]
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
    try good.write(to: source, atomically: true, encoding: .utf8)
    let (status, _) = try embed()
    #expect(status == 0)
    #expect(try String(contentsOf: output, encoding: .utf8).contains("static let spirv_probe = \""))
    try String(good.dropLast(2)).write(to: source, atomically: true, encoding: .utf8)  // the closing brace removed
    let (brokenStatus, message) = try embed()
    #expect(brokenStatus != 0)
    #expect(message.contains("probe.comp") && message.contains("ERROR"), "\(message)")
}

@Test(
    "validate checks the distinct operations of the models' graphs, in each family asked for, within the minimum limits"
)
func validateFromGraph() throws {
    // An architecture with attention in stage 1 (256 tokens at 64 px), under the spec's minimum limits: the fp16
    // families are skipped (no 16-bit storage there), the others pass; the device is the same object as elsewhere.
    let process = [
        "validate", "--arch", "hytra:0-1-1-1", "--input-size", "64", "--kernels", "texel", "tiled", "fp16",
        "--seed", "3", "--json",
    ]
    var environment = ProcessInfo.processInfo.environment
    environment["BOSSNET_LIMITS"] = "minimum"
    let result = try run(process, environment: environment)
    #expect(result.status == 0, "\(result.error)")
    #expect(result.error.contains("skipping the fp16 kernels"))
    let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
    #expect(json["limits"] as? String == "minimum")
    #expect((json["device"] as? [String: Any])?["name"] is String)
    let rows = try #require(json["results"] as? [[String: Any]])
    #expect(Set(rows.compactMap { $0["family"] as? String }) == ["texel", "tiled"])
    // One row per distinct operation and shape: the stage-1 attention is there once per family.
    let attention = rows.filter {
        ($0["op"] as? String) == "attention" && ($0["shape"] as? String)?.contains("tokens 256") == true
    }
    #expect(attention.count == 2)
    #expect(rows.allSatisfy { $0["pass"] as? Bool == true })
}

@Test("--version, and several values after one option: --batch 1 8 is --batch 1 --batch 8")
func versionAndMultipleValues() throws {
    let version = try run(["--version"])
    #expect(
        version.status == 0
            && version.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
    // A bad value in the list is named; the check that reads it runs before any device work.
    let bad = try run(["bench", "--model", "bossnet_T0", "--batch", "1", "999", "--iterations", "1"])
    #expect(bad.status != 0 && bad.error.contains("--batch must be between 1 and 256"), "\(bad.error)")
    let unknown = try run(["bench", "--model", "bossnet_T0", "--kernels", "texel", "fastest"])
    #expect(unknown.status != 0 && unknown.error.contains("--kernels takes"), "\(unknown.error)")
}

@Test("only the command line reads the environment: the libraries take every choice as an argument")
func librariesReadNoEnvironment() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let sources = root.appendingPathComponent("Sources")
    let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" || $0.pathExtension == "c" }
    #expect(files.count > 50)
    let readers = try files.filter { file in
        let text = try String(contentsOf: file, encoding: .utf8)
        return text.contains("processInfo.environment") || text.contains("getenv(") || text.contains("environ[")
    }.map { $0.path.replacingOccurrences(of: root.path + "/", with: "") }
    #expect(readers == ["Sources/bossnet/DeviceOptions.swift"], "\(readers)")
}

@Test("bench with several kernel families prints each row's steptime over the first family's, from the rows themselves")
func benchComparesFamilies() throws {
    let result = try run([
        "bench", "--arch", "hytra:0-1-1-1", "--input-size", "32", "--batch", "1", "--kernels", "texel", "storage",
        "--iterations", "1", "--warmup", "0", "--check-size", "32",
    ])
    #expect(result.status == 0, "\(result.error)")
    let lines = result.output.components(separatedBy: "\n")
    let header = try #require(lines.first { $0.hasPrefix("model") && $0.contains("ms/batch") })
    #expect(header.hasSuffix("vs first"))
    // Columns are separated by two or more spaces; ms/batch is "median (min-max)".
    func columns(_ line: String) -> [String] {
        line.components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
    let rows = lines.filter { $0.hasPrefix("hytra") }.prefix(2).map(columns)
    try #require(rows.count == 2 && rows.allSatisfy { $0.count > 8 }, "\(rows)")
    let texel = try #require(Double(rows[0][8].split(separator: " ")[0]))
    let storage = try #require(Double(rows[1][8].split(separator: " ")[0]))
    try #require(texel > 0)
    #expect(rows[0].last == "1.00x texel")
    let printed = try #require(Double(rows[1].last?.split(separator: "x").first ?? ""))
    // The printed medians are rounded to 0.1 ms and the ratio to 0.01: that much and no more may separate them.
    let ratio = storage / texel
    #expect(abs(printed - ratio) <= 0.005 + ratio * (0.05 / texel + 0.05 / storage) + 1e-9, "\(rows[1]) vs \(ratio)")
}

@Test("validate --backward checks every training kernel of the graph once in each family: texel and storage")
func validateBackward() throws {
    let result = try run([
        "validate", "--backward", "--arch", "hytra:0-1-1-1", "--input-size", "64", "--seed", "5", "--json",
    ])
    #expect(result.status == 0, "\(result.error)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
    let rows = try #require(json["results"] as? [[String: Any]])
    #expect(Set(rows.compactMap { $0["family"] as? String }) == ["texel", "storage"])
    let ops = Set(rows.compactMap { $0["op"] as? String })
    let expected: Set = [
        "conv2d_training", "depthwise_training", "attention_training", "squeeze_excite_training", "batchnorm_forward",
        "epilogue",
        "batchnorm_backward", "maxpool_backward", "global_avgpool_backward", "cross_entropy", "adamw",
    ]
    #expect(expected.isSubset(of: ops), "\(ops)")
    // Each distinct check once a family: the stage-1 attention (256 tokens) has one row in each.
    let attention = rows.filter { ($0["shape"] as? String)?.hasPrefix("n1 heads 1 tokens 256") == true }
    #expect(attention.compactMap { $0["family"] as? String }.sorted() == ["storage", "texel"])
    // The texel family's convolutions read texel views (their products are no _storage builds), the storage
    // family's storage buffers.
    let convolutions = rows.filter { $0["op"] as? String == "conv2d_training" }
    func kernels(_ family: String) -> [String] {
        convolutions.filter { $0["family"] as? String == family }.flatMap {
            ($0["kernels"] as? String ?? "").split(separator: " ").map(String.init)
        }
    }
    #expect(kernels("texel").contains("gemm_train_vec4") && !kernels("texel").contains("gemm_train_vec4_storage"))
    #expect(kernels("storage").contains("gemm_train_vec4_storage") && !kernels("storage").contains("gemm_train_vec4"))
    #expect(rows.allSatisfy { $0["pass"] as? Bool == true })
}

@Test("bench --train: a training step beside the inference steptime of the same batch, with its profile, as JSON")
func benchTrain() throws {
    let result = try run([
        "bench", "--train", "--arch", "hytra:1-0-1-1", "--input-size", "32", "--batch", "2", "--iterations", "2",
        "--warmup", "0", "--profile", "--json",
    ])
    #expect(result.status == 0, "\(result.error)")
    let rows = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]])
    let row = try #require(rows.first)
    #expect(rows.count == 1 && row["batch"] as? Int == 2 && row["input_size"] as? Int == 32)
    let step = try #require((row["train_ms_per_step"] as? [String: Any])?["median"] as? Double)
    let inference = try #require(row["inference_ms_per_batch"] as? Double)
    #expect(step > 0 && inference > 0)
    #expect(abs((row["train_over_inference"] as? Double ?? 0) - step / inference) < 1e-9 * step / inference)
    #expect((row["train_device_bytes"] as? Int ?? 0) > 0)
    // The profile names the product kernel, which does most of the arithmetic.
    let profile = try #require(row["profile"] as? [[String: Any]])
    #expect(profile.contains { ($0["kernel"] as? String)?.hasPrefix("gemm_train") == true })
    // Per node, forward and backward: the stem has both, the loss only a forward; the AdamW step is timed apart.
    let nodes = try #require(row["nodes"] as? [[String: Any]])
    let stem = try #require(nodes.first { $0["node"] as? String == "conv1" })
    #expect((stem["forward_ms"] as? Double ?? 0) > 0 && (stem["backward_ms"] as? Double ?? 0) > 0)
    #expect(nodes.first { $0["node"] as? String == "loss" }?["backward_ms"] as? Double == 0)
    #expect((row["optimizer_ms"] as? Double ?? 0) > 0)
    #expect(row["recomputes"] as? Bool == false && row["drop_path"] as? Double == 0)

    // A memory budget the training step passes even recomputing, refused; a budget that is not a size, refused.
    var environment = ProcessInfo.processInfo.environment
    environment["BOSSNET_MEMORY_BUDGET"] = "60M"  // inference's 50 MB fits; training's 170 MB does not
    let small = try run(
        ["bench", "--train", "--arch", "hytra:1-0-1-1", "--input-size", "32", "--batch", "2", "--iterations", "1"],
        environment: environment)
    #expect(small.status != 0 && small.error.contains("Train with a smaller batch"), "\(small.error)")
    environment["BOSSNET_MEMORY_BUDGET"] = "lots"
    let unreadable = try run(["bench", "--train", "--arch", "hytra:1-0-1-1", "--batch", "2"], environment: environment)
    #expect(
        unreadable.status != 0 && unreadable.error.contains("BOSSNET_MEMORY_BUDGET is 'lots'"), "\(unreadable.error)")
}

@Test(
    "train and classify say plainly what the authors' recipe cannot take: policies not built, odd batches, big photos at 32 px"
)
func trainingUsageErrors() throws {
    let set = evaluationFixture("set").path
    // The authors' defaults (RandAugment among them) are taken; the folder's layout is what is wrong.
    let defaults = try run(["train", "--data-path", set])
    #expect(defaults.status == 1 && defaults.error.contains("train/ and val/ below it"), "\(defaults.error)")
    let autoAugment = try run(["train", "--data-path", set, "--aa", "v0"])
    #expect(autoAugment.status == 64 && autoAugment.error.contains("only RandAugment policies"), "\(autoAugment.error)")
    let tiled = try run(["train", "--data-path", set, "--kernels", "tiled"])
    #expect(tiled.status == 64 && tiled.error.contains("come as texel and storage"), "\(tiled.error)")
    let weighted = try run(["train", "--data-path", set, "--aa", "rand-m9-w0"])
    #expect(weighted.status == 64 && weighted.error.contains("weighted choice"), "\(weighted.error)")
    let odd = try run([
        "train", "--data-path", set, "--aa", "none", "--color-jitter", "0", "--reprob", "0", "--batch-size", "3",
    ])
    #expect(odd.status == 64 && odd.error.contains("--batch-size must be even"), "\(odd.error)")
    let layout = try run([
        "train", "--data-path", set, "--aa", "none", "--color-jitter", "0", "--reprob", "0", "--mixup", "0",
        "--cutmix", "0", "--input-size", "32",
    ])
    #expect(layout.status == 1 && layout.error.contains("train/ and val/ below it"), "\(layout.error)")
    // At 32 px the authors' evaluation transform does not resize: a larger photo is refused, saying so.
    let photo = try run(["classify", "--input-size", "32", evaluationFixture("set/cat/cat_1.jpg").path])
    #expect(photo.status == 1 && photo.error.contains("do not resize or crop"), "\(photo.error)")
}
