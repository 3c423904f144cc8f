import Checkpoint
import Foundation
import Kernels
import NetworkGraph

/// A training run's checkpoint in the authors' layout (their main.py's `checkpoint.pth`): `model` and `model_ema`
/// state dicts, `optimizer` as PyTorch's AdamW or SGD `state_dict()` over timm's two parameter groups (no weight decay
/// first, then weight decay), `lr_scheduler` as timm 0.3's CosineLRScheduler `state_dict()`, `epoch` (the last one
/// finished) and `args` (a plain dict). `torch.load(..., weights_only=True)` reads it; their `--resume` continues from it.
public struct TrainingCheckpoint: Sendable {
    /// The last epoch finished (0 for the first).
    public var epoch: Int
    /// Parameters and running statistics by state-dict name; `num_batches_tracked` of every BatchNorm.
    public var model: [String: [Float]]
    public var batchesTracked: Int64
    public var optimizer: TrainingSession.OptimizerState
    /// The model average's values and `num_batches_tracked`, when the run keeps one.
    public var average: (values: [String: [Float]], batchesTracked: Int64)?

    public init(
        epoch: Int, model: [String: [Float]], batchesTracked: Int64, optimizer: TrainingSession.OptimizerState,
        average: (values: [String: [Float]], batchesTracked: Int64)?
    ) {
        (self.epoch, self.model, self.batchesTracked) = (epoch, model, batchesTracked)
        (self.optimizer, self.average) = (optimizer, average)
    }

    /// The trainable parameters in the order of timm's parameter groups: those without weight decay (1-d and biases),
    /// then the rest, each in the model's order; PyTorch numbers them so in `state` and `params`.
    static func groups(_ declarations: [ParameterDeclaration]) -> (noDecay: [String], decay: [String]) {
        let trainable = declarations.filter(\.trainable)
        return (
            trainable.filter { !takesWeightDecay(name: $0.name, shape: $0.shape) }.map(\.name),
            trainable.filter { takesWeightDecay(name: $0.name, shape: $0.shape) }.map(\.name)
        )
    }

    /// The checkpoint as torch.save pickles it, for a model of `declarations` trained by `recipe`.
    public func torchValue(_ declarations: [ParameterDeclaration], recipe: TrainingRecipe) -> TorchValue {
        let schedule = recipe.schedule
        var entries = [
            TorchEntry("model", Self.stateDict(declarations, model, batchesTracked)),
            TorchEntry("optimizer", optimizerValue(declarations, recipe: recipe)),
            TorchEntry("lr_scheduler", Self.scheduler(schedule, groups: 2, seed: recipe.seed)),
            TorchEntry("epoch", .int(epoch)),
        ]
        entries.append(
            TorchEntry("model_ema", average.map { Self.stateDict(declarations, $0.values, $0.batchesTracked) } ?? .none)
        )
        entries.append(TorchEntry("args", recipe.arguments))
        return .dict(entries)
    }

    static func stateDict(_ declarations: [ParameterDeclaration], _ values: [String: [Float]], _ tracked: Int64)
        -> TorchValue
    {
        .orderedDict(
            declarations.map { declaration in
                if declaration.name.hasSuffix("num_batches_tracked") {
                    return TorchEntry(declaration.name, .int64(shape: [], values: [tracked]))
                }
                let found = values[declaration.name] ?? [Float](repeating: 0, count: declaration.count)
                return TorchEntry(declaration.name, .float32(shape: declaration.shape, values: found))
            })
    }

    /// PyTorch's optimizer `state_dict()`: per-parameter state by index, and the two groups with the rate the next
    /// epoch trains at (what the authors' scheduler left in them).
    private func optimizerValue(_ declarations: [ParameterDeclaration], recipe: TrainingRecipe) -> TorchValue {
        let (noDecay, decay) = Self.groups(declarations)
        let shapes = Dictionary(declarations.map { ($0.name, $0.shape) }) { first, _ in first }
        var state: [TorchEntry] = []
        for (index, name) in (noDecay + decay).enumerated() {
            guard let buffers = optimizer.buffers[name], optimizer.steps > 0 else { continue }
            let shape = shapes[name] ?? [buffers[0].count]
            let tensors = buffers.map { TorchValue.float32(shape: shape, values: $0) }
            let fields: [TorchEntry] =
                recipe.opt == "sgd"
                ? [TorchEntry("momentum_buffer", tensors[0])]
                : [
                    TorchEntry("step", .float32(shape: [], values: [Float(optimizer.steps)])),
                    TorchEntry("exp_avg", tensors[0]), TorchEntry("exp_avg_sq", tensors[1]),
                ]
            state.append(TorchEntry(.int(index), .dict(fields)))
        }
        let rate = recipe.schedule.trainingRate(epoch: epoch + 1)
        let groups = [(noDecay, 0, 0.0), (decay, noDecay.count, recipe.weightDecay)].map { names, first, weightDecay in
            TorchValue.dict(
                Self.groupSettings(recipe, rate: rate, weightDecay: weightDecay)
                    + [TorchEntry("params", .list((first..<(first + names.count)).map(TorchValue.int)))])
        }
        return .dict([TorchEntry("state", .dict(state)), TorchEntry("param_groups", .list(groups))])
    }

