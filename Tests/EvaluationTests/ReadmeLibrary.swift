// The README's library snippet ("Using it from Swift"), compiled here and run by GettingStartedTests.swift, which also
// checks that the README shows exactly this code.
// BEGIN readme-library
import Foundation
import Images
import Models
import NetworkGraph
import VulkanCompute

/// BossNet-T0's 1,000 logits for a PNG or JPEG, on `device` (the most capable one is
/// `try VulkanDevice(instance: VulkanInstance())`).
func bossNetT0Logits(photo: URL, device: VulkanDevice, inputSize: Int = 224) throws -> [Float] {
    let model = try Model(name: "bossnet_T0")
    let weights = try SyntheticWeights(calibratedFor: model)  // or CheckpointWeights(state:model:): a .pth file
    let graph = try model.graph(batch: 1, inputSize: inputSize, weights: weights)
    let session = try InferenceSession(graph: graph, device: device)  // plans, uploads and records once
    let pixels = try Preprocess.evaluationTensor(try RGBImage(contentsOf: photo), inputSize: inputSize)  // [3, S, S]
    return try session.run(pixels)  // [1000]; each later run replays the recording
}
// END readme-library
