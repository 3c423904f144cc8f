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

    @Flag(help: "With --json, include the device's extension names.")
    var verbose = false

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
        for input in inputs {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ValidationError(
                    "\(input) is a folder: classify takes image and .npy files (give them, e.g. \(input)/*.jpg). To measure accuracy over a labelled folder, use `bossnet eval \(input)`."
                )
            }
        }
        guard (1...1000).contains(top) else { throw ValidationError("--top must be between 1 and 1000.") }
        guard (1...256).contains(batch) else { throw ValidationError("--batch must be between 1 and 256.") }
        if cpu && deviceSelection.device != nil { throw ValidationError("Give --device or --cpu, not both.") }
        _ = try kernels.choice()
        if let logits { try checkOutput(logits, option: "--logits", kind: .npy, inputs: inputs) }
        try weightsSelection.validate(requested: try modelSelection.requested())
    }

    func run() throws {
        do { try classify() } catch let error as ExitCode { throw error } catch { throw report(error) }
    }

    private func classify() throws {
        // The inputs first: a file that cannot be read is reported before any weights are made or read.
        let (images, failed) = readInputs()
        guard !images.isEmpty else {
            note("error: none of the \(inputs.count) inputs could be read; nothing to classify.")
            throw ExitCode(1)
        }
        let loaded = try weightsSelection.load(requested: try modelSelection.requested())
        let model = loaded.model
        let graph = try model.graph(batch: min(batch, images.count), inputSize: inputSize, weights: loaded.weights)
        let device = cpu ? nil : try deviceSelection.open()
        let classifier = try Classifier(graph: graph, device: device, kernels: try kernels.choice())
        let tensors = images.map(\.tensor)
        if Environment.check, let device {
            try checkAgainstReference(graph: graph, device: device, classifier: classifier, tensors: tensors)
        }
        let allLogits = try classifier.logits(all: tensors) { done, total in progress("classified \(done) of \(total)")
        }
        progressDone()
        var logitsWritten = true
        if let logits {
            let array = NumPyArray(shape: [images.count, classifier.classes], values: allLogits.flatMap { $0 })
            logitsWritten = saveKeepingResults(array, to: logits)
            if logitsWritten, !failed.isEmpty {
                note("--logits \(logits): \(images.count) rows, for the inputs that could be read")
            }
        }

        // ImageNet's names for a 1000-class head; a head trained on other classes is named by index.
        let labels = classifier.classes == ImageNetLabels.names.count ? ImageNetLabels.names : []
        let results = zip(images, allLogits).map { image, row in
            ClassifyResult(input: image.name, top: Classifier.predictions(row, top: top, labels: labels))
        }
        if let device, !reportValidation(device.instance) { throw ExitCode(1) }
        if json {
            try printJSON(
                ClassifyOutput(
                    model: model.name, weights: loaded.label, weights_sha256: loaded.digest.hex,
                    synthetic_weights: loaded.isSynthetic, input_size: inputSize,
                    device: device?.info, results: results, errors: failed),
                verbose: verbose)
        } else {
            printResults(results, loaded: loaded)
        }
        if !failed.isEmpty || !logitsWritten { throw ExitCode(1) }
    }

    /// Every input as one or more preprocessed images, and the inputs that could not be read (each reported).
    private func readInputs() -> ([InputFile.Image], [InputFailure]) {
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
                note("error: \(error)\(hint)")
                failed.append(InputFailure(input: path, reason: "\(error)"))
            }
        }
        return (images, failed)
    }

    /// BOSSNET_CHECK: the first batch node by node against the CPU reference, then end to end.
    private func checkAgainstReference(
        graph: Graph, device: VulkanDevice, classifier: Classifier, tensors: [[Float]]
    ) throws {
        let first = try classifier.batchInput(Array(tensors.prefix(classifier.batch)))
        let verdict = try GraphCheck.run(graph: graph, device: device, input: first, kernels: try kernels.choice())
        note("BOSSNET_CHECK: \(verdict)")
        if !verdict.passes { throw ExitCode(1) }
    }

    private func printResults(_ results: [ClassifyResult], loaded: LoadedWeights) {
        for result in results {
            print(result.input)
            for prediction in result.top {
                print(
                    String(
                        format: "  %6.2f%%  %4d  %@", prediction.probability * 100, prediction.classIndex,
                        prediction.label))
            }
        }
        let weights = loaded.label.map { "weights \($0)" } ?? "synthetic weights: these classes mean nothing"
        print("(\(loaded.model.name), \(weights), \(loaded.digest))")
    }
}

/// One input's classes, as `classify` prints them.
struct ClassifyResult: Encodable {
    let input: String
    let top: [Prediction]
}

/// What `classify --json` prints.
struct ClassifyOutput: Encodable {
    let model: String
    /// The weights file as given, or the published file's name; null for synthetic weights.
    let weights: String?
    /// The SHA-256 of the weights as bound (``WeightsDigest``).
    let weights_sha256: String
    let synthetic_weights: Bool
    let input_size: Int
    /// As `bossnet devices --json` shows it; null on the CPU reference.
    let device: DeviceInfo?
    let results: [ClassifyResult]
    let errors: [InputFailure]
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