    private static func groupSettings(_ recipe: TrainingRecipe, rate: Double, weightDecay: Double) -> [TorchEntry] {
        let common = [
            TorchEntry("lr", .float(rate)), TorchEntry("weight_decay", .float(weightDecay)),
            TorchEntry("maximize", .bool(false)), TorchEntry("foreach", .none),
            TorchEntry("differentiable", .bool(false)), TorchEntry("fused", .none),
            TorchEntry("initial_lr", .float(recipe.scaledLearningRate)),
        ]
        if recipe.opt == "sgd" {
            return common + [
                TorchEntry("momentum", .float(recipe.momentum)), TorchEntry("dampening", .float(0)),
                TorchEntry("nesterov", .bool(true)),
            ]
        }
        return common + [
            TorchEntry("betas", .tuple([.float(0.9), .float(0.999)])), TorchEntry("eps", .float(1e-8)),
            TorchEntry("amsgrad", .bool(false)), TorchEntry("capturable", .bool(false)),
        ]
    }

    /// timm 0.3's CosineLRScheduler `state_dict()` (its attributes but the optimizer) for `schedule`.
    static func scheduler(_ schedule: CosineSchedule, groups: Int, seed: UInt64) -> TorchValue {
        let base = schedule.baseRate
        let warmupStep = schedule.warmupEpochs > 0 ? (base - schedule.warmupRate) / Double(schedule.warmupEpochs) : 1
        let perGroup = { (value: Double) in TorchValue.list([TorchValue](repeating: .float(value), count: groups)) }
        let entries: [(String, TorchValue)] = [
            ("param_group_field", .string("lr")), ("_initial_param_group_field", .string("initial_lr")),
            ("base_values", perGroup(base)), ("metric", .none), ("noise_range_t", .none), ("noise_pct", .float(0.67)),
            ("noise_type", .string("normal")), ("noise_std", .float(1.0)),
            ("noise_seed", .int(Int(truncatingIfNeeded: seed))),
            ("t_initial", .int(schedule.epochs)), ("t_mul", .float(1.0)), ("lr_min", .float(schedule.minimumRate)),
            ("decay_rate", .float(0.1)), ("cycle_limit", .int(1)), ("warmup_t", .int(schedule.warmupEpochs)),
            ("warmup_lr_init", .float(schedule.warmupRate)), ("warmup_prefix", .bool(false)),
            ("t_in_epochs", .bool(true)),
            (
                "warmup_steps",
                schedule.warmupEpochs > 0 ? perGroup(warmupStep) : .list(Array(repeating: .int(1), count: groups))
            ),
        ]
        return .dict(entries.map { TorchEntry($0.0, $0.1) })
    }
}

extension TrainingCheckpoint {
    /// Reads a checkpoint of this layout, ours or the authors' main.py's, for a model of `declarations` trained with
    /// `optimizer` (`adamw` or `sgd`): the weights, the average when it holds one, the optimizer's state by parameter
    /// name and the last epoch finished.
    public static func read(_ url: URL, declarations: [ParameterDeclaration], optimizer: String) throws
        -> TrainingCheckpoint
    {
        let (root, storages) = try TorchCheckpoint.open(url)
        guard case let .dict(top) = root, case let .int(epoch)? = top["epoch"] else {
            throw CheckpointError.malformed(
                "\(url.path) is not a training checkpoint: it has no 'epoch' (resume takes a checkpoint.pth written by training)"
            )
        }
        let model = try TorchCheckpoint.stateDict(at: url)
        var average: (values: [String: [Float]], batchesTracked: Int64)?
        if case .dict? = top["model_ema"] {
            let ema = try TorchCheckpoint.stateDict(at: url, ema: true)
            average = (values(ema), tracked(ema))
        }
        guard case let .dict(saved)? = top["optimizer"], case let .dict(state)? = saved["state"] else {
            throw CheckpointError.malformed("\(url.path) has no optimizer state ('optimizer' with 'state')")
        }
        let (noDecay, decay) = groups(declarations)
        let names = noDecay + decay
        let fields = optimizer == "sgd" ? ["momentum_buffer"] : ["exp_avg", "exp_avg_sq"]
        var buffers: [String: [[Float]]] = [:]
        var steps = 0
        for (key, value) in state.entries {
            guard case let .int(index) = key, names.indices.contains(index), case let .dict(entry) = value else {
                throw CheckpointError.malformed("the optimizer's state has an entry \(key.kind) that no parameter has")
            }
            buffers[names[index]] = try fields.map { field in
                guard case let .tensor(reference)? = entry[field] else {
                    throw CheckpointError.malformed(
                        "the optimizer's state of \(names[index]) lacks '\(field)': was it saved by another optimizer than --opt \(optimizer)?"
                    )
                }
                return try storages.tensor(reference, name: field).values
            }
            switch entry["step"] {
            case let .tensor(reference)?: steps = Int(try storages.tensor(reference, name: "step").values.first ?? 0)
            case let .int(count)?: steps = count
            case let .float(count)?: steps = Int(count)
            default: break
            }
        }
        if optimizer == "sgd" && !buffers.isEmpty { steps = max(steps, 1) }
        return TrainingCheckpoint(
            epoch: epoch, model: values(model), batchesTracked: tracked(model),
            optimizer: TrainingSession.OptimizerState(steps: steps, buffers: buffers), average: average)
    }

    private static func values(_ state: StateDict) -> [String: [Float]] {
        Dictionary(state.tensors.map { ($0.name, $0.values) }) { first, _ in first }
    }

    private static func tracked(_ state: StateDict) -> Int64 {
        Int64(state.tensors.first { $0.name.hasSuffix("num_batches_tracked") }?.values.first ?? 0)
    }
}
