import Foundation
import Images
import Testing

/// A fresh folder for one test, removed afterwards by the caller.
func scratchFolder(_ name: String) throws -> URL {
    let folder = temporary(name)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}

func sharedImage(_ name: String) -> URL { sharedFixture("ImagesTests", name) }

@Test("an output never replaces an input or a file of another kind, and is checked before any work")
func outputsNeverReplaceInputs() throws {
    let folder = try scratchFolder("outputs")
    defer { try? FileManager.default.removeItem(at: folder) }
    let scene = folder.appendingPathComponent("scene.png"), pre = folder.appendingPathComponent("pre.npy")
    try FileManager.default.copyItem(at: sharedImage("gradient.png"), to: scene)
    try NumPyArray(shape: [3, 32, 32], values: [Float](repeating: 0.5, count: 3 * 32 * 32)).write(to: pre)
    let sceneBytes = try Data(contentsOf: scene), preBytes = try Data(contentsOf: pre)

    // The output name forgotten: `--logits scene.png pre.npy` must not turn the photo into an .npy.
    let forgotten = try run(["classify", "--input-size", "32", "--logits", scene.path, pre.path])
    #expect(forgotten.status != 0 && forgotten.error.contains("must name a .npy file"), "\(forgotten.error)")
    // An input named as the output.
    let same = try run(["classify", "--input-size", "32", "--logits", pre.path, pre.path])
    #expect(same.status != 0 && same.error.contains("also an input"), "\(same.error)")
    // An existing file of another kind under an .npy name.
    let disguised = folder.appendingPathComponent("photo.npy")
    try FileManager.default.copyItem(at: scene, to: disguised)
    let other = try run(["classify", "--input-size", "32", "--logits", disguised.path, pre.path])
    #expect(other.status != 0 && other.error.contains("not replacing it"), "\(other.error)")
    // A folder that does not exist: said before any inference, never as a raw Foundation error.
    let nowhere = try run([
        "classify", "--input-size", "32", "--logits", folder.appendingPathComponent("no/such/out.npy").path, pre.path,
    ])
    #expect(
        nowhere.status != 0 && nowhere.error.contains("does not exist") && !nowhere.error.contains("Domain="),
        "\(nowhere.error)")
    #expect(
        try Data(contentsOf: scene) == sceneBytes && Data(contentsOf: pre) == preBytes
            && Data(contentsOf: disguised) == sceneBytes)

    // convert writes only .safetensors, and says when its input already is one.
    let safetensors = folder.appendingPathComponent("w.safetensors")
    let made = try run(["convert", sharedFixture("CheckpointTests", "tensors.pth").path, safetensors.path])
    #expect(made.status == 0, "\(made.error)")
    let again = try run(["convert", safetensors.path, folder.appendingPathComponent("x.safetensors").path])
    #expect(again.status != 0 && again.error.contains("already a safetensors file"), "\(again.error)")
    let wrongName = try run(["convert", sharedFixture("CheckpointTests", "tensors.pth").path, scene.path])
    #expect(wrongName.status != 0 && wrongName.error.contains("must name a .safetensors file"), "\(wrongName.error)")
    #expect(try Data(contentsOf: scene) == sceneBytes)
}

@Test("an output that cannot be written is refused before any work, saying why, and leaves no file")
func unwritableOutput() throws {
    // The fault: a folder that exists but takes no new files, even for root (/proc).
    let target = "/proc/bossnet-logits-\(UUID().uuidString).npy"
    let result = try run(["classify", "--input-size", "40", "--logits", target, sharedImage("gradient.png").path])
    #expect(result.status == 64, "a usage error, before the network runs")
    #expect(
        result.error.contains("cannot create files in /proc (No such file or directory)")
            && !result.error.contains("Domain="), "\(result.error)")
    #expect(!result.error.contains("SYNTHETIC"), "no weights were made")
    #expect(!FileManager.default.fileExists(atPath: target))
}

@Test("errors a person can act on: a missing file, an unknown format, NaN in a tensor, the option as given")
func actionableErrors() throws {
    let folder = try scratchFolder("errors")
    defer { try? FileManager.default.removeItem(at: folder) }
    let text = folder.appendingPathComponent("notes.jpg")
    try "not an image".write(to: text, atomically: true, encoding: .utf8)
    // One bad input among several: reported, the others still classified, a non-zero status at the end.
    let mixed = try run([
        "classify", "--arch", tinyEvalArch, "--input-size", "40", "--json",
        folder.appendingPathComponent("missing.png").path, text.path,
        sharedImage("gradient.png").path,
    ])
    #expect(mixed.status == 1)
    #expect(mixed.error.contains("missing.png does not exist"), "\(mixed.error)")
    #expect(mixed.error.contains("not a PNG or JPEG image"), "\(mixed.error)")
    #expect(mixed.output.contains("gradient.png"), "the readable input still ran: \(mixed.output)")

    // NaN in a tensor: an error naming the file and the element; with the flag, a warning and a result.
    let nan = sharedImage("nan.npy")
    let padded = folder.appendingPathComponent("nan32.npy")
    var values = [Float](repeating: 0.25, count: 3 * 32 * 32)
    values[1 * 32 * 32 + 5 * 32 + 7] = .nan
    try NumPyArray(shape: [3, 32, 32], values: values).write(to: padded)
    let refused = try run(["classify", "--input-size", "32", padded.path])
    #expect(
        refused.status == 1 && refused.error.contains("element [1, 5, 7] is nan")
            && refused.error.contains("--allow-nonfinite"),
        "\(refused.error)")
    let allowed = try run(["classify", "--arch", tinyEvalArch, "--input-size", "32", "--allow-nonfinite", padded.path])
    #expect(allowed.status == 0 && allowed.error.contains("warning"), "\(allowed.error)")
    #expect(FileManager.default.fileExists(atPath: nan.path))

    // A float64 .npy, as NumPy writes by default, is converted rather than refused.
    let float64 = try run(["classify", "--input-size", "32", "--json", sharedImage("float64.npy").path])
    #expect(
        float64.status == 1 && float64.error.contains("[2, 3, 4]"),
        "read as float64, refused only for its shape: \(float64.error)")

    let check = try run(["bench", "--check-size", "16", "--model", "bossnet_T0", "--batch", "1", "--iterations", "1"])
    #expect(check.status != 0 && check.error.contains("--check-size"), "\(check.error)")
}
