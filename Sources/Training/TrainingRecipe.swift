import Checkpoint
import Foundation
import Kernels

/// A training run's settings, named and defaulted as the authors' `retraining_hytra/main.py` names and defaults its
/// flags (their DeiT-derived recipe), plus what fine-tuning needs.
public struct TrainingRecipe: Sendable, Equatable, Codable {
    /// The model's registry name or architecture text, and the ImageFolder with `train/` and `val/`.
    public var model: String
    public var dataPath: String
    public var inputSize = 224
    public var batchSize = 64
    public var epochs = 300
    /// `--lr` as given; the optimizer takes it scaled by batch / 512 (``scaledLearningRate``).
    public var lr = 5e-4
    public var weightDecay = 0.05
    /// `adamw` or `sgd` (timm's SGD: Nesterov momentum).
    public var opt = "adamw"
    public var momentum = 0.9
    public var clipGrad: Double?
    public var sched = "cosine"
    public var warmupLR = 1e-6
    public var warmupEpochs = 5
    public var minLR = 1e-5
    public var cooldownEpochs = 10
    public var smoothing = 0.1
    public var dropPath = 0.1
    public var modelEMA = true
    public var modelEMADecay = 0.99996
    /// RandAugment's policy; `none` or empty for none.
    public var aa = "rand-m9-mstd0.5-inc1"
    public var colorJitter = 0.4
    public var reprob = 0.25
    public var mixup = 0.8
    public var cutmix = 1.0
    public var mixupProb = 1.0
    public var mixupSwitchProb = 0.5
    /// Their RASampler: each image three times an epoch, `floor(n / 256) * 256` images an epoch.
    public var repeatedAug = true
    public var seed: UInt64 = 0
    public var outputDir = "output"
    /// The classifier's classes: the folder's when nil.
    public var numClasses: Int?

    /// The authors' defaults for `model` on the images at `dataPath`.
    public init(model: String, dataPath: String) { (self.model, self.dataPath) = (model, dataPath) }

    /// The devices the run trains on side by side (their `world_size`): each takes a batch of `batchSize`.
    public var worldSize = 1

    /// The optimizer's base rate: `lr * batch * world size / 512`, the authors' linear scaling rule.
    public var scaledLearningRate: Double { CosineSchedule.scaled(lr, batch: batchSize * worldSize) }

    /// Whether RandAugment is asked for.
    public var randAugment: Bool { !(aa.isEmpty || aa.lowercased() == "none") }

    /// The training transform of these settings: RandAugment when `aa` names a policy, else colour jitter (timm's
    /// rule); erasing with `reprob`.
    public func transform() throws -> TrainingTransform {
        TrainingTransform(
            inputSize: inputSize, erasing: reprob, randAugment: randAugment ? try RandAugment(policy: aa) : nil,
            colorJitter: randAugment ? 0 : colorJitter)
    }

    /// Whether mixup or cutmix mixes the batches (their `mixup_active`).
    public var mixes: Bool { mixup > 0 || cutmix > 0 }

    /// The learning rate per epoch: timm 0.3's cosine with warmup, as `--sched cosine` builds it.
    public var schedule: CosineSchedule {
        CosineSchedule(
            baseRate: scaledLearningRate, epochs: epochs, warmupEpochs: warmupEpochs, warmupRate: warmupLR,
            minimumRate: minLR, cooldownEpochs: cooldownEpochs)
    }

    /// The optimizer at the learning rate `rate`.
    public func optimizer(rate: Double) -> TrainingOptimizer {
        opt == "sgd"
            ? .sgd(SGD(learningRate: rate, momentum: momentum, weightDecay: weightDecay, nesterov: true))
            : .adamw(AdamW(learningRate: rate, weightDecay: weightDecay))
    }

