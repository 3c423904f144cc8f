import Checkpoint
import Evaluation
import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import VulkanCompute

/// What one epoch gave, under the keys of the authors' `log.txt` (one JSON object a line).
public struct EpochRecord: Codable, Sendable, Equatable {
    /// The epoch, from 0.
    public var epoch: Int
    /// The rate it trained at, its mean training loss over the steps, and training images a second.
    public var trainLR: Double
    public var trainLoss: Double
    public var trainThroughput: Double
    /// Validation of the model (``ValidationResult``): loss, top-1 and top-5 in percent.
    public var testLoss: Double
    public var testAcc1: Double
    public var testAcc5: Double
    /// The same for the model average, when the run keeps one.
    public var testEMALoss: Double?
    public var testEMAAcc1: Double?
    public var testEMAAcc5: Double?
    /// Learned parameters (`n_parameters`).
    public var parameters: Int

    enum CodingKeys: String, CodingKey {
        case epoch, trainLR = "train_lr", trainLoss = "train_loss", trainThroughput = "train_throughput"
        case testLoss = "test_loss", testAcc1 = "test_acc1", testAcc5 = "test_acc5"
        case testEMALoss = "test_ema_loss", testEMAAcc1 = "test_ema_acc1", testEMAAcc5 = "test_ema_acc5"
        case parameters = "n_parameters"
    }
}

/// Where a run is within an epoch, after each step.
public struct TrainingProgress: Sendable {
    /// The epoch (from 0) of `epochs`, and the steps done of the epoch's `steps`.
    public var epoch, epochs, step, steps: Int
    /// The epoch's mean loss so far, and the rate it trains at.
    public var loss, learningRate: Double
    /// Training images a second so far this epoch, and the seconds its steps have left at that speed.
    public var imagesPerSecond: Double
    public var secondsLeft: Double
}

/// Validation's loss (cross-entropy without smoothing, the mean of each batch's mean, as their `evaluate`), top-1 and
/// top-5 in percent.
public struct ValidationResult: Sendable, Equatable {
    /// The loss, and top-1 and top-5 accuracy in percent.
    public var loss, acc1, acc5: Double
}

/// How a run ended.
public enum TrainingOutcome: Sendable, Equatable {
    case finished
    /// Stopped between steps; the last whole checkpoint is the one of `lastCheckpointEpoch` (nil: none yet).
    case interrupted(lastCheckpointEpoch: Int?)
}

/// Trains a model on a device by the authors' recipe: each epoch's steps (augmented batches, mixup or cutmix,
/// stochastic depth, the optimizer at the epoch's rate, the model average), then `checkpoint.pth`, validation of the
/// model and of its average, a line of `log.txt` and `curves.png` redrawn in the output folder.
public final class Trainer {
    /// The settings, the model (with the run's classes), the images and the device the run validates on (the first
    /// of those it trains on).
    public let recipe: TrainingRecipe
    public let model: Model
    public let set: TrainingSet
    public let device: VulkanDevice
    /// The training step's session on the first device: the weights, the optimizer's state and the model average that
    /// checkpoints hold live in it.
    public var session: TrainingSession { replicas[0] }
    /// One session per device, data parallel as PyTorch's DistributedDataParallel: each steps on its own share of the
    /// epoch (a batch of `batchSize` each), their gradients are averaged, and each takes the same optimizer step.
    public let replicas: [TrainingSession]
    /// The epoch ``run(progress:epochDone:stop:)`` trains next (one past a resumed checkpoint's).
    public private(set) var nextEpoch: Int
    private let graph: Graph
    private let depth: StochasticDepth
    private let output: URL
    /// The pipelines of the training step and the validation classifiers, compiled once for the run.
    private let pipelines: KernelPipelines
    /// The kernels validation runs (the training step reads through the matching data path).
    public let kernels: KernelChoice
    /// Whether the replicas step side by side (each on a device object of its own).
    private let sideBySide: Bool

