import ArgumentParser
import Checkpoint
import Evaluation
import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import VulkanCompute

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images (PNG, JPEG) or preprocessed arrays (.npy) with a BossNet model.",
        discussion: """
            Each INPUT is a PNG or JPEG (told apart by their first bytes, whatever the name), taken through the evaluation preprocessing (resize the shorter side to \
            int(256/224 * S) with PIL's bicubic, center-crop S x S, normalise with ImageNet's mean and std), or a \
            NumPy .npy of little-endian float32 in C order, shape [3,S,S] or [N,3,S,S], taken as already preprocessed. \
            Weights come from --weights (a torch.save .pth or a .safetensors file); without it they are synthetic and \
            the classes mean nothing.
            """)

    @OptionGroup var modelSelection: ModelSelection

    @Option(help: "Weights: a .pth checkpoint (torch.save zip format) or a .safetensors file.")
    var weights: String?

    @Flag(help: "Use the checkpoint's EMA weights ('model_ema').")
    var ema = false

    @Option(help: "Input size S (the network's input is S x S).")
    var inputSize = 224

    @Option(help: "How many classes to show per input.")
    var top = 5

    @Option(help: "Images per batch on the device.")
    var batch = 8

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Option(help: "Also write every input's 1000 raw logits to this .npy file (float32, shape [inputs, 1000]).")
    var logits: String?

    @OptionGroup var deviceSelection: DeviceSelection
    @OptionGroup var kernels: KernelFamilyOption

    @Flag(help: "Run on the CPU reference instead of Vulkan (slow; for checking).")
    var cpu = false

    @Flag(help: "Run on inputs holding NaN or infinity, with a warning (by default such an input is an error).")
    var allowNonfinite = false

    @Argument(help: "PNG or JPEG images, or .npy arrays.")
    var inputs: [String] = []

    func validate() throws {
        try validateInputSize(inputSize)
        guard !inputs.isEmpty else { throw ValidationError("Give at least one INPUT (a PNG or JPEG image, or an .npy file).") }
        guard (1...1000).contains(top) else { throw ValidationError("--top must be between 1 and 1000.") }
        guard (1...256).contains(batch) else { throw ValidationError("--batch must be between 1 and 256.") }
        if cpu && deviceSelection.device != nil { throw ValidationError("Give --device or --cpu, not both.") }
        _ = try kernels.choice()
        if ema && weights == nil { throw ValidationError("--ema chooses the EMA weights of a --weights checkpoint; give --weights too.") }
        if let logits { try checkOutput(logits, option: "--logits", kind: .npy, inputs: inputs) }
        _ = try modelSelection.resolve()
    }

    func run() throws {
        do { try classify() } catch let error as ExitCode { throw error } catch { throw report(error) }
    }

    private func classify() throws {
        let model = try modelSelection.resolve()
        let source: any ParameterSource
        if let weights {
            let state = try WeightsFile.read(URL(fileURLWithPath: weights), ema: ema)
            source = try CheckpointWeights(state: state, model: model)
        } else {
            FileHandle.standardError.write(Data("""
                WARNING: no --weights given: the weights are SYNTHETIC and the classes below mean nothing.
                         Pass --weights BossNet-T0-80_8.pth (or another checkpoint) for real predictions.\n
                """.utf8))
            source = try SyntheticWeights(calibratedFor: model)
        }

        // Every input as one or more preprocessed images; an input that cannot be read is reported and skipped.
        var images: [(name: String, tensor: [Float])] = []
        var failed: [InputFailure] = []
        for path in inputs {
            do {
                images += try load(path)
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                failed.append(InputFailure(input: path, reason: "\(error)"))
            }
        }
        guard !images.isEmpty else { throw ExitCode(1) }

        let classes = 1000
        var allLogits: [Float] = []
        let batchSize = min(batch, images.count)
        let graph = try model.graph(batch: batchSize, inputSize: inputSize, weights: source)
        let device = cpu ? nil : try deviceSelection.open()
        let classifier = try Classifier(graph: graph, device: device, kernels: try kernels.choice())
        for start in stride(from: 0, to: images.count, by: batchSize) {
            let chunk = images[start..<min(start + batchSize, images.count)].map(\.tensor)
            if !json { progress("classifying \(start + 1)-\(start + chunk.count) of \(images.count)") }
            allLogits += try classifier.logits(chunk).flatMap { $0 }
            if start == 0, Environment.check, let device {
                if let node = try GraphCheck.firstDivergence(graph: graph, device: device, input: try classifier.batchInput(chunk),
                                                             kernels: try kernels.choice()) {
                    FileHandle.standardError.write(Data("BOSSNET_CHECK: first divergence at \(node.name) (\(node.op) \(node.shape)): relative L2 error \(node.relativeL2)\n".utf8))
                    throw ExitCode(1)
                }
                FileHandle.standardError.write(Data("BOSSNET_CHECK: every node matches its CPU reference.\n".utf8))
            }
        }
        if !json { progressDone() }
        if let logits {
            try writing(logits) { try NumPyArray(shape: [images.count, classes], values: allLogits).write(to: URL(fileURLWithPath: logits)) }
            if !failed.isEmpty { note("--logits \(logits): \(images.count) rows, for the inputs that could be read") }
        }

        struct Prediction: Encodable { let class_index: Int; let label: String; let probability: Double; let logit: Float }
        struct Result: Encodable { let input: String; let top: [Prediction] }
        let results = images.enumerated().map { index, image -> Result in
            let row = Array(allLogits[(index * classes)..<((index + 1) * classes)])
            let best = Classifier.top(row, k: top)
            return Result(input: image.name, top: zip(best.indices, best.probabilities).map { index, probability in
                Prediction(class_index: index, label: ImageNetLabels.names[index], probability: probability, logit: row[index])
            })
        }
        if let device, !reportValidation(device.instance) { throw ExitCode(1) }
        if json {
            struct Output: Encodable {
                let model: String
                let weights: String?
                let synthetic_weights: Bool
                let input_size: Int
                let device: String
                let results: [Result]
                let errors: [InputFailure]
            }
            try printJSON(Output(model: model.name, weights: weights, synthetic_weights: weights == nil, input_size: inputSize,
                                 device: device?.info.name ?? "CPU reference", results: results, errors: failed))
            if !failed.isEmpty { throw ExitCode(1) }
            return
        }
        for result in results {
            print(result.input)
            for prediction in result.top {
                print(String(format: "  %6.2f%%  %4d  %@", prediction.probability * 100, prediction.class_index, prediction.label))
            }
        }
        if weights == nil { print("(synthetic weights: these classes mean nothing)") }
        if !failed.isEmpty {
            note("\(failed.count) of \(inputs.count) inputs could not be read: \(failed.map(\.input).joined(separator: ", "))")
            throw ExitCode(1)
        }
    }

    /// One input as preprocessed images: an .npy (by its first bytes) of one or more, or a PNG or JPEG.
    private func load(_ path: String) throws -> [(name: String, tensor: [Float])] {
        let url = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: path) else { throw ImageError("\(path) does not exist") }
        guard ImageFormat(contentsOf: url) == .npy else {
            return [(path, Preprocess.evaluationTensor(try RGBImage(contentsOf: url), inputSize: inputSize))]
        }
        let array = try NumPyArray(contentsOf: url)
        if let bad = array.firstNonFinite {
            let message = "\(path): element \(bad.index) is \(bad.value) (NaN or infinity)"
            guard allowNonfinite else { throw ImageError("\(message); fix the input, or pass --allow-nonfinite to run anyway") }
            note("warning: \(message); running anyway (--allow-nonfinite)")
        }
        let single = [3, inputSize, inputSize]
        if array.shape == single { return [(path, array.values)] }
        guard array.shape.count == 4, Array(array.shape.dropFirst()) == single else {
            throw ImageError("\(path) has shape \(array.shape); with --input-size \(inputSize) it must be [3, \(inputSize), \(inputSize)] or [N, 3, \(inputSize), \(inputSize)].")
        }
        let size = single.reduce(1, *)
        return (0..<array.shape[0]).map { index in ("\(path)[\(index)]", Array(array.values[(index * size)..<((index + 1) * size)])) }
    }
}

