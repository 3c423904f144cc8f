import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import Testing

/// Random values of the right kind for each array: BatchNorm gammas 0.5-1.5 (each block's last 0.1-0.3 would do as
/// well; these are small networks), running variances 0.5-1.5, the rest uniform and scaled by fan-in.
private struct RandomTrainingWeights: ParameterSource {
    func values(for name: String, shape: [Int]) throws -> [Float] {
        var random = SeededRandom(seed: name.utf8.reduce(UInt64(7)) { $0 &* 31 &+ UInt64($1) })
        let count = shape.reduce(1, *)
        if name.hasSuffix("running_var") { return random.floats(count, in: 0.5...1.5) }
        if name.hasSuffix("running_mean") { return random.floats(count, in: -0.2...0.2) }
        if shape.count == 1 && name.hasSuffix(".weight") { return random.floats(count, in: 0.5...1.5) }
        if shape.count == 1 { return random.floats(count, in: -0.3...0.3) }
        return random.weights(count, fanIn: shape.dropFirst().reduce(1, *))
    }
}

/// A small hybrid network: a ResConv stage with squeeze-excite, a ResAtt stage (16 tokens), a plain conv stage, a
/// ResConv stage, 10 classes, at 32 pixels.
private func smallNetwork(batch: Int) throws -> Graph {
    let architecture = HyTraArchitecture(
        stages: [[.convolution], [.attention], [], [.convolution]], activation: .silu, squeezeExcite: true,
        lastStride: 1, classes: 10)
    return try Model(Architecture(architecture)).graph(batch: batch, inputSize: 32, weights: RandomTrainingWeights())
}

@Test(
    "a training step's gradients equal finite differences of its loss, every parameter array of a hybrid network under stochastic depth"
)
func trainingStepGradients() throws {
    var graph = try smallNetwork(batch: 2)
    var random = SeededRandom(seed: 41)
    let input = random.floats(graph.shapes[graph.input].count, in: -2...2)
    let loss = CrossEntropy(batch: 2, classes: 10)
    let targets = loss.targets(labels: [3, 8], smoothing: 0.1)
    // Stochastic depth on both squeeze-excite branches: image 0's first dropped, the rest scaled.
    let masks = ["layer1.0.se": [0, 2], "layer4.0.se": [1.25, 1.25]]
    let step = try TrainingReference(graph).step(input: input, targets: targets, masks: masks)
    #expect(step.loss.isFinite && step.loss > 0)

    // One coordinate of every trainable array: the loss moved by +-h there (h exact in float32; 1e-3 leaves a
    // truncation error of 2e-2).
    var rows: [(name: String, analytic: Double, numeric: Double)] = []
    for declaration in graph.declarations where declaration.trainable {
        let name = declaration.name
        let gradient = try #require(step.gradients[name], "no gradient for \(name)")
        let original = try #require(graph.parameters[name])
        let index = Int(random.next() % UInt64(original.count))
        var plus = original, minus = original
        plus[index] += 1e-4
        minus[index] -= 1e-4
        try graph.setParameter(name, plus)
        let up = try TrainingReference(graph).loss(input: input, targets: targets, masks: masks)
        try graph.setParameter(name, minus)
        let down = try TrainingReference(graph).loss(input: input, targets: targets, masks: masks)
        try graph.setParameter(name, original)
        rows.append((name, gradient[index], (up - down) / (Double(plus[index]) - Double(minus[index]))))
    }
    // Each array on its own: measured within 7e-8 relative (the biases before a train-mode BatchNorm, whose true
    // gradient is 0, within 5e-18).
    for row in rows {
        #expect(
            abs(row.analytic - row.numeric) <= 1e-6 * abs(row.numeric) + 1e-12,
            "\(row.name): analytic \(row.analytic), finite differences \(row.numeric)")
    }
}

/// A tensor as the fixtures summarise it: its L2 norm, its sum and its values at a few indices.
private struct TensorSummary: Decodable {
    let norm: Double
    let sum: Double
    let indices: [Int]
    let values: [Double]
}

/// One training step of the authors' model in float64 (Tools/make_training_fixtures.py).
private struct TrainingFixture: Decodable {
    let loss: Double
    let gradients: [String: TensorSummary]
    let running: [String: TensorSummary]
}

/// The rate and the fixed masks of a fixture's stochastic depth: each DropPath's drop_prob and per-image scales, by
/// block (`layer3.0`).
struct DropPathFixture: Decodable {
    struct Block: Decodable {
        let drop_prob: Double
        let scales: [Double]
    }
    let rate: Double
    let blocks: [String: Block]

    private struct File: Decodable { let drop_path: DropPathFixture }

    /// The stochastic depth of `name`'s drop-path fixture.
    init(model name: String) throws {
        self = try JSONDecoder().decode(File.self, from: Data(contentsOf: fixture("\(name)_droppath_training_64.json")))
            .drop_path
    }

