import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import TestSupport
import Testing
import VulkanCompute

/// PyTorch's own float32 error on the same step, as the fixture tool measured it (Tools/make_training_fixtures.py).
private struct TorchFloat32: Decodable {
    let gradients_relative_l2: Double
}

private struct FixtureErrors: Decodable {
    let torch_float32: TorchFloat32
}

private func relativeL2(_ actual: [Float], _ expected: [Double]) -> Double {
    let (difference, norm) = zip(actual, expected).reduce((0.0, 0.0)) { sums, pair in
        let d = Double(pair.0) - pair.1
        return (sums.0 + d * d, sums.1 + pair.1 * pair.1)
    }
    return norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot()
}

@Test(
    "a training step on the device equals the float64 reference about as closely as PyTorch's float32 does",
    arguments: [
        ("bossnet_T0", false), ("bossnet_T0_nose", false), ("bossnet_T1", false), ("bossnet_T0", true),
        ("bossnet_T0_nose", true),
    ])
func deviceTrainingStep(name: String, dropPath: Bool) throws {
    let file = dropPath ? "\(name)_droppath_training_64.json" : "\(name)_training_64.json"
    let errors = try JSONDecoder().decode(FixtureErrors.self, from: Data(contentsOf: fixture(file)))
    let (graph, input, targets) = try trainingFixtureCase(name)
    let model = try Model(name: name)
    // Under stochastic depth: the model's branches at the fixture's rate, and the fixture's masks.
    let (depth, masks) =
        dropPath
        ? (
            try model.stochasticDepth(rate: try DropPathFixture(model: name).rate, graph: graph),
            try DropPathFixture(model: name).masks(model: model)
        )
        : (.none, [:])
    let expected = try TrainingReference(graph).step(input: input, targets: targets, masks: masks)
    let step = try withValidatedDevice { device in
        try TrainingSession(graph: graph, device: device, stochasticDepth: depth).step(
            input: input, targets: targets.map(Float.init), masks: masks)
    }

    #expect(abs(step.loss - expected.loss) <= 1e-5 * expected.loss, "loss \(step.loss) against \(expected.loss)")
    #expect(Set(step.gradients.keys) == Set(expected.gradients.keys))
    // All gradients together within 3x PyTorch float32's error; each array within 5e-2 where its true gradient is
    // not ~0 (a bias before a train-mode BatchNorm has a true gradient of 0: rounding is all there is of it).
    let names = expected.gradients.keys.sorted()
    let all = relativeL2(
        names.flatMap { step.gradients[$0] ?? [] }, names.flatMap { expected.gradients[$0] ?? [] })
    #expect(all <= 3 * errors.torch_float32.gradients_relative_l2, "\(name): all gradients \(all)")
    let total = names.reduce(0.0) { sum, name in (expected.gradients[name] ?? []).reduce(sum) { $0 + $1 * $1 } }
        .squareRoot()
    var worst = (error: 0.0, name: "")
    for parameter in names {
        let reference = try #require(expected.gradients[parameter])
        guard reference.reduce(0.0, { $0 + $1 * $1 }).squareRoot() > 1e-6 * total else { continue }
        let error = relativeL2(try #require(step.gradients[parameter]), reference)
        if error > worst.error { worst = (error, parameter) }
    }
    #expect(worst.error <= 5e-2, "\(name): \(worst.name) \(worst.error)")
    for (buffer, reference) in expected.runningStatistics {
        let error = relativeL2(try #require(step.runningStatistics[buffer]), reference)
        #expect(error <= 1e-5, "\(name): \(buffer) \(error)")
    }
    print(
        "\(name): all gradients \(all) (PyTorch float32 \(errors.torch_float32.gradients_relative_l2)), worst array \(worst)"
    )
}

@Test(
    "memory planning: shared arenas, and outputs recomputed where memory is short, give the bits of every buffer apart"
)
func sharedTrainingMemory() throws {
    let (graph, input, targets) = try trainingFixtureCase("bossnet_T0")
    let masks = try DropPathFixture(model: "bossnet_T0").masks(model: try Model(name: "bossnet_T0"))
    let depth = try StochasticDepth(graph: graph, rates: masks.mapValues { _ in 0.5 })
    func session(_ device: VulkanDevice, share: Bool = true, _ recomputation: Recomputation = .never) throws
        -> TrainingSession
    {
        try TrainingSession(
            graph: graph, device: device, stochasticDepth: depth, share: share, recomputation: recomputation)
    }
    let (sessions, steps) = try withValidatedDevice { device in
        let sessions = try [session(device), session(device, share: false), session(device, .always)]
        let steps = try sessions.map { try $0.step(input: input, targets: targets.map(Float.init), masks: masks) }
        // Only a session that keeps every buffer apart reads a tensor back.
        #expect(throws: ParameterError.self) { try sessions[0].value(of: graph.nodes[3].output) }
        #expect(try sessions[1].value(of: graph.nodes[3].output)?.count == graph.shapes[graph.nodes[3].output].count)
        return (sessions, steps)
    }
    let (shared, apart, recomputing) = (sessions[0], sessions[1], sessions[2])
    #expect(apart.plannedBytes == apart.unsharedPlannedBytes && shared.unsharedPlannedBytes == apart.plannedBytes)
    print(
        "T0 64 px batch 4: \(apart.plannedBytes) bytes apart, \(shared.plannedBytes) shared, "
            + "\(recomputing.plannedBytes) recomputing")
    #expect(3 * shared.plannedBytes < apart.plannedBytes && recomputing.plannedBytes < shared.plannedBytes)
    #expect(recomputing.recomputes && !shared.recomputes)
    for step in steps.dropFirst() {
        #expect(step.loss == steps[0].loss)
        #expect(step.gradients == steps[0].gradients)
        #expect(step.runningStatistics == steps[0].runningStatistics)
    }

    // Where the plan without recomputing passes the memory budget by a byte, the session recomputes; where nothing
    // fits, it says so.
    let tight = DeviceOptions(pipelineCacheDirectory: nil, memoryBudgetBytes: shared.budgetedBytes - 1)
    let chosen = try withValidatedDevice(options: tight) { try session($0, .whereMemoryIsShort) }
    #expect(chosen.recomputes && chosen.budgetedBytes < shared.budgetedBytes)
    let small = DeviceOptions(pipelineCacheDirectory: nil, memoryBudgetBytes: shared.ownedBytes)
    #expect {
        try withValidatedDevice(options: small) { _ = try session($0, .whereMemoryIsShort) }
    } throws: { error in
        "\(error)".contains("Train with a smaller batch")
    }
}

@Test(
    "data parallel: two replicas on one device, each stepping on half the batch, hold the mean of the halves' float64 gradients and take the same optimizer step"
)
func dataParallelStep() throws {
    let (_, input, targets) = try trainingFixtureCase("bossnet_T0")
    let errors = try JSONDecoder().decode(
        FixtureErrors.self, from: Data(contentsOf: fixture("bossnet_T0_data_parallel_64.json")))
    let model = try Model(name: "bossnet_T0")
    let graph = try model.graph(
        batch: 2, inputSize: 64, weights: SyntheticWeights(gains: model.architecture.family.syntheticGains))
    let (pixels, classes) = (input.count / 2, targets.count / 2)
    let halves = (0..<2).map {
        (
            input: Array(input[$0 * pixels..<($0 + 1) * pixels]),
            targets: Array(targets[$0 * classes..<($0 + 1) * classes])
        )
    }
    let references = try halves.map { try TrainingReference(graph).step(input: $0.input, targets: $0.targets) }
    let names = references[0].gradients.keys.sorted()
    let mean = names.flatMap { name in
        zip(references[0].gradients[name] ?? [], references[1].gradients[name] ?? []).map { ($0 + $1) / 2 }
    }
    let (own, averaged) = try withValidatedDevice { device in
        let replicas = try (0..<2).map { _ in try TrainingSession(graph: graph, device: device) }
        for (replica, half) in zip(replicas, halves) {
            _ = try replica.step(input: half.input, targets: half.targets.map(Float.init), reading: false)
        }
        let own = try replicas[0].gradients()
        try TrainingSession.averageGradients(replicas)
        let averaged = try replicas.map { try $0.gradients() }
        #expect(averaged[0] == averaged[1], "the replicas hold different gradients after the all-reduce")
        let stepped = try replicas.map { try $0.optimize(.adamw(AdamW(learningRate: 1e-2, weightDecay: 0.05))) }
        #expect(stepped[0] == stepped[1], "the replicas' parameters differ after the same optimizer step")
        return (names.flatMap { own[$0] ?? [] }, names.flatMap { averaged[0][$0] ?? [] })
    }
    let error = relativeL2(averaged, mean)
    #expect(
        error <= 3 * errors.torch_float32.gradients_relative_l2, "averaged gradients against the reference: \(error)")
    // One replica's own gradients are far from the mean: the average is of two different halves.
    #expect(relativeL2(own, mean) > 0.05, "one half's gradients are already the mean: \(relativeL2(own, mean))")
}
