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

@Test("the getting-started article's code runs: five classes for a PNG, a benchmark row; the article shows this code")
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

    let best = try classifyAndBenchmark(checkpoint: checkpoint, photo: photo, inputSize: 64)
    #expect(best.count == 5)
    #expect(zip(best, best.dropFirst()).allSatisfy { $0.probability >= $1.probability })
    #expect(
        best.allSatisfy { ImageNetLabels.names.contains($0.label) }
            && best.reduce(0) { $0 + $1.probability } <= 1 + 1e-9)
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
    let pixels = Preprocess.evaluationTensor(try RGBImage(contentsOf: photo), inputSize: 64)
    let comparison = Comparison(logits, CPUExecutor.run(graph, input: pixels))
    #expect(logits.count == 1000 && comparison.relativeL2 <= 1e-4, "\(comparison)")
}
