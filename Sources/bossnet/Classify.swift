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

    @OptionGroup var weightsSelection: WeightsSelection

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
        guard !inputs.isEmpty else {
            throw ValidationError("Give at least one INPUT (a PNG or JPEG image, or an .npy file).")
        }
        guard (1...1000).contains(top) else { throw ValidationError("--top must be between 1 and 1000.") }
        guard (1...256).contains(batch) else { throw ValidationError("--batch must be between 1 and 256.") }
        if cpu && deviceSelection.device != nil { throw ValidationError("Give --device or --cpu, not both.") }
        _ = try kernels.choice()
        if let logits { try checkOutput(logits, option: "--logits", kind: .npy, inputs: inputs) }
        try weightsSelection.validate(model: try modelSelection.resolve())
    }

    func run() throws {
        do { try classify() } catch let error as ExitCode { throw error } catch { throw report(error) }
    }

    private func classify() throws {
        let model = try modelSelection.resolve()
        let source: any ParameterSource
        if let loaded = try weightsSelection.load(for: model) {
            source = loaded
        } else {
            FileHandle.standardError.write(
                Data(
                    """
                    WARNING: no --weights given: the weights are SYNTHETIC and the classes below mean nothing.
                             Pass --weights published (the authors' checkpoint, downloaded once) or a checkpoint file.\n
                    """.utf8))
            source = try SyntheticWeights(calibratedFor: model)
        }

        // Every input as one or more preprocessed images; an input that cannot be read is reported and skipped.
        var images: [InputFile.Image] = []
        var failed: [InputFailure] = []
        let nonFinite: InputFile.NonFinite =
            allowNonfinite
            ? .allow({ index, value in
                note("warning: element \(index) is \(value) (NaN or infinity); running anyway (--allow-nonfinite)")
            }) : .reject
        for path in inputs {
            do {
                images += try InputFile.load(URL(fileURLWithPath: path), inputSize: inputSize, nonFinite: nonFinite)
            } catch {
                let hint =
                    if case .nonFinite = error as? InputError {
                        "; fix the input, or pass --allow-nonfinite to run anyway"
                    } else { "" }
                FileHandle.standardError.write(Data("error: \(error)\(hint)\n".utf8))
                failed.append(InputFailure(input: path, reason: "\(error)"))
            }
        }
        guard !images.isEmpty else { throw ExitCode(1) }

        let graph = try model.graph(batch: min(batch, images.count), inputSize: inputSize, weights: source)
        let device = cpu ? nil : try deviceSelection.open()
        let classifier = try Classifier(graph: graph, device: device, kernels: try kernels.choice())
        let tensors = images.map(\.tensor)
        if Environment.check, let device {
            let first = try classifier.batchInput(Array(tensors.prefix(classifier.batch)))
            if let node = try GraphCheck.firstDivergence(
                graph: graph, device: device, input: first, kernels: try kernels.choice())
            {
                FileHandle.standardError.write(
                    Data(
                        "BOSSNET_CHECK: first divergence at \(node.name) (\(node.op) \(node.shape)): relative L2 error \(node.relativeL2)\n"
                            .utf8))
                throw ExitCode(1)
            }
            FileHandle.standardError.write(Data("BOSSNET_CHECK: every node matches its CPU reference.\n".utf8))
        }
        let allLogits = try classifier.logits(all: tensors) { done, total in progress("classified \(done) of \(total)")
        }
        progressDone()
        if let logits {
            try writing(logits) {
                try NumPyArray(shape: [images.count, classifier.classes], values: allLogits.flatMap { $0 }).write(
                    to: URL(fileURLWithPath: logits))
            }
            if !failed.isEmpty { note("--logits \(logits): \(images.count) rows, for the inputs that could be read") }
        }

        struct Result: Encodable { let input: String; let top: [Prediction] }
        let results = zip(images, allLogits).map { image, row in
            Result(input: image.name, top: Classifier.predictions(row, top: top))
        }
        if let device, !reportValidation(device.instance) { throw ExitCode(1) }
        let weightsLabel = weightsSelection.label(for: model)
        if json {
            struct Output: Encodable {
                let model: String
                let weights: String?
                let synthetic_weights: Bool
                let input_size: Int
                /// As `bossnet devices --json` shows it; null on the CPU reference.
                let device: DeviceInfo?
                let results: [Result]
                let errors: [InputFailure]
            }
            try printJSON(
                Output(
                    model: model.name, weights: weightsLabel, synthetic_weights: weightsLabel == nil,
                    input_size: inputSize,
                    device: device?.info, results: results, errors: failed))
            if !failed.isEmpty { throw ExitCode(1) }
            return
        }
        for result in results {
            print(result.input)
            for prediction in result.top {
                print(
                    String(
                        format: "  %6.2f%%  %4d  %@", prediction.probability * 100, prediction.classIndex,
                        prediction.label))
            }
        }
        if weightsLabel == nil { print("(synthetic weights: these classes mean nothing)") }
        if !failed.isEmpty {
            note(
                "\(failed.count) of \(inputs.count) inputs could not be read: \(failed.map(\.input).joined(separator: ", "))"
            )
            throw ExitCode(1)
        }
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
        discussion:
            "Writes the state dict classify would use: 'model' (or 'model_ema' with --ema, or 'state_dict', or a bare state dict), with any 'module.' prefix removed."
    )

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
            throw ValidationError(
                "\(input) is already a safetensors file: there is nothing to convert (classify and eval read it as it is)."
            )
        }
        try checkOutput(output, option: "OUTPUT", kind: .safetensors, inputs: [input])
    }

    func run() throws {
        do {
            let state = try TorchCheckpoint.stateDict(at: URL(fileURLWithPath: input), ema: ema)
            if check { _ = try CheckpointWeights(state: state, model: modelSelection.resolve()) }
            try writing(output) { try SafeTensors.write(state, to: URL(fileURLWithPath: output)) }
            print(
                "wrote \(state.count) tensors (\(state.tensors.reduce(0) { $0 + $1.values.count }) values) to \(output)"
            )
        } catch let error as ExitCode { throw error } catch { throw report(error) }
    }
}