    /// The fixture's masks by the engine's node names, after checking that the model's rule at the fixture's rate
    /// gives the authors' blocks and rates, exactly.
    func masks(model: Model) throws -> [String: [Double]] {
        let rates = try model.architecture.family.dropPathRates(rate)
        let block = { (node: String) in node.split(separator: ".").prefix(2).joined(separator: ".") }
        #expect(Set(rates.keys.map(block)) == Set(blocks.keys), "the blocks that drop their branch")
        var masks: [String: [Double]] = [:]
        for (node, nodeRate) in rates {
            let authors = try #require(blocks[block(node)], "\(node): no DropPath in the authors' model")
            #expect(nodeRate == authors.drop_prob, "\(node): rate \(nodeRate), the authors' \(authors.drop_prob)")
            masks[node] = authors.scales
        }
        return masks
    }
}

/// The largest difference between `values` and `summary`, relative to the tensor's norm (its RMS value for the
/// sampled entries), over the norm, the sum and the samples; the norm taken as at least `floor` (a bias before a
/// train-mode BatchNorm has a true gradient of 0, so only rounding, 1e-18, is left of it).
private func worstDifference(_ values: [Double], _ summary: TensorSummary, floor: Double = 0) -> Double {
    let norm = values.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
    let scale = max(summary.norm, floor, 1e-300)
    let rms = scale / Double(values.count).squareRoot()
    let sampled = zip(summary.indices, summary.values).map { abs(values[$0] - $1) / rms }.max() ?? 0
    return max(abs(norm - summary.norm) / scale, abs(values.reduce(0, +) - summary.sum) / scale, sampled)
}

/// The training fixtures' case for `name` (Tools/make_training_fixtures.py): its graph at 64 px, batch 4, with the
/// synthetic weights the fixtures take; the input images; the labels' targets with label smoothing 0.1.
func trainingFixtureCase(_ name: String) throws -> (graph: Graph, input: [Float], targets: [Double]) {
    let input = try NumPyArray(contentsOf: fixture("training_input_64.npy"))
    let labels = try NumPyArray(contentsOf: fixture("training_labels.npy")).values.compactMap { Int(exactly: $0) }
    let model = try Model(name: name)
    let graph = try model.graph(
        batch: 4, inputSize: 64, weights: SyntheticWeights(gains: model.architecture.family.syntheticGains))
    return (graph, input.values, CrossEntropy(batch: 4, classes: 1000).targets(labels: labels, smoothing: 0.1))
}

@Test(
    "a training step equals the authors' model in float64: loss, every gradient, the running statistics",
    arguments: ["bossnet_T0", "bossnet_T0_nose", "bossnet_T1"])
func trainingStepMatchesAuthors(name: String) throws {
    let expected = try JSONDecoder().decode(
        TrainingFixture.self, from: Data(contentsOf: fixture("\(name)_training_64.json")))
    let (graph, input, targets) = try trainingFixtureCase(name)
    try expectMatches(try TrainingReference(graph).step(input: input, targets: targets), expected, name)
}

@Test(
    "stochastic depth: the authors' blocks and rates at --drop-path 0.3, and a step with their DropPath masks fixed",
    arguments: ["bossnet_T0", "bossnet_T0_nose"])
func stochasticDepthMatchesAuthors(name: String) throws {
    let expected = try JSONDecoder().decode(
        TrainingFixture.self, from: Data(contentsOf: fixture("\(name)_droppath_training_64.json")))
    let (graph, input, targets) = try trainingFixtureCase(name)
    let masks = try DropPathFixture(model: name).masks(model: try Model(name: name))
    try expectMatches(try TrainingReference(graph).step(input: input, targets: targets, masks: masks), expected, name)
}

/// The step's loss, gradients and running statistics against the fixture's, within 1e-9 of each array's norm.
private func expectMatches(_ step: TrainingReference.Step, _ expected: TrainingFixture, _ name: String) throws {
    #expect(abs(step.loss - expected.loss) <= 1e-12 * expected.loss, "loss \(step.loss) against \(expected.loss)")
    #expect(Set(step.gradients.keys) == Set(expected.gradients.keys))
    var worst = (difference: 0.0, name: "")
    let total = expected.gradients.values.reduce(0.0) { $0 + $1.norm * $1.norm }.squareRoot()
    for (parameter, summary) in expected.gradients {
        let difference = worstDifference(try #require(step.gradients[parameter]), summary, floor: 1e-6 * total)
        if difference > worst.difference { worst = (difference, parameter) }
    }
    for (buffer, summary) in expected.running {
        let difference = worstDifference(try #require(step.runningStatistics[buffer], "\(buffer)"), summary)
        if difference > worst.difference { worst = (difference, buffer) }
    }
    #expect(worst.difference <= 1e-9, "\(name): \(worst.name) differs by \(worst.difference) of its norm")
}
