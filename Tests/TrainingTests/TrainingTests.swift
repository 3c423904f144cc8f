import Checkpoint
import Foundation
import Images
import Kernels
import Models
import Testing
import VulkanCompute

@testable import Training

private func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        .appendingPathComponent(name)
}

/// The photo the transform fixtures were made from, decoded (PIL-exact, as ImagesTests check).
private func photo() throws -> RGBImage {
    try RGBImage(
        contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("EvaluationTests/Fixtures/set/cat/cat_1.jpg"))
}

private struct Transforms: Decodable {
    struct Resized: Decodable { let top, left, height, width, size: Int; let pixels: [UInt8] }
    struct Padded: Decodable { let top, left: Int; let flip: Bool; let pixels: [UInt8] }
    let resized_crops: [Resized]
    let padded_crops: [Padded]
}

@Test("the training transform's crops, resize, padding and flip give PIL's and torchvision's bytes at fixed draws")
func transformsAsPIL() throws {
    let want = try JSONDecoder().decode(Transforms.self, from: Data(contentsOf: fixture("transforms.json")))
    let image = try photo()
    for crop in want.resized_crops {
        let cut = TrainingTransform.crop(image, top: crop.top, left: crop.left, height: crop.height, width: crop.width)
        let resized = Preprocess.resize(cut, width: crop.size, height: crop.size)
        #expect(resized.pixels == crop.pixels, "box \(crop.top),\(crop.left) \(crop.height)x\(crop.width)")
    }
    let padded = TrainingTransform.padded(image, by: 4)
    for crop in want.padded_crops {
        var cut = TrainingTransform.crop(padded, top: crop.top, left: crop.left, height: 32, width: 32)
        if crop.flip { cut = TrainingTransform.mirrored(cut) }
        #expect(cut.pixels == crop.pixels, "offset \(crop.top),\(crop.left) flip \(crop.flip)")
    }
}

@Test("random resized crop boxes keep 8-100% of the area at ratios 3/4-4/3, and fall back to a centred crop")
func resizedCropBoxes() {
    var random = SeededRandom(seed: 9)
    var areas: [Double] = []
    for _ in 0..<2000 {
        let box = ResizedCropBox(width: 83, height: 71, using: &random)
        #expect(box.top >= 0 && box.left >= 0 && box.top + box.height <= 71 && box.left + box.width <= 83)
        let ratio = Double(box.width) / Double(box.height)
        // Rounding to whole pixels moves the ratio by up to a pixel's worth.
        #expect(ratio >= 0.75 * 0.85 && ratio <= 4.0 / 3.0 / 0.85, "ratio \(ratio)")
        areas.append(Double(box.width * box.height) / Double(83 * 71))
    }
    #expect((areas.min() ?? 0) >= 0.06 && (areas.max() ?? 0) <= 1)
    // The mean of the area fraction over the tries that fit: near the middle of [0.08, 1].
    let mean = areas.reduce(0, +) / Double(areas.count)
    #expect(mean > 0.4 && mean < 0.6, "mean area \(mean)")
    // A strip no box fits: the whole height, cut to the widest allowed ratio, centred.
    let strip = ResizedCropBox(width: 1000, height: 10, using: &random)
    #expect(strip == ResizedCropBox(top: 0, left: 493, height: 10, width: 13))
}