/// An input that could not be read, and why.
struct InputFailure: Encodable {
    let input: String
    let reason: String
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a PyTorch checkpoint to safetensors (float32, names kept).",
        discussion: "Writes the state dict classify would use: 'model' (or 'model_ema' with --ema, or 'state_dict', or a bare state dict), with any 'module.' prefix removed.")

    @Argument(help: "The .pth checkpoint.")
    var input: String

    @Argument(help: "The .safetensors file to write.")
    var output: String

    @Flag(help: "Convert the EMA weights ('model_ema').")
    var ema = false

    @OptionGroup var modelSelection: ModelSelection

    @Flag(help: "Check the state dict against --model/--arch before writing.")
    var check = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: input) else { throw ValidationError("\(input) does not exist.") }
        if OutputKind.safetensors.matches(firstBytes(of: URL(fileURLWithPath: input))) {
            throw ValidationError("\(input) is already a safetensors file: there is nothing to convert (classify and eval read it as it is).")
        }
        try checkOutput(output, option: "OUTPUT", kind: .safetensors, inputs: [input])
    }

    func run() throws {
        do {
            let state = try TorchCheckpoint.stateDict(at: URL(fileURLWithPath: input), ema: ema)
            if check { _ = try CheckpointWeights(state: state, model: modelSelection.resolve()) }
            try writing(output) { try SafeTensors.write(state, to: URL(fileURLWithPath: output)) }
            print("wrote \(state.count) tensors (\(state.tensors.reduce(0) { $0 + $1.values.count }) values) to \(output)")
        } catch let error as ExitCode { throw error } catch { throw report(error) }
    }
}
