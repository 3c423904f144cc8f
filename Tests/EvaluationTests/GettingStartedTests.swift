// The getting-started article's code (Sources/Evaluation/Evaluation.docc/GettingStarted.md), compiled here and run by
// the test below; the test also checks that the article shows exactly this code.
// BEGIN getting-started
import Benchmark
import Checkpoint
import Evaluation
import Foundation
import Images
import Models
import VulkanCompute

/// Classifies a photo with BossNet-T0 and measures the model's steptime on the same device.
func classifyAndBenchmark(checkpoint: URL, photo: URL, inputSize: Int = 224) throws -> [(label: String, probability: Double)] {
    // 1. A device: the most capable one. DeviceOptions chooses the rest: the validation layer (on the instance), a
    //    pipeline cache folder, and `limits: .minimum` to run within the smallest GPU the Vulkan spec allows.
    let device = try VulkanDevice(instance: VulkanInstance(validation: .off),
                                  options: DeviceOptions(pipelineCacheDirectory: nil, limits: .device))

    // 2. The model and its weights: an authors' .pth (or a .safetensors file), bound strictly by name and shape.
    let model = try Model(name: "bossnet_T0")
    let weights = try CheckpointWeights(state: WeightsFile.read(checkpoint), model: model)

    // 3. A classifier: the network planned for this device, uploaded and recorded once (batch 1 here; the kernels
    //    are the planner's choice for the device unless `kernels:` names a family).
    let classifier = try Classifier(model: model, weights: weights, inputSize: inputSize, batch: 1, device: device)

    // 4. A PNG or JPEG, decoded and preprocessed as the authors' PIL pipeline does; its five best classes.
    let image = Preprocess.evaluationTensor(try RGBImage(contentsOf: photo), inputSize: inputSize)
    let best = Classifier.top(try classifier.logits([image])[0], k: 5)

    // 5. Steptime on the same device, with a check of the logits against the CPU reference at 64 px.
    let benchmark = Benchmarker(device: device, iterations: 3, warmup: 1, weights: weights, checkInputSize: 64)
    let result = try benchmark.run(BenchmarkCase(model: model, inputSize: inputSize, batch: 1))
    print("\(result.label): \(result.ms_per_image.median) ms per image, logits within \(result.check_rel_error) of the CPU")

    return zip(best.indices, best.probabilities).map { (ImageNetLabels.names[$0], $1) }
}
// END getting-started

import Testing

@Test("the getting-started article's code runs: five classes for a PNG, a benchmark row; the article shows this code")
func gettingStarted() throws {
    let here = URL(fileURLWithPath: #filePath)
    let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let source = try String(contentsOf: here, encoding: .utf8)
    let article = try String(contentsOf: root.appendingPathComponent("Sources/Evaluation/Evaluation.docc/GettingStarted.md"), encoding: .utf8)
    let code = try #require(source.components(separatedBy: "// BEGIN getting-started\n").last?.components(separatedBy: "// END getting-started").first)
    let shown = try #require(article.components(separatedBy: "```swift\n").dropFirst().first?.components(separatedBy: "```").first)
    #expect(code == shown, "GettingStarted.md and GettingStartedTests.swift differ: edit both")

    // A checkpoint of calibrated synthetic weights, and a PNG from the image fixtures; 64 px keeps the debug build quick.
    let model = try Model(name: "bossnet_T0")
    let synthetic = try SyntheticWeights(calibratedFor: model)
    let tensors = try model.stateDictEntries().filter { !$0.name.hasSuffix("num_batches_tracked") }.map {
        NamedTensor(name: $0.name, shape: $0.shape, values: try synthetic.values(for: $0.name, shape: $0.shape))
    }
    let checkpoint = FileManager.default.temporaryDirectory.appendingPathComponent("getting-started-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: checkpoint) }
    try SafeTensors.write(try StateDict(tensors), to: checkpoint)
    let photo = root.appendingPathComponent("Tests/ImagesTests/Fixtures/gradient.png")

    let best = try classifyAndBenchmark(checkpoint: checkpoint, photo: photo, inputSize: 64)
    #expect(best.count == 5)
    #expect(zip(best, best.dropFirst()).allSatisfy { $0.probability >= $1.probability })
    #expect(best.allSatisfy { ImageNetLabels.names.contains($0.label) } && best.reduce(0) { $0 + $1.probability } <= 1 + 1e-9)
}