@Test("mixup's Beta draws have Beta's mean and variance; cutmix and mixup are switched between as asked")
func mixDraws() {
    var random = SeededRandom(seed: 4)
    for alpha in [0.8, 1.0, 2.5] {
        let draws = (0..<20000).map { _ in beta(alpha, using: &random) }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let variance = draws.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(draws.count)
        let want = 1 / (4 * (2 * alpha + 1))
        #expect(abs(mean - 0.5) < 0.01, "Beta(\(alpha)): mean \(mean)")
        #expect(abs(variance - want) < 0.05 * want, "Beta(\(alpha)): variance \(variance), want \(want)")
    }
    var cutmixes = 0, mixups = 0, none = 0
    for _ in 0..<4000 {
        switch drawBatchMix(
            mixup: 0.8, cutmix: 1.0, mixupProb: 0.75, switchProb: 0.3, height: 8, width: 8, using: &random)
        {
        case .cutmix?: cutmixes += 1
        case .mixup?: mixups += 1
        case nil: none += 1
        }
    }
    #expect(abs(Double(none) / 4000 - 0.25) < 0.03 && abs(Double(cutmixes) / 4000 - 0.75 * 0.3) < 0.03)
    #expect(mixups + cutmixes + none == 4000)
    #expect(
        drawBatchMix(mixup: 0, cutmix: 0, mixupProb: 1, switchProb: 0.5, height: 8, width: 8, using: &random) == nil)
}