    /// A run from `weights` (the model's initial or given weights), or resumed from `checkpoint`, on `devices` (data
    /// parallel where there are several; a device may appear twice). `pipelines` shares compiled pipelines of the
    /// first device with other runs on it (its training step's and its validation's). `kernels` picks the training
    /// step's data path (``trainingDataPath(_:)``) and validation's kernels.
    public init(
        recipe: TrainingRecipe, model: Model, weights: any ParameterSource, set: TrainingSet, devices: [VulkanDevice],
        resume checkpoint: TrainingCheckpoint? = nil, pipelines: KernelPipelines? = nil,
        kernels: KernelChoice = .automatic
    ) throws {
        let dataPath = try Self.trainingDataPath(kernels)
        self.kernels = kernels
        guard let device = devices.first else { throw TrainingError("a run needs at least one device") }
        guard model.architecture.classes >= set.classes.count else {
            throw TrainingError(
                "the model has \(model.architecture.classes) classes and the training folder \(set.classes.count); --num-classes must be at least the folder's"
            )
        }
        guard recipe.worldSize == devices.count else {
            throw TrainingError(
                "the recipe's world size is \(recipe.worldSize) (its learning rate scaled for that many devices), but it is given \(devices.count) devices"
            )
        }
        (self.recipe, self.model, self.set, self.device) = (recipe, model, set, device)
        output = URL(fileURLWithPath: recipe.outputDir)
        let pipelines = pipelines ?? KernelPipelines(device: device)
        self.pipelines = pipelines
        let source: any ParameterSource = checkpoint.map { NamedValues($0.model) } ?? weights
        let graph = try model.graph(batch: recipe.batchSize, inputSize: recipe.inputSize, weights: source)
        let depth = try model.stochasticDepth(rate: recipe.dropPath, graph: graph)
        (self.graph, self.depth) = (graph, depth)
        // One set of pipelines per distinct device, however often it is named.
        var pipelinesOf = [ObjectIdentifier(device): pipelines]
        replicas = try devices.enumerated().map { rank, replicaDevice in
            let shared = pipelinesOf[ObjectIdentifier(replicaDevice), default: KernelPipelines(device: replicaDevice)]
            pipelinesOf[ObjectIdentifier(replicaDevice)] = shared
            return try TrainingSession(
                graph: graph, device: replicaDevice, pipelines: shared, dataPath: dataPath, stochasticDepth: depth,
                seed: rankSeed(recipe.seed, rank))
        }
        // Side by side only on distinct device objects: a device's queue and command pool take one thread at a time.
        sideBySide = pipelinesOf.count == devices.count
        nextEpoch = 0
        if let checkpoint {
            for replica in replicas {
                try replica.restore(
                    checkpoint.optimizer, for: recipe.optimizer(rate: 1), forwardSteps: Int(checkpoint.batchesTracked))
            }
            nextEpoch = checkpoint.epoch + 1
        }
        if recipe.modelEMA {
            try session.startAverage(
                ModelAverage(decay: recipe.modelEMADecay), from: checkpoint?.average?.values,
                forwardSteps: checkpoint?.average?.batchesTracked ?? 0)
        }
    }

    /// How the training kernels read their inputs under `kernels`: texel views for `auto` and `texel` (storage
    /// buffers where a view would not fit), storage buffers for `storage`. The other families are inference kernels.
    public static func trainingDataPath(_ kernels: KernelChoice) throws -> DataPath {
        switch kernels {
        case .automatic, .family(.texel): return .texel
        case .family(.storage): return .storage
        case .family(let family):
            throw TrainingError(
                "--kernels \(family): the training kernels come as texel and storage; \(family) is an inference family (bench, classify, eval)."
            )
        }
    }

    /// Steps an epoch takes.
    public var stepsPerEpoch: Int {
        self.set.epochOrder(epoch: 0, seed: recipe.seed, repeated: recipe.repeatedAug, replicas: replicas.count)
            .count / recipe.batchSize
    }

    /// Trains from ``nextEpoch`` to the recipe's last epoch. `progress` hears every step, `epochDone` every epoch's
    /// record; `stop` is asked after every step and ends the run there, before the epoch's checkpoint.
    public func run(
        progress: (TrainingProgress) -> Void = { _ in }, epochDone: (EpochRecord) throws -> Void = { _ in },
        stop: () -> Bool = { false }
    ) async throws -> TrainingOutcome {
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        while nextEpoch < recipe.epochs {
            let epoch = nextEpoch
            guard let (loss, throughput) = try await trainEpoch(epoch, progress: progress, stop: stop) else {
                return .interrupted(lastCheckpointEpoch: epoch > 0 ? epoch - 1 : nil)
            }
            try writeCheckpoint(epoch: epoch)
            nextEpoch = epoch + 1
            let record = try await epochRecord(epoch, loss: loss, throughput: throughput)
            try appendLog(record)
            let log = output.appendingPathComponent("log.txt")
            try LearningCurves.picture(LearningCurves.records(log: log))
                .writePNG(to: output.appendingPathComponent("curves.png"))
            try epochDone(record)
            if stop() && nextEpoch < recipe.epochs { return .interrupted(lastCheckpointEpoch: epoch) }
        }
        return .finished
    }

