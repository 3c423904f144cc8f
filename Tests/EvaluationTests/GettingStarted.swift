// The getting-started article's code (Sources/Evaluation/Evaluation.docc/GettingStarted.md), compiled here and run by
// GettingStartedTests.swift, which also checks that the article shows exactly this code.
// BEGIN getting-started
import Benchmark
import Checkpoint
import Evaluation
import Foundation
import Images
import Models
import VulkanCompute

/// Classifies a photo with BossNet-T0 and measures the model's steptime on the same device.
func classifyAndBenchmark(checkpoint: URL, photo: URL, inputSize: Int = 224) throws
    -> (best: [Prediction], benchmark: BenchmarkResult)
{
    // 1. A device: the most capable one. DeviceOptions chooses the rest: the validation layer (on the instance), a
    //    pipeline cache folder, and `limits: .minimum` to run within the smallest GPU the Vulkan spec allows.
    let device = try VulkanDevice(
        instance: VulkanInstance(validation: .off),
        options: DeviceOptions(pipelineCacheDirectory: nil, limits: .device))

    // 2. The model and its weights: an authors' .pth (or a .safetensors file), bound strictly by name and shape.
    let model = try Model(name: "bossnet_T0")
    let weights = try CheckpointWeights(state: WeightsFile.read(checkpoint), model: model)

    // 3. A classifier: the network planned for this device, uploaded and recorded once (batch 1 here; the kernels
    //    are the planner's choice for the device unless `kernels:` names a family).
    let classifier = try Classifier(model: model, weights: weights, inputSize: inputSize, batch: 1, device: device)

    // 4. A PNG or JPEG, decoded and preprocessed as the authors' PIL pipeline does; its five best classes, by name.
    let image = try Preprocess.evaluationTensor(try RGBImage(contentsOf: photo), inputSize: inputSize)
    let best = try classifier.classify([image], top: 5)[0]

    // 5. Steptime on the same device, with a check of the logits against the CPU reference at 64 px.
    let benchmark = Benchmarker(device: device, iterations: 3, warmup: 1, weights: weights, checkInputSize: 64)
    let result = try benchmark.run(BenchmarkCase(model: model, inputSize: inputSize, batch: 1))
    print("\(result.label): \(result.ms_per_image.median) ms/image, logits within \(result.check_rel_error) of the CPU")

    return (best, result)
}
// END getting-started