/// A train/ and val/ ImageFolder of the evaluation fixtures' photographs (cat, dog, fish; the broken file left out).
private func photoFolder() throws -> URL {
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("EvaluationTests/Fixtures/set")
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("bossnet-train-\(UUID().uuidString)")
    for split in ["train", "val"] {
        for label in ["cat", "dog", "fish"] {
            let folder = root.appendingPathComponent("\(split)/\(label)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for file in try FileManager.default.contentsOfDirectory(atPath: source.appendingPathComponent(label).path)
            where file.hasPrefix(label) {
                try FileManager.default.copyItem(
                    at: source.appendingPathComponent("\(label)/\(file)"), to: folder.appendingPathComponent(file))
            }
        }
    }
    return root
}

/// Every setting the recipe has, on: RandAugment, random erasing, mixup and cutmix, stochastic depth, the model average, clipping, a schedule
/// with warmup; 40 px (the random resized crop), a small network, batch 4, three steps an epoch, two epochs.
private func recipe(_ data: URL, output: URL) -> TrainingRecipe {
    var recipe = TrainingRecipe(model: "hytra:1-0-_-11,last-stride=1", dataPath: data.path)
    (recipe.inputSize, recipe.batchSize, recipe.epochs, recipe.warmupEpochs) = (40, 4, 2, 1)
    (recipe.aa, recipe.reprob, recipe.repeatedAug) = ("rand-m9-mstd0.5-inc1", 0.5, false)
    (recipe.lr, recipe.clipGrad, recipe.modelEMADecay, recipe.seed) = (0.05, 1.0, 0.9, 3)
    // The last two blocks drop with rates 0.13 and 0.20 (the rule divides by 15 whatever the depth).
    recipe.dropPath = 0.99
    recipe.outputDir = output.path
    return recipe
}

/// Runs `body` on a device with the validation layer on; fails on anything the layer said.
private func onValidatedDevice<R>(_ body: (VulkanDevice) async throws -> R) async throws -> R {
    let instance = try VulkanInstance(validation: .required)
    let result = try await body(try VulkanDevice(instance: instance))
    #expect(instance.validationMessages.isEmpty, "\(instance.validationMessages)")
    return result
}

@Test("a run stopped after an epoch and resumed from its checkpoint ends with the same bits as one never stopped")
func stopAndResume() async throws {
    let data = try photoFolder()
    defer { try? FileManager.default.removeItem(at: data) }
    let set = try TrainingSet(dataPath: data)
    var pipelines: KernelPipelines?
    func trainer(_ output: URL, _ device: VulkanDevice, replicas: Int = 1, resume: TrainingCheckpoint? = nil) throws
        -> Trainer
    {
        var recipe = recipe(data, output: output)
        recipe.worldSize = replicas
        let model = Model(try Architecture.parse(recipe.model).with(classes: 3))
        // One set of pipelines for every run: each is compiled once.
        let shared = pipelines ?? KernelPipelines(device: device)
        pipelines = shared
        return try Trainer(
            recipe: recipe, model: model, weights: InitialWeights(model: model, seed: 1), set: set,
            devices: Array(repeating: device, count: replicas), resume: resume, pipelines: shared)
    }
    let (whole, stopped) = (data.appendingPathComponent("whole"), data.appendingPathComponent("stopped"))
    try await onValidatedDevice { device in
        let straight = try trainer(whole, device)
        #expect(try await straight.run() == .finished)

        // Stopped at the first step: nothing written. Stopped after epoch 1: its checkpoint, then resumed.
        let early = try trainer(stopped, device)
        #expect(try await early.run(stop: { true }) == .interrupted(lastCheckpointEpoch: nil))
        #expect(!FileManager.default.fileExists(atPath: stopped.appendingPathComponent("checkpoint.pth").path))
        var epochs = 0
        let first = try trainer(stopped, device)
        let outcome = try await first.run(epochDone: { _ in epochs += 1 }, stop: { epochs == 1 })
        #expect(outcome == .interrupted(lastCheckpointEpoch: 0))
        let checkpoint = try TrainingCheckpoint.read(
            stopped.appendingPathComponent("checkpoint.pth"), declarations: first.session.graph.declarations,
            optimizer: "adamw")
        #expect(checkpoint.epoch == 0 && checkpoint.batchesTracked == 3 && checkpoint.optimizer.steps == 3)
        let resumed = try trainer(stopped, device, resume: checkpoint)
        #expect(resumed.nextEpoch == 1)
        #expect(try await resumed.run() == .finished)

        #expect(try resumed.weights() == straight.weights())
        #expect(try resumed.session.averaged()?.values == straight.session.averaged()?.values)
        #expect(try resumed.session.optimizerState() == straight.session.optimizerState())
        // Data parallel over two replicas of the device: each steps on its own half of the epoch (one batch of 4 of
        // the 12 images), the replicas stay equal, and the run differs from the one on a single device.
        let parallel = try trainer(data.appendingPathComponent("parallel"), device, replicas: 2)
        #expect(parallel.stepsPerEpoch == 1 && straight.stepsPerEpoch == 3)
        #expect(try await parallel.run() == .finished)
        #expect(try parallel.replicas[1].parameters() == parallel.replicas[0].parameters())
        #expect(try parallel.weights() != straight.weights())
        #expect(throws: TrainingError.self) {
            try Trainer(
                recipe: recipe(data, output: whole), model: parallel.model,
                weights: InitialWeights(model: parallel.model, seed: 1),
                set: set, devices: [device, device])
        }

        // classify and eval take the checkpoint: its model and classes come from it.
        let state = try TorchCheckpoint.stateDict(at: stopped.appendingPathComponent("checkpoint.pth"))
        let (bound, _) = try CheckpointWeights.bind(state, requested: nil)
        #expect(bound.architecture.classes == 3 && bound.architecture.text == resumed.model.architecture.text)
        // Every epoch has its line in log.txt, under the authors' keys.
        let lines = try String(contentsOf: stopped.appendingPathComponent("log.txt"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count == 2)
        let record = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any]
        for key in [
            "train_lr", "train_loss", "test_acc1", "test_acc5", "test_loss", "test_ema_acc1", "epoch", "n_parameters",
        ] {
            #expect(record?[key] != nil, "log.txt lacks \(key)")
        }
    }
}