    /// One epoch's steps; nil when `stop` ended it.
    private func trainEpoch(_ epoch: Int, progress: (TrainingProgress) -> Void, stop: () -> Bool) async throws
        -> (loss: Double, throughput: Double)?
    {
        let orders = replicas.indices.map { rank in
            set.epochOrder(
                epoch: epoch, seed: recipe.seed, repeated: recipe.repeatedAug, replicas: replicas.count, rank: rank)
        }
        let steps = orders[0].count / recipe.batchSize, images = recipe.batchSize * replicas.count
        guard steps > 0 else {
            throw ImageSetError(
                "an epoch takes \(orders[0].count * replicas.count) of the \(set.train.images.count) training images, fewer than one batch of \(images)"
                    + (recipe.repeatedAug
                        ? " (repeated augmentation takes floor(n / 256) * 256 a epoch; --no-repeated-aug takes them all)"
                        : ""))
        }
        let rate = recipe.schedule.trainingRate(epoch: epoch)
        let loader = try BatchLoader(set: set.train, recipe: recipe, classes: model.architecture.classes)
        let started = Date()
        var total = 0.0
        var pending = Task { [loader] in try await loader.batches(orders, epoch: epoch, step: 0) }
        for step in 0..<steps {
            let batches = try await pending.value
            if step + 1 < steps {
                pending = Task { [loader] in try await loader.batches(orders, epoch: epoch, step: step + 1) }
            }
            let loss = try stepReplicas(batches, epoch: epoch, step: step)
            guard loss.isFinite else {
                throw TrainingError(
                    "the loss is \(loss) at epoch \(epoch), step \(step): training diverged (try a lower --lr or --clip-grad)"
                )
            }
            for replica in replicas {
                _ = try replica.optimize(recipe.optimizer(rate: rate), clipping: recipe.clipGrad, reading: false)
            }
            total += loss
            let elapsed = Date().timeIntervalSince(started), done = step + 1
            progress(
                TrainingProgress(
                    epoch: epoch, epochs: recipe.epochs, step: done, steps: steps, loss: total / Double(done),
                    learningRate: rate, imagesPerSecond: Double(done * images) / elapsed,
                    secondsLeft: elapsed / Double(done) * Double(steps - done)))
            if stop() {
                pending.cancel()
                return nil
            }
        }
        return (total / Double(steps), Double(steps * images) / Date().timeIntervalSince(started))
    }

    /// Each replica's step on its batch (side by side where there are several), their gradients then averaged into
    /// every replica as DistributedDataParallel's all-reduce leaves them; the mean of their losses.
    private func stepReplicas(_ batches: [(input: [Float], targets: [Float])], epoch: Int, step: Int) throws -> Double {
        let losses = try concurrently(replicas.count, sideBySide: sideBySide) { rank in
            var random = SeededRandom(
                seed: rankSeed(streamSeed(recipe.seed, UInt64(epoch), UInt64(step), 0xD509), rank))
            let masks = depth.masks(batch: recipe.batchSize, using: &random)
            return try replicas[rank].step(
                input: batches[rank].input, targets: batches[rank].targets, masks: masks, reading: false
            ).loss
        }
        try TrainingSession.averageGradients(replicas)
        return losses.reduce(0, +) / Double(losses.count)
    }

    /// The model's weights now (parameters and running statistics), by state-dict name.
    public func weights() throws -> [String: [Float]] {
        try session.parameters().merging(session.runningStatistics()) { first, _ in first }
    }

    /// The checkpoint of the epoch just finished, as the authors' main.py writes it.
    public func checkpoint(epoch: Int) throws -> TrainingCheckpoint {
        let averaged = try session.averaged()
        return TrainingCheckpoint(
            epoch: epoch, model: try weights(), batchesTracked: Int64(session.forwardSteps),
            optimizer: try session.optimizerState(), average: averaged.map { ($0.values, $0.forwardSteps) })
    }

