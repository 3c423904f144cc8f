import Foundation
import Kernels
import Models
import NetworkGraph
import TestSupport
import Testing
import VulkanCompute

/// A small hybrid network (ResConv with SE, ResAtt, ResConv; 10 classes) at 32 px from the authors' initialisation.
private func smallTrainingGraph() throws -> Graph {
    let architecture = HyTraArchitecture(
        stages: [[.convolution], [.attention], [], [.convolution]], activation: .silu, squeezeExcite: true,
        lastStride: 1, classes: 10)
    let model = Model(Architecture(architecture))
    return try model.graph(batch: 2, inputSize: 32, weights: InitialWeights(model: model, seed: 5))
}

private func batch(_ seed: UInt64, _ graph: Graph) -> (input: [Float], targets: [Float]) {
    var random = SeededRandom(seed: seed)
    let labels = [Int(seed % 10), Int((seed * 7 + 3) % 10)]
    let targets = CrossEntropy(batch: 2, classes: 10).targets(labels: labels, smoothing: 0.1).map(Float.init)
    return (random.floats(graph.shapes[graph.input].count, in: -2...2), targets)
}

@Test(
    "optimizer steps with clipping and the model average equal their references; a resumed session continues the same bits"
)
func trainingStateAndResume() throws {
    let graph = try smallTrainingGraph()
    let adamw = AdamW(learningRate: 1e-2, weightDecay: 0.05)
    let (maxNorm, decay) = (0.5, 0.9)
    try withValidatedDevice { device in
        let first = try TrainingSession(graph: graph, device: device)
        try first.startAverage(ModelAverage(decay: decay))
        let start = try first.parameters()
        // Step 1: the device's gradients through the references of clipping, AdamW and the average.
        let (input, targets) = batch(1, graph)
        let step = try first.step(input: input, targets: targets)
        let after = try first.optimize(.adamw(adamw), clipping: maxNorm)
        var gradients = step.gradients.mapValues { $0.map(Double.init) }
        let norm = clipByGlobalNorm(&gradients, maxNorm: maxNorm)
        #expect(norm > maxNorm, "the test's gradients must be clipped (norm \(norm))")
        let averaged = try #require(try first.averaged())
        for declaration in graph.declarations where declaration.trainable {
            var parameter = try #require(start[declaration.name]).map(Double.init)
            var state = AdamW.State(count: parameter.count)
            adamw.step(
                &parameter, gradient: try #require(gradients[declaration.name]), state: &state,
                decays: takesWeightDecay(name: declaration.name, shape: declaration.shape))
            let device = try #require(after[declaration.name])
            let error = zip(device, parameter).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(error <= 2e-6, "\(declaration.name): AdamW after clipping off by \(error)")
            var average = try #require(start[declaration.name]).map(Double.init)
            updateAverage(&average, toward: device.map(Double.init), decay: decay)
            let averageError =
                zip(try #require(averaged.values[declaration.name]), average)
                .map { abs(Double($0) - $1) }.max() ?? 0
            #expect(averageError <= 1e-6, "\(declaration.name): average off by \(averageError)")
        }
        // The running statistics are averaged too.
        let running = try first.runningStatistics()
        let name = try #require(running.keys.sorted().first)
        #expect(averaged.values[name]?.count == running[name]?.count)

        // A second session from the first's weights, running statistics, optimizer state and average continues
        // exactly as the first does.
        var resumedGraph = graph
        for (name, values) in try first.parameters().merging(running, uniquingKeysWith: { first, _ in first }) {
            try resumedGraph.parameters.set(name, values, values.count)
        }
        let second = try TrainingSession(graph: resumedGraph, device: device)
        try second.restore(try first.optimizerState(), for: .adamw(adamw), forwardSteps: first.forwardSteps)
        try second.startAverage(ModelAverage(decay: decay), from: averaged.values, forwardSteps: averaged.forwardSteps)
        let (input2, targets2) = batch(2, graph)
        for session in [first, second] {
            _ = try session.step(input: input2, targets: targets2, reading: false)
            _ = try session.optimize(.adamw(adamw), clipping: maxNorm, reading: false)
        }
        #expect(try second.parameters() == first.parameters())
        #expect(try second.runningStatistics() == first.runningStatistics())
        #expect(try second.averaged()?.values == first.averaged()?.values)
        #expect(try second.optimizerState() == first.optimizerState())
        #expect(second.forwardSteps == 2)
        #expect(try first.optimizerState().steps == 2)
        // A state of the wrong optimizer is refused, naming a parameter.
        #expect(throws: ParameterError.self) {
            try second.restore(try first.optimizerState(), for: .sgd(SGD(learningRate: 0.1)), forwardSteps: 0)
        }
    }
}
