// Runs the getting-started article's code (GettingStarted.swift) and checks that the article shows exactly that code.
import Checkpoint
import Evaluation
import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import TestSupport
import Testing

@Test(
    "the getting-started article's code gives the CPU reference's five classes for a PNG and a checked benchmark row; the article shows this code"
)
func gettingStarted() throws {
    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "GettingStarted.swift")
    let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let source = try String(contentsOf: here, encoding: .utf8)
    let article = try String(
        contentsOf: root.appendingPathComponent("Sources/Evaluation/Evaluation.docc/GettingStarted.md"), encoding: .utf8
    )
    let code = try #require(
        source.components(separatedBy: "// BEGIN getting-started\n").last?.components(
            separatedBy: "// END getting-started"
        ).first)
    let shown = try #require(
        article.components(separatedBy: "```swift\n").dropFirst().first?.components(separatedBy: "```").first)
    #expect(code == shown, "GettingStarted.md and GettingStarted.swift differ: edit both")

    // A checkpoint of calibrated synthetic weights, and a PNG from the image fixtures; 64 px keeps the debug build quick.
    let model = try Model(name: "bossnet_T0")
    let checkpoint = FileManager.default.temporaryDirectory.appendingPathComponent(
        "getting-started-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: checkpoint) }
    try SafeTensors.write(StateDict(model: model, weights: SyntheticWeights(calibratedFor: model)), to: checkpoint)
    let photo = root.appendingPathComponent("Tests/ImagesTests/Fixtures/gradient.png")

    let (best, benchmark) = try classifyAndBenchmark(checkpoint: checkpoint, photo: photo, inputSize: 64)

    // The five classes and their probabilities are the CPU reference's on the same weights and image.
    let weights = try CheckpointWeights(state: WeightsFile.read(checkpoint), model: model)
    let graph = try model.graph(batch: 1, inputSize: 64, weights: weights)
    let pixels = try Preprocess.evaluationTensor(try RGBImage(contentsOf: photo), inputSize: 64)
    let reference = Classifier.top(CPUExecutor.run(graph, input: pixels), k: 5)
    #expect(best.map(\.classIndex) == reference.indices)
    #expect(best.map(\.label) == reference.indices.map { ImageNetLabels.names[$0] })
    // Relative to each probability (a few thousandths each under synthetic weights): float32 logits move them by
    // about 1e-6 of their size.
    let gap = zip(best.map(\.probability), reference.probabilities).map { abs($0 - $1) / $1 }.max() ?? .infinity
    #expect(best.count == 5 && gap <= 1e-4, "probabilities differ from the CPU reference's by \(gap) of their size")
    // The benchmark's own check of the device against the CPU reference passed, within the network tolerance.
    #expect(benchmark.check_pass && benchmark.check_rel_error <= 1e-4, "check error \(benchmark.check_rel_error)")
}

@Test("the README's library snippet compiles as shown and its logits match the CPU reference (64 px)")
func readmeLibrarySnippet() throws {
    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    let root = here.deletingLastPathComponent().deletingLastPathComponent()
    let source = try String(contentsOf: here.appendingPathComponent("ReadmeLibrary.swift"), encoding: .utf8)
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let code = try #require(
        source.components(separatedBy: "// BEGIN readme-library\n").last?.components(
            separatedBy: "// END readme-library"
        ).first)
    let shown = readme.contains("<!-- Tests/EvaluationTests/ReadmeLibrary.swift -->\n```swift\n\(code)```")
    #expect(shown, "README.md's library snippet and ReadmeLibrary.swift differ: edit both")

    let photo = root.appendingPathComponent("Tests/ImagesTests/Fixtures/gradient.png")
    let logits = try withValidatedDevice { try bossNetT0Logits(photo: photo, device: $0, inputSize: 64) }
    let model = try Model(name: "bossnet_T0")
    let graph = try model.graph(batch: 1, inputSize: 64, weights: try SyntheticWeights(calibratedFor: model))
    let pixels = try Preprocess.evaluationTensor(try RGBImage(contentsOf: photo), inputSize: 64)
    let comparison = Comparison(logits, CPUExecutor.run(graph, input: pixels))
    #expect(logits.count == 1000 && comparison.relativeL2 <= 1e-4, "\(comparison)")
}
