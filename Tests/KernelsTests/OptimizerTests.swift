import Foundation
import Kernels
import Testing

/// torch.optim's AdamW and SGD, clip_grad_norm_ and the model EMA in float64 (Tools/make_training_fixtures.py).
private struct OptimizerFixture: Decodable {
    struct AdamWRun: Decodable {
        let lr: Double
        let weight_decay: Double
        let after: [String: [Double]]
    }
    struct SGDRun: Decodable {
        let lr: Double
        let momentum: Double
        let weight_decay: Double
        let after: [String: [Double]]
        let nesterov_after: [String: [Double]]
    }
    struct Clip: Decodable {
        let max_norm: Double
        let norm: Double
        let clipped: [String: [Double]]
    }
    struct EMA: Decodable {
        let decay: Double
        let average: [Double]
        let values: [Double]
        let after: [Double]
    }
    let shapes: [String: [Int]]
    let start: [String: [Double]]
    let gradients: [[String: [Double]]]
    let adamw: AdamWRun
    let sgd: SGDRun
    let clip: Clip
    let ema: EMA
}

private func loadFixture() throws -> OptimizerFixture {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/optimizers.json")
    return try JSONDecoder().decode(OptimizerFixture.self, from: Data(contentsOf: url))
}

/// The largest |a - b| / max(|b|, 1) over two arrays.
private func worst(_ a: [Double], _ b: [Double]) -> Double {
    a.count == b.count ? zip(a, b).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 0 : .infinity
}

@Test("timm's weight-decay groups: none on 1-d parameters and biases")
func weightDecayGroups() {
    #expect(takesWeightDecay(name: "layer1.0.conv1.weight", shape: [64, 64, 1, 1]))
    #expect(takesWeightDecay(name: "fc.weight", shape: [1000, 2048]))
    #expect(!takesWeightDecay(name: "fc.bias", shape: [1000]))
    #expect(!takesWeightDecay(name: "layer1.0.bn1.weight", shape: [64]))
    #expect(!takesWeightDecay(name: "layer1.0.peg.conv.bias", shape: [64]))
}

@Test("AdamW, SGD with momentum (plain and Nesterov) over three steps equal torch.optim's in float64")
func optimizersMatchPyTorch() throws {
    let fixture = try loadFixture()
    let adamw = AdamW(learningRate: fixture.adamw.lr, weightDecay: fixture.adamw.weight_decay)
    let sgd = SGD(learningRate: fixture.sgd.lr, momentum: fixture.sgd.momentum, weightDecay: fixture.sgd.weight_decay)
    var nesterov = sgd
    nesterov.nesterov = true
    for (name, start) in fixture.start {
        let decays = takesWeightDecay(name: name, shape: fixture.shapes[name] ?? [])
        var (a, s, n) = (start, start, start)
        var state = AdamW.State(count: start.count)
        var (buffer, nesterovBuffer): ([Double]?, [Double]?) = (nil, nil)
        for step in fixture.gradients {
            let gradient = try #require(step[name])
            adamw.step(&a, gradient: gradient, state: &state, decays: decays)
            sgd.step(&s, gradient: gradient, buffer: &buffer, decays: decays)
            nesterov.step(&n, gradient: gradient, buffer: &nesterovBuffer, decays: decays)
        }
        #expect(worst(a, try #require(fixture.adamw.after[name])) <= 1e-15, "adamw \(name)")
        #expect(worst(s, try #require(fixture.sgd.after[name])) <= 1e-15, "sgd \(name)")
        #expect(worst(n, try #require(fixture.sgd.nesterov_after[name])) <= 1e-15, "nesterov \(name)")
    }
}

@Test("clipping by the global norm and the EMA update equal PyTorch's and timm's")
func clipAndAverageMatchPyTorch() throws {
    let fixture = try loadFixture()
    var gradients = try #require(fixture.gradients.first)
    let norm = clipByGlobalNorm(&gradients, maxNorm: fixture.clip.max_norm)
    #expect(abs(norm - fixture.clip.norm) <= 1e-15 * fixture.clip.norm)
    for (name, clipped) in fixture.clip.clipped {
        #expect(worst(try #require(gradients[name]), clipped) <= 1e-15, "\(name)")
    }
    var average = fixture.ema.average
    updateAverage(&average, toward: fixture.ema.values, decay: fixture.ema.decay)
    #expect(worst(average, fixture.ema.after) <= 1e-15)
}

/// The authors' learning rates per epoch from timm 0.3's scheduler (Tools/make_training_fixtures.py).
private struct ScheduleCase: Decodable {
    let lr: Double
    let batch: Int
    let epochs: Int
    let warmup_epochs: Int
    let warmup_lr: Double
    let min_lr: Double
    let cooldown: Int
    let scaled_lr: Double
    let total_epochs: Int
    /// The rate each epoch trains at in their loop, and the scheduler's value at each epoch through the cooldown.
    let training: [Double]
    let values: [Double]
}

@Test(
    "the cosine schedule gives the authors' rate for every epoch (timm 0.3's scheduler stepped as their main.py does)",
    arguments: ["imagenet", "digits", "no_warmup"])
func cosineScheduleMatchesTimm(name: String) throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Fixtures/schedules.json")
    let expected = try #require(
        try JSONDecoder().decode([String: ScheduleCase].self, from: Data(contentsOf: url))[name])
    let schedule = CosineSchedule(
        baseRate: CosineSchedule.scaled(expected.lr, batch: expected.batch), epochs: expected.epochs,
        warmupEpochs: expected.warmup_epochs, warmupRate: expected.warmup_lr, minimumRate: expected.min_lr,
        cooldownEpochs: expected.cooldown)
    #expect(schedule.baseRate == expected.scaled_lr && schedule.totalEpochs == expected.total_epochs)
    // The same operations in the same order as timm's Python: equal to the last bit but for cos's rounding.
    let training = (0..<expected.epochs).map(schedule.trainingRate)
    let values = expected.values.indices.map(schedule.value)
    #expect(worstRelative(training, expected.training) <= 1e-15, "\(name): \(training) against \(expected.training)")
    #expect(worstRelative(values, expected.values) <= 1e-15, "\(name): \(values) against \(expected.values)")
}

private func worstRelative(_ a: [Double], _ b: [Double]) -> Double {
    a.count == b.count ? zip(a, b).map { abs($0 - $1) / abs($1) }.max() ?? 0 : .infinity
}