    /// What the settings cannot run, each problem as a sentence naming the flag; empty when they can.
    public func problems() -> [String] {
        var problems: [String] = []
        if batchSize < 1 { problems.append("--batch-size must be at least 1; got \(batchSize).") }
        if epochs < 1 { problems.append("--epochs must be at least 1; got \(epochs).") }
        if !(lr > 0 && lr.isFinite) { problems.append("--lr must be positive; got \(lr).") }
        if !(weightDecay >= 0 && weightDecay.isFinite) { problems.append("--weight-decay must be at least 0.") }
        if !["adamw", "sgd"].contains(opt) { problems.append("--opt takes adamw or sgd; got \(opt).") }
        if sched != "cosine" { problems.append("--sched takes cosine (the authors' schedule); got \(sched).") }
        if warmupEpochs < 0 || cooldownEpochs < 0 {
            problems.append("--warmup-epochs and --cooldown-epochs must be at least 0.")
        }
        if let clipGrad, !(clipGrad > 0) { problems.append("--clip-grad must be positive; got \(clipGrad).") }
        if !(0..<1).contains(smoothing) { problems.append("--smoothing must be in [0, 1); got \(smoothing).") }
        if !(0..<1).contains(dropPath) { problems.append("--drop-path must be in [0, 1); got \(dropPath).") }
        if !(0..<1).contains(modelEMADecay) { problems.append("--model-ema-decay must be in [0, 1).") }
        if !(mixup >= 0 && cutmix >= 0) { problems.append("--mixup and --cutmix must be at least 0.") }
        if !(0...1).contains(mixupProb) || !(0...1).contains(mixupSwitchProb) {
            problems.append("--mixup-prob and --mixup-switch-prob must be in [0, 1].")
        }
        if let numClasses, numClasses < 1 { problems.append("--num-classes must be at least 1.") }
        if randAugment {
            do { _ = try RandAugment(policy: aa) } catch { problems.append("\(error)") }
        } else if !(colorJitter >= 0 && colorJitter.isFinite) {
            problems.append("--color-jitter must be at least 0; got \(colorJitter).")
        }
        if !(0...1).contains(reprob) { problems.append("--reprob must be in [0, 1]; got \(reprob).") }
        return problems
    }

    /// The settings as the authors' `args` (a plain dict under their argparse names, `lr` scaled as their main.py
    /// leaves it), for the checkpoint.
    public var arguments: TorchValue {
        let optional: (Double?) -> TorchValue = { $0.map(TorchValue.float) ?? .none }
        let entries: [(String, TorchValue)] = [
            ("model", .string(model)), ("data_path", .string(dataPath)), ("data_set", .string("IMNET")),
            ("input_size", .int(inputSize)), ("batch_size", .int(batchSize)), ("epochs", .int(epochs)),
            ("lr", .float(scaledLearningRate)), ("weight_decay", .float(weightDecay)), ("opt", .string(opt)),
            ("opt_eps", .float(1e-8)), ("opt_betas", .none), ("momentum", .float(momentum)),
            ("clip_grad", optional(clipGrad)), ("sched", .string(sched)), ("warmup_lr", .float(warmupLR)),
            ("warmup_epochs", .int(warmupEpochs)), ("min_lr", .float(minLR)),
            ("cooldown_epochs", .int(cooldownEpochs)), ("smoothing", .float(smoothing)),
            ("drop", .float(0)), ("drop_path", .float(dropPath)), ("model_ema", .bool(modelEMA)),
            ("model_ema_decay", .float(modelEMADecay)), ("aa", .string(aa)), ("color_jitter", .float(colorJitter)),
            ("train_interpolation", .string("bicubic")), ("reprob", .float(reprob)), ("remode", .string("pixel")),
            ("recount", .int(1)), ("mixup", .float(mixup)), ("cutmix", .float(cutmix)),
            ("mixup_prob", .float(mixupProb)), ("mixup_switch_prob", .float(mixupSwitchProb)),
            ("mixup_mode", .string("batch")), ("repeated_aug", .bool(repeatedAug)), ("seed", .int(Int(seed))),
            ("output_dir", .string(outputDir)), ("nb_classes", numClasses.map(TorchValue.int) ?? .none),
            ("world_size", .int(worldSize)), ("distributed", .bool(worldSize > 1)),
        ]
        return .dict(entries.map { TorchEntry($0.0, $0.1) })
    }
}