    private func writeCheckpoint(epoch: Int) throws {
        let value = try checkpoint(epoch: epoch).torchValue(graph.declarations, recipe: recipe)
        try TorchSave.write(value, to: output.appendingPathComponent("checkpoint.pth"))
    }

    private func epochRecord(_ epoch: Int, loss: Double, throughput: Double) async throws -> EpochRecord {
        let test = try await validate(weights())
        var ema: ValidationResult?
        if let averaged = try session.averaged() { ema = try await validate(averaged.values) }
        return EpochRecord(
            epoch: epoch, trainLR: recipe.schedule.trainingRate(epoch: epoch), trainLoss: loss,
            trainThroughput: throughput, testLoss: test.loss, testAcc1: test.acc1, testAcc5: test.acc5,
            testEMALoss: ema?.loss, testEMAAcc1: ema?.acc1, testEMAAcc5: ema?.acc5,
            parameters: try model.parameterCount())
    }

    /// Validation of `weights` over the set's `val/` images, a batch of 1.5 times the training batch at a time (their
    /// data_loader_val), each image through the evaluation transform.
    public func validate(_ weights: [String: [Float]]) async throws -> ValidationResult {
        let batch = max(1, recipe.batchSize * 3 / 2)
        let classifier = try Classifier(
            graph: model.graph(batch: batch, inputSize: recipe.inputSize, weights: NamedValues(weights)),
            device: device, kernels: kernels, pipelines: pipelines)
        let (images, size) = (set.val.images, recipe.inputSize)
        var (lossSum, batches, top1, top5) = (0.0, 0, 0, 0)
        for start in stride(from: 0, to: images.count, by: batch) {
            let chunk = Array(images[start..<min(start + batch, images.count)])
            let tensors = try await BatchLoader.decode(chunk.map(\.path), root: set.val.root) {
                try Preprocess.evaluationTensor($0, inputSize: size)
            }
            let logits = try classifier.logits(tensors), labels = chunk.map(\.label)
            for (row, label) in zip(logits, labels) {
                let top = Classifier.top(row, k: 5).indices
                top1 += top.first == label ? 1 : 0
                top5 += top.contains(label) ? 1 : 0
            }
            // Plain cross-entropy (no smoothing), the batch's mean, as their evaluate's criterion.
            let loss = CrossEntropy(batch: chunk.count, classes: model.architecture.classes)
            lossSum +=
                loss.lossAndGradient(
                    logits: logits.flatMap { $0.map(Double.init) }, targets: loss.targets(labels: labels, smoothing: 0)
                ).loss
            batches += 1
        }
        let count = Double(max(images.count, 1))
        return ValidationResult(
            loss: lossSum / Double(max(batches, 1)), acc1: 100 * Double(top1) / count, acc5: 100 * Double(top5) / count)
    }

    private func appendLog(_ record: EpochRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let line = try encoder.encode(record) + Data("\n".utf8)
        let url = output.appendingPathComponent("log.txt")
        if !FileManager.default.fileExists(atPath: url.path) {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
        try handle.synchronize()
    }
}

/// A training failure that is not the data's or the device's: what went wrong and what to do.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Weights by state-dict name (a checkpoint's or a session's).
struct NamedValues: ParameterSource {
    let values: [String: [Float]]
    init(_ values: [String: [Float]]) { self.values = values }
    func values(for name: String, shape: [Int]) throws -> [Float] {
        guard let found = values[name] else { throw ParameterError("The weights lack \(name) \(shape).") }
        return found
    }
}

/// Decodes and augments a step's batch on CPU tasks, the images in parallel.
struct BatchLoader: Sendable {
    let set: ImageSet
    let transform: TrainingTransform
    let recipe: TrainingRecipe

    /// The head's classes, which the targets span: the folder's, or more (a head as the authors' IMNET builds it,
    /// 1000 whatever the folder holds).
    let classes: Int

    /// The loader of `set` under `recipe`'s transform, for a head of `classes` (the folder's when nil).
    init(set: ImageSet, recipe: TrainingRecipe, classes: Int? = nil) throws {
        (self.set, self.recipe, self.classes) = (set, recipe, classes ?? set.classes.count)
        transform = try recipe.transform()
    }