@Test(
    "random erasing as timm's: one box of 2-33% of the image at ratios 0.3-3.3, filled with standard normal values, as often as asked"
)
func randomErasing() {
    var random = SeededRandom(seed: 12)
    let erasing = RandomErasing(probability: 1)
    var fill: [Double] = []
    for _ in 0..<300 {
        let original = (0..<(3 * 40 * 40)).map { Float($0 % 7) * 10 }
        var tensor = original
        var draws = random
        guard let box = erasing.box(height: 40, width: 40, using: &draws) else {
            Issue.record("with probability 1 a box fits within ten tries at 40 x 40")
            continue
        }
        erasing.apply(to: &tensor, size: 40, using: &random)
        let share = Double(box.height * box.width) / 1600
        let ratio = Double(box.height) / Double(box.width)
        #expect(share >= 0.015 && share <= 0.36 && ratio >= 0.3 * 0.7 && ratio <= 1 / 0.3 / 0.7, "\(box)")
        #expect(box.top + box.height <= 40 && box.left + box.width <= 40)
        for c in 0..<3 {
            for y in 0..<40 {
                for x in 0..<40 {
                    let i = (c * 40 + y) * 40 + x
                    let inside =
                        (box.top..<(box.top + box.height)).contains(y)
                        && (box.left..<(box.left + box.width)).contains(x)
                    if inside {
                        fill.append(Double(tensor[i]))
                    } else if tensor[i] != original[i] {
                        Issue.record("a value outside the box changed")
                    }
                }
            }
        }
    }
    let mean = fill.reduce(0, +) / Double(fill.count)
    let std = (fill.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(fill.count)).squareRoot()
    #expect(abs(mean) < 0.02 && abs(std - 1) < 0.02, "fill mean \(mean), std \(std)")
    let quarter = (0..<4000).filter { _ in
        RandomErasing(probability: 0.25).box(height: 40, width: 40, using: &random) != nil
    }
    #expect(abs(Double(quarter.count) / 4000 - 0.25) < 0.03)
    var untouched = [Float](repeating: 1, count: 3 * 32 * 32)
    RandomErasing(probability: 0).apply(to: &untouched, size: 32, using: &random)
    #expect(untouched.allSatisfy { $0 == 1 })
}

@Test(
    "a step's batch takes the recipe's random erasing: the same draws with and without it differ only in the erased boxes"
)
func batchesTakeErasing() async throws {
    let data = try photoFolder()
    defer { try? FileManager.default.removeItem(at: data) }
    let set = try TrainingSet(dataPath: data)
    var settings = recipe(data, output: data)
    (settings.mixup, settings.cutmix, settings.reprob) = (0, 0, 0)
    let plain = try await BatchLoader(set: set.train, recipe: settings).batch(Array(0..<4), epoch: 0, step: 0)
    settings.reprob = 1
    let erased = try await BatchLoader(set: set.train, recipe: settings).batch(Array(0..<4), epoch: 0, step: 0)
    // Each box covers at most a third of its image; the crops, flips and targets are the same draws.
    let changed = zip(plain.input, erased.input).filter { $0 != $1 }.count
    #expect(changed > 0 && changed <= plain.input.count / 3, "\(changed) of \(plain.input.count) values erased")
    #expect(plain.targets == erased.targets)
}

@Test(
    "data parallel's epoch order is the RASampler's (or DistributedSampler's) over replicas: one shuffle dealt out in turn"
)
func epochOrderOverReplicas() {
    let count = 600
    for repeated in [true, false] {
        // One shuffle for every replica, each image three times in a row with repeated augmentation.
        let shuffle = TrainingSet.epochOrder(count: count, epoch: 2, seed: 5, repeated: false, replicas: 1, rank: 0)
        let tripled = repeated ? shuffle.flatMap { [$0, $0, $0] } : shuffle
        for replicas in [1, 2, 7] {
            let total = (tripled.count + replicas - 1) / replicas * replicas
            let padded = tripled + tripled.prefix(total - tripled.count)
            let kept = repeated ? count / 256 * 256 / replicas : total / replicas
            for rank in 0..<replicas {
                let share = TrainingSet.epochOrder(
                    count: count, epoch: 2, seed: 5, repeated: repeated, replicas: replicas, rank: rank)
                let expected = (0..<kept).map { padded[$0 * replicas + rank] }
                #expect(share == expected, "rank \(rank) of \(replicas), repeated \(repeated)")
            }
        }
    }
    // 600 images with repeated augmentation: 512 an epoch on one device, 256 each on two, 73 each on seven.
    #expect(TrainingSet.epochOrder(count: count, epoch: 0, seed: 1, repeated: true, replicas: 7, rank: 6).count == 73)
}
