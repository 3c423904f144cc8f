import ArgumentParser
import Checkpoint
import Evaluation
import Foundation
import Kernels
import Models
import NetworkGraph
import Training
import VulkanCompute

struct Train: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train or fine-tune a model by the authors' recipe (their retraining main.py's flags and defaults).",
        discussion: """
            Reads an ImageFolder (--data-path with train/ and val/, one folder per class, PNG or JPEG). Each epoch \
            trains, writes checkpoint.pth in --output_dir (the authors' layout: model, optimizer, lr_scheduler, \
            epoch, model_ema, args; torch.load reads it), validates the model and its EMA, and appends a JSON line \
            to log.txt under their keys. Ctrl-C or SIGTERM finishes the step and stops, keeping the last whole \
            checkpoint; --resume continues from it. From scratch the model starts from the authors' initialisation; \
            --weights starts from a checkpoint (with --num-classes a new classifier head, from the folder's classes).
            """)

    @OptionGroup var deviceSelection: DeviceSelection

    @Option(help: "The model: bossnet_T0, bossnet_T0_nose, bossnet_T1, or an architecture (see `bossnet info --help`).")
    var model = "bossnet_T0"

    @Option(help: "A folder with train/ and val/ below it, each with one folder of images per class.")
    var dataPath: String

    @Option(help: "The input side in pixels (32 and below: RandomCrop with padding 4 and no resize, as theirs).")
    var inputSize = 224

    @Option(help: "Images a step.") var batchSize = 64
    @Option(help: "Epochs to train.") var epochs = 300
    @Option(help: "The learning rate, scaled by batch / 512 as theirs.") var lr = 5e-4
    @Option(help: "Weight decay (none on 1-d parameters and biases).") var weightDecay = 0.05
    @Option(help: "The optimizer: adamw or sgd (Nesterov momentum, as timm's).") var opt = "adamw"
    @Option(help: "SGD's momentum.") var momentum = 0.9
    @Option(help: "Clip gradients to this global L2 norm.") var clipGrad: Double?
    @Option(help: "The schedule: cosine.") var sched = "cosine"
    @Option(help: "The warmup's first learning rate.") var warmupLr = 1e-6
    @Option(help: "Warmup epochs.") var warmupEpochs = 5
    @Option(help: "The schedule's lowest learning rate.") var minLr = 1e-5
    @Option(help: "Cooldown epochs at --min-lr past --epochs in the schedule.") var cooldownEpochs = 10
    @Option(help: "Label smoothing.") var smoothing = 0.1
    @Option(help: "Stochastic depth's rate (block i of 16 drops with rate * i / 15).") var dropPath = 0.1
    @Flag(inversion: .prefixedNo, help: "Keep an exponential moving average of the model (timm's ModelEma).")
    var modelEma = true
    @Option(help: "The model average's decay.") var modelEmaDecay = 0.99996
    @Option(help: "RandAugment's policy, or none.") var aa = "rand-m9-mstd0.5-inc1"
    @Option(help: "Colour jitter's strength (when RandAugment is off).") var colorJitter = 0.4
    @Option(help: "Random erasing's probability.") var reprob = 0.25
    @Option(help: "Mixup's alpha (0: off).") var mixup = 0.8
    @Option(help: "Cutmix's alpha (0: off).") var cutmix = 1.0
    @Option(help: "The probability a batch is mixed.") var mixupProb = 1.0
    @Option(help: "The probability a mixed batch takes cutmix when both are on.") var mixupSwitchProb = 0.5
    @Flag(inversion: .prefixedNo, help: "Repeated augmentation (their RASampler: each image three times an epoch).")
    var repeatedAug = true
    @Option(help: "The seed of every random draw: the same seed gives the same run.") var seed: UInt64 = 0
    @Option(help: "A checkpoint.pth to continue from (ours or the authors' main.py's).") var resume: String?
    @Option(name: .customLong("output_dir"), help: "Where checkpoint.pth and log.txt go.") var outputDir = "output"
    @Flag(help: "Only validate the --resume checkpoint's model and EMA.") var eval = false
    @Option(help: "Start from these weights: a .pth or .safetensors file, or 'published'.") var weights: String?
    @Option(help: "The classifier's classes (default: the folder's); another count than the weights' makes a new head.")
    var numClasses: Int?
    @OptionGroup var kernels: KernelFamilyOption
    @Option(
        help:
            "Devices to train on side by side (data parallel, a batch of --batch-size each, gradients averaged), by their numbers in `bossnet devices`."
    ) var devices: String?

    /// The device numbers of --devices, in order.
    var deviceNumbers: [Int]? { devices.map { $0.split(separator: ",").compactMap { Int($0) } } }

    var recipe: TrainingRecipe {
        var recipe = TrainingRecipe(model: model, dataPath: dataPath)
        recipe.inputSize = inputSize
        (recipe.batchSize, recipe.epochs, recipe.lr, recipe.weightDecay) = (batchSize, epochs, lr, weightDecay)
        (recipe.opt, recipe.momentum, recipe.clipGrad, recipe.sched) = (opt, momentum, clipGrad, sched)
        (recipe.warmupLR, recipe.warmupEpochs, recipe.minLR) = (warmupLr, warmupEpochs, minLr)
        (recipe.cooldownEpochs, recipe.smoothing, recipe.dropPath) = (cooldownEpochs, smoothing, dropPath)
        (recipe.modelEMA, recipe.modelEMADecay, recipe.aa) = (modelEma, modelEmaDecay, aa)
        (recipe.colorJitter, recipe.reprob, recipe.mixup, recipe.cutmix) = (colorJitter, reprob, mixup, cutmix)
        (recipe.mixupProb, recipe.mixupSwitchProb) = (mixupProb, mixupSwitchProb)
        (recipe.repeatedAug, recipe.seed, recipe.outputDir) = (repeatedAug, seed, outputDir)
        recipe.numClasses = numClasses
        recipe.worldSize = max(deviceNumbers?.count ?? 1, 1)
        return recipe
    }

    func validate() throws {
        try validateInputSize(inputSize)
        if let problem = recipe.problems().first { throw ValidationError(problem) }
        if (mixup > 0 || cutmix > 0) && batchSize % 2 != 0 {
            throw ValidationError(
                "mixup and cutmix mix each image with the batch's flipped one: --batch-size must be even.")
        }
        do { _ = try Trainer.trainingDataPath(try kernels.choice()) } catch let error as TrainingError {
            throw ValidationError(error.description)
        }
        if eval && resume == nil {
            throw ValidationError("--eval validates the --resume checkpoint; give --resume FILE.")
        }
        if resume != nil && weights != nil { throw ValidationError("Give --resume or --weights, not both.") }
        if let devices,
            devices.split(separator: ",").isEmpty || devices.split(separator: ",").contains(where: { Int($0) == nil })
        {
            throw ValidationError(
                "--devices takes device numbers from `bossnet devices`, such as 0 or 0,1; got \(devices).")
        }
    }

    func run() async throws {
        let started = Date()
        do { try await train() } catch let error as ExitCode { throw error } catch {
            let code = report(error)
            // A failure mid-run (a lost device, a diverged loss, a full disk) keeps the last whole checkpoint.
            let checkpoint = URL(fileURLWithPath: outputDir).appendingPathComponent("checkpoint.pth")
            let written = try? checkpoint.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate
            if let written, written >= started {
                note(
                    "\(checkpoint.path) holds the last whole epoch; continue with the same command and --resume \(checkpoint.path)."
                )
            }
            throw code
        }
    }

    private func train() async throws {
        let recipe = self.recipe
        let set = try TrainingSet(dataPath: URL(fileURLWithPath: dataPath))
        let classes = numClasses ?? set.classes.count
        let model = Model(
            try Architecture.parse(self.model).with(classes: classes), name: try? Model(name: self.model).name)
        let devices = try deviceNumbers?.map { try openDevice(index: $0) } ?? [deviceSelection.open()]
        let device = devices[0]
        let resumed = try resume.map {
            try TrainingCheckpoint.read(
                URL(fileURLWithPath: $0), declarations: model.stateDictEntries(), optimizer: recipe.opt)
        }
        let trainer = try Trainer(
            recipe: recipe, model: model, weights: try startingWeights(model), set: set, devices: devices,
            resume: resumed, kernels: try kernels.choice())
        note(
            "\(model.name): \(formatThousands(try model.parameterCount())) parameters, \(classes) classes; "
                + "\(set.train.images.count) training and \(set.val.images.count) validation images; "
                + "\(trainer.stepsPerEpoch) steps an epoch on "
                + (devices.count > 1 ? "\(devices.count) devices side by side: " : "")
                + devices.map(\.info.name).joined(separator: ", "))
        if eval { return try await evaluateOnly(trainer) }
        let stopping = StopRequest()
        let handler = stopping.install()
        defer { handler.cancel() }
        let outcome = try await trainer.run(
            progress: showProgress, epochDone: { printEpoch($0) }, stop: { stopping.requested })
        progressDone()
        if !devices.allSatisfy({ reportValidation($0.instance) }) { throw ExitCode(1) }
        let checkpoint = URL(fileURLWithPath: outputDir).appendingPathComponent("checkpoint.pth").path
        if case let .interrupted(last) = outcome {
            note(
                last.map {
                    "stopped; \(checkpoint) holds epoch \($0). Continue with the same command and --resume \(checkpoint)."
                }
                    ?? "stopped before the first epoch ended; no checkpoint was written.")
            throw ExitCode(130)
        }
        note("done: \(checkpoint) and log.txt in \(outputDir)")
    }

    /// The weights the run starts from: --weights (a new classifier head where its classes differ), else the
    /// authors' initialisation.
    private func startingWeights(_ model: Model) throws -> any ParameterSource {
        let initial = try InitialWeights(model: model, seed: seed)
        guard let weights else { return initial }
        var selection = try WeightsSelection.parse(["--weights", weights, "--force-model"])
        selection.forceModel = true
        let loaded = try selection.load(requested: Model(model.architecture.with(classes: 1000), name: model.name))
        let replaced = try model.stateDictEntries().filter { entry in
            (try? loaded.weights.values(for: entry.name, shape: entry.shape)) == nil
                && !entry.name.hasSuffix("num_batches_tracked")
        }
        if !replaced.isEmpty {
            note(
                "a new classifier head for \(model.architecture.classes) classes: \(replaced.map(\.name).joined(separator: ", ")) start from the initialisation"
            )
        }
        return StartingWeights(loaded: loaded.weights, initial: initial)
    }

    private func evaluateOnly(_ trainer: Trainer) async throws {
        let model = try await trainer.validate(trainer.weights())
        note(
            String(
                format: "Accuracy of the network on the %d test images: %.1f%%", trainer.set.val.images.count,
                model.acc1))
        if let averaged = try trainer.session.averaged() {
            let ema = try await trainer.validate(averaged.values)
            note(
                String(
                    format: "Accuracy of the ema network on the %d test images: %.1f%%", trainer.set.val.images.count,
                    ema.acc1))
        }
    }

    private func showProgress(_ state: TrainingProgress) {
        let width = 24, filled = width * state.step / max(state.steps, 1)
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let line = String(
            format: "epoch %d/%d [%@] %d/%d  loss %.4f  lr %.3g  %.1f img/s  ETA %@", state.epoch + 1,
            state.epochs, bar, state.step, state.steps, state.loss, state.learningRate,
            state.imagesPerSecond, clockDuration(state.secondsLeft))
        if standardErrorIsTerminal { progress(line) } else if state.step == state.steps { note(line) }
    }

    private func printEpoch(_ record: EpochRecord) {
        progressDone()
        var line = String(
            format: "epoch %d: train loss %.4f, lr %.3g, %.1f img/s; val loss %.4f, top-1 %.2f%%, top-5 %.2f%%",
            record.epoch, record.trainLoss, record.trainLR, record.trainThroughput, record.testLoss, record.testAcc1,
            record.testAcc5)
        if let acc1 = record.testEMAAcc1 { line += String(format: "; EMA top-1 %.2f%%", acc1) }
        // Written at once (not through print's buffer), so that a file or pipe sees each epoch as it ends.
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}

/// Given weights where they fit the model, the initialisation where they do not (a new classifier head).
private struct StartingWeights: ParameterSource {
    let loaded: CheckpointWeights
    let initial: InitialWeights
    func values(for name: String, shape: [Int]) throws -> [Float] {
        try (try? loaded.values(for: name, shape: shape)) ?? initial.values(for: name, shape: shape)
    }
}

/// Ctrl-C and SIGTERM: the first asks the run to stop after its step, a second ends the process at once.
final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var requested: Bool { lock.withLock { count > 0 } }

    func install() -> InterruptHandler {
        onSignals { [self] in
            let seen = lock.withLock {
                count += 1
                return count
            }
            if seen > 1 { exit(130) }
            note("\nstopping after this step (again to abandon it)...")
        }
    }
}