    /// Step `step`'s batch of every replica, each from its own order.
    func batches(_ orders: [[Int]], epoch: Int, step: Int) async throws -> [(input: [Float], targets: [Float])] {
        var batches: [(input: [Float], targets: [Float])] = []
        for (rank, order) in orders.enumerated() {
            batches.append(try await batch(order, epoch: epoch, step: step, rank: rank, replicas: orders.count))
        }
        return batches
    }

    /// The inputs `[batch][3][S][S]` and target distributions `[batch][classes]` of step `step` of `order`, replica
    /// `rank`'s of `replicas` (each image's draws seeded by its place in the whole epoch, the mix's by the rank).
    func batch(_ order: [Int], epoch: Int, step: Int, rank: Int = 0, replicas: Int = 1) async throws -> (
        input: [Float], targets: [Float]
    ) {
        let batch = recipe.batchSize, first = step * batch
        let images = order[first..<(first + batch)].map { set.images[$0] }
        let (seed, transform) = (recipe.seed, transform)
        let tensors = try await Self.decode(images.map(\.path), root: set.root, positions: first) { image, position in
            let place = UInt64(position * replicas + rank)
            var random = SeededRandom(seed: streamSeed(seed, UInt64(epoch), place, 0x1A6E))
            return try transform.tensor(image, using: &random)
        }
        var input = tensors.flatMap { $0 }
        let labels = images.map(\.label)
        let loss = CrossEntropy(batch: batch, classes: classes)
        var random = SeededRandom(seed: rankSeed(streamSeed(seed, UInt64(epoch), UInt64(step), 0x313C), rank))
        let size = transform.inputSize
        let mix = drawBatchMix(
            mixup: recipe.mixup, cutmix: recipe.cutmix, mixupProb: recipe.mixupProb,
            switchProb: recipe.mixupSwitchProb, height: size, width: size, using: &random)
        guard let mix else {
            return (input, loss.targets(labels: labels, smoothing: recipe.smoothing).map(Float.init))
        }
        mix.apply(to: &input, batch: batch, channels: 3, height: size, width: size)
        let lam = mix.lam(height: size, width: size)
        return (input, loss.mixedTargets(labels: labels, smoothing: recipe.smoothing, lam: lam).map(Float.init))
    }

    /// Each file decoded and made a tensor by `make` (given the image and its position from `positions` on), in
    /// parallel, in order; the first failure names its file.
    static func decode(
        _ paths: [String], root: URL, positions: Int = 0,
        _ make: @escaping @Sendable (RGBImage, Int) throws -> [Float]
    ) async throws -> [[Float]] {
        try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (index, path) in paths.enumerated() {
                group.addTask {
                    do {
                        let image = try RGBImage(contentsOf: root.appendingPathComponent(path))
                        return (index, try make(image, positions + index))
                    } catch let error as ImageError {
                        throw error
                    } catch {
                        throw ImageSetError("\(path): \(error)")
                    }
                }
            }
            var tensors = [[Float]](repeating: [], count: paths.count)
            for try await (index, tensor) in group { tensors[index] = tensor }
            return tensors
        }
    }

    static func decode(_ paths: [String], root: URL, _ make: @escaping @Sendable (RGBImage) throws -> [Float])
        async throws -> [[Float]]
    {
        try await decode(paths, root: root) { image, _ in try make(image) }
    }
}

/// Replica `rank`'s seed of a stream whose first replica's seed is `seed` (a run on one device draws as before).
func rankSeed(_ seed: UInt64, _ rank: Int) -> UInt64 { rank == 0 ? seed : streamSeed(seed, UInt64(rank)) }

/// `body` for 0..<count, side by side when `sideBySide` and count > 1; the results in order, or the first error.
func concurrently<Result>(_ count: Int, sideBySide: Bool, _ body: (Int) throws -> Result) throws -> [Result] {
    guard count > 1 && sideBySide else { return try (0..<count).map(body) }
    let results = UnsafeMutableBufferPointer<Swift.Result<Result, any Error>?>.allocate(capacity: count)
    results.initialize(repeating: nil)
    defer {
        _ = results.deinitialize()
        results.deallocate()
    }
    withoutActuallyEscaping(body) { body in
        let box = UncheckedBox((body, results))
        DispatchQueue.concurrentPerform(iterations: count) { index in
            box.value.1[index] = Swift.Result { try box.value.0(index) }
        }
    }
    return try results.map { try $0!.get() }
}

/// Hands a value to concurrent work that touches disjoint parts of it.
private struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
