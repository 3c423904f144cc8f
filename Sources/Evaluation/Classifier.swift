import Foundation
import Kernels
import Models
import NetworkGraph
import VulkanCompute

/// A model with its weights, ready to classify preprocessed images in batches on one Vulkan device (or on the CPU
/// reference): logits, and the top classes with their softmax probabilities.
///
/// ```swift
/// let model = try Model(name: "bossnet_T0")
/// let weights = try CheckpointWeights(state: WeightsFile.read(checkpointURL), model: model)
/// let classifier = try Classifier(model: model, weights: weights, inputSize: 224, batch: 8,
///                                 device: VulkanDevice(instance: VulkanInstance()))
/// let image = try Preprocess.evaluationTensor(try RGBImage(contentsOf: photoURL), inputSize: 224)
/// let best = Classifier.top(try classifier.logits([image])[0], k: 5)   // indices and probabilities
/// ```
///
/// ``classify(_:top:labels:progress:)`` takes any number of images and gives each one's best classes by name.
///
/// A classifier belongs to the thread or task that made it (its device and session are not `Sendable`).
public final class Classifier {
    /// The graph it runs: batch size and input size fixed.
    public let graph: Graph
    /// Images per run.
    public var batch: Int { graph.batch }
    /// The input side S (inputs are `[3, S, S]`).
    public var inputSize: Int { graph.shapes[graph.input].height }
    /// Outputs per image (1000 for ImageNet).
    public var classes: Int { graph.shapes[graph.output].channels }
    private let session: InferenceSession?

    /// Builds `model` for `batch` images of `inputSize` with `weights`, on `device` (the CPU reference when nil), with
    /// the kernels `kernels` asks for.
    public convenience init(
        model: Model, weights: any ParameterSource, inputSize: Int, batch: Int, device: VulkanDevice?,
        kernels: KernelChoice = .automatic
    ) throws {
        try self.init(
            graph: model.graph(batch: batch, inputSize: inputSize, weights: weights), device: device, kernels: kernels)
    }

    /// Runs an already built graph on `device` (the CPU reference when nil), with the kernels `kernels` asks for;
    /// `pipelines` shares compiled pipelines with other sessions on the device (a classifier rebuilt for new weights
    /// then compiles nothing again).
    public init(
        graph: Graph, device: VulkanDevice?, kernels: KernelChoice = .automatic, pipelines: KernelPipelines? = nil
    ) throws {
        self.graph = graph
        session = try device.map {
            try InferenceSession(
                graph: graph, device: $0, pipelines: pipelines, options: SessionOptions(kernels: kernels))
        }
    }

    /// The logits of up to ``batch`` preprocessed images (each `[3, S, S]`); a short batch is padded with zeros whose
    /// logits are dropped.
    public func logits(_ images: [[Float]]) throws -> [[Float]] {
        guard !images.isEmpty else { return [] }
        let input = try batchInput(images)
        let output = try session?.run(input) ?? CPUExecutor.run(graph, input: input)
        return (0..<images.count).map { Array(output[($0 * classes)..<(($0 + 1) * classes)]) }
    }

    /// The logits of any number of preprocessed images, run ``batch`` at a time; `progress` hears how many are done
    /// after each batch.
    public func logits(all images: [[Float]], progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws
        -> [[Float]]
    {
        var result: [[Float]] = []
        result.reserveCapacity(images.count)
        for start in stride(from: 0, to: images.count, by: batch) {
            result += try logits(Array(images[start..<min(start + batch, images.count)]))
            progress(result.count, images.count)
        }
        return result
    }

    /// The `k` best classes of each of any number of preprocessed images, best first, named by `labels` (ImageNet's
    /// by default).
    public func classify(
        _ images: [[Float]], top k: Int, labels: [String] = ImageNetLabels.names,
        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }
    ) throws -> [[Prediction]] {
        try logits(all: images, progress: progress).map { Self.predictions($0, top: k, labels: labels) }
    }

    /// The `k` best classes of one image's logits, with their softmax probabilities and names.
    public static func predictions(_ logits: [Float], top k: Int, labels: [String] = ImageNetLabels.names)
        -> [Prediction]
    {
        let best = top(logits, k: k)
        return zip(best.indices, best.probabilities).map { index, probability in
            Prediction(
                classIndex: index, label: index < labels.count ? labels[index] : "class \(index)",
                probability: probability, logit: logits[index])
        }
    }

    /// The graph's input for up to ``batch`` preprocessed images: their values in order, then zeros for the rest.
    public func batchInput(_ images: [[Float]]) throws -> [Float] {
        let perImage = 3 * inputSize * inputSize
        guard images.count <= batch, images.allSatisfy({ $0.count == perImage }) else {
            throw ImageSetError(
                "a classifier of batch \(batch) at \(inputSize)x\(inputSize) takes at most \(batch) images of \(perImage) values each"
            )
        }
        return images.flatMap { $0 } + [Float](repeating: 0, count: (batch - images.count) * perImage)
    }

    /// The `k` largest logits' classes, best first, with their softmax probabilities (computed in Double).
    public static func top(_ logits: [Float], k: Int) -> (indices: [Int], probabilities: [Double]) {
        let largest = Double(logits.max() ?? 0)
        let exps = logits.map { exp(Double($0) - largest) }
        let total = exps.reduce(0, +)
        let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }.prefix(k)
        return (Array(order), order.map { exps[$0] / total })
    }
}

/// One class of an image's top-k: its index, name, softmax probability and logit.
public struct Prediction: Sendable, Equatable, Encodable {
    public let classIndex: Int
    public let label: String
    public let probability: Double
    public let logit: Float

    enum CodingKeys: String, CodingKey {
        case classIndex = "class_index", label, probability, logit
    }
}
