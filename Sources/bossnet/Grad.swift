import ArgumentParser
import Checkpoint
import Foundation
import Images
import Kernels
import Models
import NetworkGraph

struct Grad: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One training step: the loss, every parameter's gradient and the BatchNorm statistics after it.",
        discussion: """
            Runs the model as PyTorch's model.train() does (BatchNorm on the batch's statistics, its running mean and \
            unbiased running variance updated with momentum 0.1), the cross-entropy loss with label smoothing or soft \
            targets, and the backward. Writes float32 safetensors: `loss`, `grad.<name>` for every trainable \
            parameter and `<bn>.running_mean` / `<bn>.running_var` after the step, under the authors' state-dict \
            names. This release computes the step with the CPU reference (--cpu, in float64); the device's training \
            kernels come next.
            """)

    @OptionGroup var modelSelection: ModelSelection
    @OptionGroup var weightsSelection: WeightsSelection

    @Option(help: "Preprocessed images: .npy, float32 [N, 3, S, S].")
    var input: String

    @Option(help: "Labels: .npy, int64 class indices [N], or float32 soft targets [N, classes].")
    var labels: String

    @Option(help: "Label smoothing for class-index labels (the authors train with 0.1).")
    var smoothing = 0.0

    @Flag(help: "Compute the step with the CPU reference (required in this release).")
    var cpu = false

    @Option(help: "The .safetensors file to write.")
    var output: String

    func validate() throws {
        guard cpu else {
            throw ValidationError(
                "grad runs on the CPU reference in this release: add --cpu (the device's training kernels come next).")
        }
        guard (0..<1).contains(smoothing) else {
            throw ValidationError("--smoothing must be in [0, 1); got \(smoothing).")
        }
        try weightsSelection.validate(requested: try modelSelection.requested())
        try checkOutput(output, option: "--output", kind: .safetensors, inputs: [input, labels])
    }

    func run() throws {
        do {
            let images = try NumPyArray(contentsOf: URL(fileURLWithPath: input))
            guard images.shape.count == 4, images.shape[1] == 3, images.shape[2] == images.shape[3] else {
                throw ValidationError("--input \(input) has shape \(images.shape); grad takes [N, 3, S, S].")
            }
            let loaded = try weightsSelection.load(requested: try modelSelection.requested())
            let graph = try loaded.model.graph(
                batch: images.shape[0], inputSize: images.shape[2], weights: loaded.weights)
            let classes = graph.shapes[graph.output].count / graph.batch
            let targets = try readTargets(batch: graph.batch, classes: classes)
            let step = try TrainingReference(graph).step(input: images.values, targets: targets)
            let state = try StateDict(tensors(step, graph: graph))
            try writing(output) { try SafeTensors.write(state, to: URL(fileURLWithPath: output)) }
            print("loss \(step.loss); wrote \(state.count) tensors to \(output)")
        } catch let error as ExitCode { throw error } catch { throw report(error) }
    }

    /// The per-image target distributions: smoothed one-hot from class indices, or the soft targets as given.
    private func readTargets(batch: Int, classes: Int) throws -> [Double] {
        let array = try NumPyArray(contentsOf: URL(fileURLWithPath: labels))
        let loss = CrossEntropy(batch: batch, classes: classes)
        if array.shape == [batch, classes] { return array.values.map(Double.init) }
        guard array.shape == [batch] else {
            throw ValidationError(
                "--labels \(labels) has shape \(array.shape); give [\(batch)] class indices or [\(batch), \(classes)] soft targets."
            )
        }
        let labels = array.values.compactMap { Int(exactly: $0) }
        guard labels.count == batch, labels.allSatisfy({ (0..<classes).contains($0) }) else {
            throw ValidationError("--labels \(self.labels) holds values that are not class indices 0..<\(classes).")
        }
        return loss.targets(labels: labels, smoothing: smoothing)
    }

    /// `loss`, then `grad.<name>` in declaration order, then the running statistics.
    private func tensors(_ step: TrainingReference.Step, graph: Graph) -> [NamedTensor] {
        var tensors = [NamedTensor(name: "loss", shape: [], values: [Float(step.loss)])]
        for declaration in graph.declarations {
            if let gradient = step.gradients[declaration.name] {
                tensors.append(
                    NamedTensor(
                        name: "grad.\(declaration.name)", shape: declaration.shape, values: gradient.map(Float.init)))
            }
            if let running = step.runningStatistics[declaration.name] {
                tensors.append(
                    NamedTensor(name: declaration.name, shape: declaration.shape, values: running.map(Float.init)))
            }
        }
        return tensors
    }
}
