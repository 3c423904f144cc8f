import ArgumentParser
import Checkpoint
import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import VulkanCompute

struct Grad: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One training step: the loss, every parameter's gradient and the BatchNorm statistics after it.",
        discussion: """
            Runs the model as PyTorch's model.train() does (BatchNorm on the batch's statistics, its running mean and \
            unbiased running variance updated with momentum 0.1), the cross-entropy loss with label smoothing or soft \
            targets, and the backward. Writes float32 safetensors: `loss`, `grad.<name>` for every trainable \
            parameter and `<bn>.running_mean` / `<bn>.running_var` after the step, under the authors' state-dict \
            names; with --step, the parameters after one optimizer step from these weights as `param.<name>`. Runs on \
            the device's training kernels (float32); --cpu computes the same step with the CPU reference in float64. \
            With --drop-path, stochastic depth drops residual branches per image by the authors' rule (the masks, \
            drawn from --seed the same way on the device and the CPU, are written as `mask.<node>`).
            """)

    @OptionGroup var deviceSelection: DeviceSelection
    @OptionGroup var modelSelection: ModelSelection
    @OptionGroup var weightsSelection: WeightsSelection

    @Option(help: "Preprocessed images: .npy, float32 [N, 3, S, S].")
    var input: String

    @Option(help: "Labels: .npy, int64 class indices [N], or float32 soft targets [N, classes].")
    var labels: String

    @Option(help: "Label smoothing for class-index labels (the authors train with 0.1).")
    var smoothing = 0.0

    @Option(
        help: "Also take one optimizer step from these weights (fresh state) and write `param.<name>`: adamw or sgd.")
    var step: OptimizerChoice?

    @Option(help: "The optimizer's learning rate.")
    var lr = 5e-4

    @Option(help: "The optimizer's weight decay (none on 1-d parameters and biases, as timm groups them).")
    var weightDecay = 0.05

    @Option(
        help: "Stochastic depth's rate (the authors' --drop-path; ResConv block i of 16 drops with rate * i / 15).")
    var dropPath = 0.0

    @Option(help: "The seed stochastic depth's masks are drawn from.")
    var seed: UInt64 = 0

    @Flag(help: "Compute the step with the CPU reference (float64) instead of the device.")
    var cpu = false

    @Option(help: "The .safetensors file to write.")
    var output: String

    func validate() throws {
        if cpu && deviceSelection.device != nil { throw ValidationError("Give --device or --cpu, not both.") }
        guard lr > 0 && lr.isFinite && weightDecay >= 0 && weightDecay.isFinite else {
            throw ValidationError("--lr must be positive and --weight-decay at least 0; got \(lr) and \(weightDecay).")
        }
        guard (0..<1).contains(smoothing) else {
            throw ValidationError("--smoothing must be in [0, 1); got \(smoothing).")
        }
        guard (0..<1).contains(dropPath) else {
            throw ValidationError("--drop-path must be in [0, 1); got \(dropPath).")
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
            let depth = try loaded.model.stochasticDepth(rate: dropPath, graph: graph)
            var random = SeededRandom(seed: seed)
            let masks = depth.masks(batch: graph.batch, using: &random)
            let result =
                cpu
                ? try referenceStep(graph, images.values, targets, masks: masks)
                : try deviceStep(graph, images.values, targets, depth: depth, masks: masks)
            let state = try StateDict(tensors(result, graph: graph))
            try writing(output) { try SafeTensors.write(state, to: URL(fileURLWithPath: output)) }
            print("loss \(result.loss); wrote \(state.count) tensors to \(output)")
        } catch let error as ExitCode { throw error } catch { throw report(error) }
    }

    /// What one step gives, on the device or the CPU: float32 tensors by state-dict name.
    private struct StepResult {
        var loss: Double
        var gradients: [String: [Float]]
        var running: [String: [Float]]
        /// The parameters after the optimizer's step (with --step).
        var parameters: [String: [Float]] = [:]
        /// Stochastic depth's masks, by node (with --drop-path).
        var masks: [String: [Double]] = [:]
    }

    private var optimizer: TrainingOptimizer? {
        switch step {
        case .adamw: .adamw(AdamW(learningRate: lr, weightDecay: weightDecay))
        case .sgd: .sgd(SGD(learningRate: lr, weightDecay: weightDecay))
        case nil: nil
        }
    }

    private func deviceStep(
        _ graph: Graph, _ images: [Float], _ targets: [Double], depth: StochasticDepth, masks: [String: [Double]]
    ) throws -> StepResult {
        let session = try TrainingSession(graph: graph, device: try deviceSelection.open(), stochasticDepth: depth)
        let step = try session.step(input: images, targets: targets.map(Float.init), masks: masks)
        var result = StepResult(
            loss: step.loss, gradients: step.gradients, running: step.runningStatistics, masks: masks)
        if let optimizer { result.parameters = try session.optimize(optimizer) }
        return result
    }

    private func referenceStep(_ graph: Graph, _ images: [Float], _ targets: [Double], masks: [String: [Double]])
        throws -> StepResult
    {
        let step = try TrainingReference(graph).step(input: images, targets: targets, masks: masks)
        var result = StepResult(
            loss: step.loss, gradients: step.gradients.mapValues { $0.map(Float.init) },
            running: step.runningStatistics.mapValues { $0.map(Float.init) }, masks: masks)
        guard let choice = self.step else { return result }
        for declaration in graph.declarations {
            guard let gradient = step.gradients[declaration.name], let values = graph.parameters[declaration.name]
            else { continue }
            let updated = choice.step(
                values.map(Double.init), gradient: gradient, learningRate: lr, weightDecay: weightDecay,
                decays: takesWeightDecay(name: declaration.name, shape: declaration.shape))
            result.parameters[declaration.name] = updated.map(Float.init)
        }
        return result
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

    /// `loss`, each stochastic-depth mask (`mask.<node>`, in the graph's order), then in declaration order `param.<name>` (after the optimizer's step, with --step), `grad.<name>` and
    /// the running statistics.
    private func tensors(_ result: StepResult, graph: Graph) -> [NamedTensor] {
        var tensors = [NamedTensor(name: "loss", shape: [], values: [Float(result.loss)])]
        for node in graph.nodes.map(\.name) {
            guard let mask = result.masks[node] else { continue }
            tensors.append(NamedTensor(name: "mask.\(node)", shape: [mask.count], values: mask.map(Float.init)))
        }
        for declaration in graph.declarations {
            let (name, shape) = (declaration.name, declaration.shape)
            if let values = result.parameters[name] {
                tensors.append(NamedTensor(name: "param.\(name)", shape: shape, values: values))
            }
            if let gradient = result.gradients[name] {
                tensors.append(NamedTensor(name: "grad.\(name)", shape: shape, values: gradient))
            }
            if let running = result.running[name] {
                tensors.append(NamedTensor(name: name, shape: shape, values: running))
            }
        }
        return tensors
    }
}

/// The optimizers `grad --step` takes.
enum OptimizerChoice: String, ExpressibleByArgument, CaseIterable {
    case adamw, sgd

    /// `parameter` after this optimizer's first step with `gradient` (SGD with momentum 0.9).
    func step(_ parameter: [Double], gradient: [Double], learningRate: Double, weightDecay: Double, decays: Bool)
        -> [Double]
    {
        var parameter = parameter
        switch self {
        case .adamw:
            var state = AdamW.State(count: parameter.count)
            AdamW(learningRate: learningRate, weightDecay: weightDecay)
                .step(&parameter, gradient: gradient, state: &state, decays: decays)
        case .sgd:
            var buffer: [Double]?
            SGD(learningRate: learningRate, weightDecay: weightDecay)
                .step(&parameter, gradient: gradient, buffer: &buffer, decays: decays)
        }
        return parameter
    }
}
