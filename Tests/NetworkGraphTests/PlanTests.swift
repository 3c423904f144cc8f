import Foundation
import Kernels
import TestSupport
import Testing
import VulkanCompute

@testable import NetworkGraph

/// Declares a layer's random weight of `shape` under `name`, and after it a random bias, or a BatchNorm
/// (``randomNorm(_:_:channels:random:)``), and returns their names.
func randomLayer(
    _ graph: inout Graph, _ name: String, weight shape: [Int], random: inout SeededRandom, norm: Bool = true
) throws -> ConvWeights {
    let channels = shape[0]
    try graph.declare("\(name).weight", shape: shape, values: random.floats(shape.reduce(1, *), in: -0.3...0.3))
    guard norm else {
        try graph.declare("\(name).bias", shape: [channels], values: random.floats(channels, in: -0.2...0.2))
        return ConvWeights(weight: "\(name).weight", bias: "\(name).bias")
    }
    return ConvWeights(
        weight: "\(name).weight", norm: try randomNorm(&graph, "\(name).bn", channels: channels, random: &random))
}

/// Declares a BatchNorm with random gamma, beta and running statistics (so the session's folding is checked too).
func randomNorm(_ graph: inout Graph, _ name: String, channels: Int, random: inout SeededRandom) throws -> BatchNorm {
    let bn = BatchNorm(name)
    try graph.declare(bn.gamma, shape: [channels], values: random.floats(channels, in: 0.5...1.5))
    try graph.declare(bn.beta, shape: [channels], values: random.floats(channels, in: -0.2...0.2))
    try graph.declare(bn.runningMean, shape: [channels], values: random.floats(channels, in: -0.2...0.2))
    try graph.declare(bn.runningVariance, shape: [channels], values: random.floats(channels, in: 0.5...1.5))
    return bn
}

/// A small residual network by hand: conv . pointwise(+residual) . SE . attention . pooling . linear.
func smallGraph(batch: Int = 2, seed: UInt64 = 1) throws -> Graph {
    var random = SeededRandom(seed: seed)
    var graph = Graph(input: TensorShape(batch: batch, channels: 3, height: 16, width: 16))
    let stem = Conv2D(
        batch: batch, inChannels: 3, height: 16, width: 16, outChannels: 64, kernelSize: 3, stride: 2, padding: 1,
        epilogue: Epilogue(activation: .relu))
    let a = graph.add(
        "stem", ConvolutionLayer(stem, try randomLayer(&graph, "stem", weight: [64, 3, 3, 3], random: &random)),
        inputs: [graph.input], output: TensorShape(batch: batch, channels: 64, height: 8, width: 8))
    let pw = Pointwise(
        batch: batch, inChannels: 64, pixels: 64, outChannels: 64,
        epilogue: Epilogue(activation: .silu, hasResidual: true))
    let b = graph.add(
        "pw", ConvolutionLayer(pw, try randomLayer(&graph, "pw", weight: [64, 64, 1, 1], random: &random)),
        inputs: [a, a],
        output: graph.shapes[a])
    let se = SqueezeExcite(
        batch: batch, channels: 64, pixels: 64, reduced: 4, innerActivation: .relu,
        epilogue: Epilogue(activation: .silu, hasResidual: true))
    _ = try randomLayer(&graph, "se.fc1", weight: [4, 64, 1, 1], random: &random, norm: false)
    _ = try randomLayer(&graph, "se.fc2", weight: [64, 4, 1, 1], random: &random, norm: false)
    let c = graph.add(
        "se", SqueezeExciteLayer(se, SqueezeExciteWeights(reduce: "se.fc1", expand: "se.fc2")), inputs: [b, a],
        output: graph.shapes[a])
    let qkvOp = Pointwise(batch: batch, inChannels: 64, pixels: 64, outChannels: 192)
    let qkv = graph.add(
        "qkv", ConvolutionLayer(qkvOp, try randomLayer(&graph, "qkv", weight: [192, 64, 1, 1], random: &random)),
        inputs: [c], output: TensorShape(batch: batch, channels: 192, height: 8, width: 8))
    let attention = Attention(batch: batch, heads: 1, tokens: 64, activation: .silu)
    let norm = try randomNorm(&graph, "attention.bn", channels: 64, random: &random)
    let d = graph.add("attention", AttentionLayer(attention, norm), inputs: [qkv], output: graph.shapes[a])
    let sum = graph.add(
        "add", Add(count: graph.shapes[a].count, activation: .relu), inputs: [d, c], output: graph.shapes[a])
    let pooled = graph.add(
        "pool", AvgPool(batch: batch, channels: 64, height: 8, width: 8), inputs: [sum],
        output: TensorShape(batch: batch, channels: 64, height: 4, width: 4))
    let gap = graph.add(
        "gap", GlobalAvgPool(batch: batch, channels: 64, pixels: 16), inputs: [pooled],
        output: TensorShape(batch: batch, channels: 64, height: 1, width: 1))
    let fc = try randomLayer(&graph, "fc", weight: [10, 64], random: &random, norm: false)
    graph.add(
        "fc", ConvolutionLayer(Pointwise.linear(batch: batch, inFeatures: 64, outFeatures: 10), fc), inputs: [gap],
        output: TensorShape(batch: batch, channels: 10, height: 1, width: 1))
    return graph
}

@Test("the memory plan never lets two live tensors overlap, and shares memory between dead ones")
func memoryPlanIsSound() throws {
    let graph = try smallGraph()
    let scratch = try Lowering(graph: graph, weights: false).scratchBytes
    #expect(scratch.contains { !$0.isEmpty })  // SE and attention need scratch
    let plan = MemoryPlan(graph: graph, scratchBytes: scratch)
    let lastUse = graph.lastUse
    var lives: [(range: Range<Int>, first: Int, last: Int)] = []
    for (index, node) in graph.nodes.enumerated() {
        for (slot, bytes) in scratch[index].enumerated() {
            let region = plan.scratch[index][slot]
            #expect(region.bytes >= bytes && region.offset % MemoryPlan.alignment == 0)
            lives.append((region.offset..<region.end, index, index))
        }
        guard let region = plan.tensors[node.output] else { continue }
        #expect(region.offset % MemoryPlan.alignment == 0)
        #expect(region.bytes >= graph.shapes[node.output].count * 4)
        lives.append((region.offset..<region.end, index, lastUse[node.output] ?? index))
    }
    for i in lives.indices {
        for j in lives.indices where i < j {
            let overlapInTime = lives[i].first <= lives[j].last && lives[j].first <= lives[i].last
            #expect(!(overlapInTime && lives[i].range.overlaps(lives[j].range)), "tensors \(i) and \(j) collide")
        }
    }
    #expect(plan.arenaBytes < plan.unsharedBytes)
}

@Test("a hand-made graph runs on Vulkan like on the CPU, with fewer barriers than dispatches")
func smallGraphRuns() throws {
    let graph = try smallGraph()
    let seed = testSeed()
    var random = SeededRandom(seed: seed)
    let input = random.floats(graph.shapes[graph.input].count)
    let expected = CPUExecutor.run(graph, input: input)
    try withValidatedDevice { device in
        let session = try InferenceSession(graph: graph, device: device, options: SessionOptions(profile: true))
        let result = try session.run(input)
        let comparison = Comparison(result, expected)
        #expect(comparison.passes, "BOSSNET_TEST_SEED=\(seed): \(comparison)")
        let profile = try session.profile()
        #expect(profile.count == graph.nodes.count)
        // Timestamps in order: the node times add up to the whole run (a clamped negative step would break this),
        // and the convolution, the largest node, takes measurable time.
        let total = try #require(try session.deviceNanoseconds())
        #expect(abs(profile.reduce(0) { $0 + $1.nanoseconds } - total) <= 1e-6 * total + 1)
        #expect(profile[0].nanoseconds > 0 && total > 0)
        #expect(session.statistics.barriers < session.statistics.dispatches)
        #expect(session.statistics.activationBytes < session.statistics.unsharedActivationBytes)
        // A second input through the same recording.
        let other = input.map { -$0 }
        #expect(Comparison(try session.run(other), CPUExecutor.run(graph, input: other)).passes)
        #expect(throws: SessionError.inputSizeMismatch(given: 3, expected: graph.shapes[graph.input])) {
            try session.run([1, 2, 3])
        }
    }
}

@Test("the check names the first node whose output diverges")
func checkNamesTheFaultyNode() throws {
    let graph = try smallGraph()
    var faulty = graph
    // Plant a fault on the device side: the SE node gets other weights than the reference has.
    try faulty.setParameter("se.fc2.bias", try #require(graph.parameters["se.fc2.bias"]).map { $0 + 0.5 })
    var random = SeededRandom(seed: 5)
    let input = random.floats(graph.shapes[graph.input].count)
    try withValidatedDevice { device in
        #expect(try GraphCheck.firstDivergence(graph: graph, device: device, input: input) == nil)
        let divergence = try GraphCheck.firstDivergence(graph: faulty, device: device, input: input, reference: graph)
        #expect(divergence?.name == "se")
    }
}

@Test("BOSSNET_CHECK judges the output end to end too: every node within its tolerance is not enough")
func checkJudgesTheOutput() throws {
    let graph = try smallGraph()
    var random = SeededRandom(seed: 5)
    let input = random.floats(graph.shapes[graph.input].count)
    // A fault planted in the classifier's bias on the device side moves the output, not only its node.
    var faulty = graph
    try faulty.setParameter("fc.bias", try #require(graph.parameters["fc.bias"]).map { $0 + 1 })
    let (verdict, planted) = try withValidatedDevice { device in
        (
            try GraphCheck.run(graph: graph, device: device, input: input),
            try GraphCheck.run(graph: faulty, device: device, input: input, reference: graph)
        )
    }
    #expect(verdict.passes && verdict.endToEnd.relativeL2 > 0 && verdict.endToEnd.relativeL2 < 1e-5, "\(verdict)")
    #expect(verdict.endToEnd.tolerance == Tolerance.networkRelativeL2(for: .automatic))
    #expect(!planted.passes && planted.endToEnd.relativeL2 > 1e-2, "\(planted)")
    // Every node passes, but the output is 1e-2 from the reference (rounding amplified through a network).
    let reference = CPUExecutor.run(graph.withBatch(1), input: Array(input.prefix(input.count / 2)))
    var amplified = Comparison(reference.map { $0 * 1.01 }, reference)
    amplified.tolerance = verdict.endToEnd.tolerance
    let failing = CheckVerdict(firstDivergence: nil, endToEnd: amplified)
    #expect(!failing.passes)
    #expect("\(failing)".contains("every node matches its own CPU reference, but the output is 0.01"), "\(failing)")
}

@Test(
    "a small device: tensors past the storage range run in smaller submissions, buffers split by the allocation limit, same results"
)
func smallDeviceLimits() throws {
    let graph = try smallGraph(batch: 6)
    var random = SeededRandom(seed: 3)
    let input = random.floats(graph.shapes[graph.input].count)
    let texel = SessionOptions(kernels: .family(.texel))
    // Every run within the spec's minimum limits, so that all choose the same kernels (the subgroup-shuffle variants
    // sum attention's keys in another order) and only the submissions and buffers differ.
    let whole = try withValidatedDevice(
        options: DeviceOptions(pipelineCacheDirectory: nil, clampLimits: .vulkanMinimum)
    ) { device in
        try InferenceSession(graph: graph, device: device, options: texel).run(input)
    }
    #expect(Comparison(whole, CPUExecutor.run(graph, input: input)).passes)

    // The storage range holds the largest weights (the qkv layer's, 48 KiB) and two images' qkv output, not six.
    var range = DeviceLimits.vulkanMinimum
    range.maxStorageBufferRange = 100 * 1024
    let (ranged, rangedStatistics) = try withValidatedDevice(
        options: DeviceOptions(pipelineCacheDirectory: nil, clampLimits: range)
    ) { device in
        let session = try InferenceSession(graph: graph, device: device, options: texel)
        return (try session.run(input), session.statistics)
    }
    #expect(rangedStatistics.microBatch == 2)
    // Each output sums its products in the same order whatever the batch: the same bits.
    #expect(ranged == whole)

    // One allocation of 64 KiB at most: the activations and the weights take several buffers each.
    var allocation = DeviceLimits.vulkanMinimum
    allocation.maxMemoryAllocationSize = 64 * 1024
    allocation.maxBufferSize = 64 * 1024
    let (split, splitStatistics, arenas) = try withValidatedDevice(
        options: DeviceOptions(pipelineCacheDirectory: nil, clampLimits: allocation)
    ) { device in
        let session = try InferenceSession(graph: graph, device: device, options: texel)
        return (try session.run(input), session.statistics, session.plan.arenas)
    }
    // 80 KiB of weights need two buffers; the activations need at least two arenas, none past the limit.
    #expect(
        splitStatistics.weightBytes > 64 * 1024 && arenas.count >= 2 && splitStatistics.buffers >= arenas.count + 2,
        "\(splitStatistics)")
    #expect(arenas.allSatisfy { $0 <= 64 * 1024 }, "\(arenas)")
    #expect(split == whole)

    // Weights larger than the range cannot be split: an error that names the node.
    var tiny = DeviceLimits.vulkanMinimum
    tiny.maxStorageBufferRange = 16 * 1024
    #expect(throws: PlanError.weightsTooLarge(node: "qkv", bytes: 192 * 64 * 4, limit: 16 * 1024)) {
        try withValidatedDevice(options: DeviceOptions(pipelineCacheDirectory: nil, clampLimits: tiny)) { device in
            _ = try InferenceSession(graph: graph, device: device, options: texel)
        }
    }
}

@Test("the memory plan keeps every arena within its capacity and live tensors apart")
func memoryPlanArenas() throws {
    let graph = try smallGraph(batch: 4)
    let scratch = try Lowering(graph: graph, weights: false).scratchBytes
    // Room for the largest tensor (the qkv output) in an arena, not for everything.
    let capacity = MemoryPlan.padded(graph.shapes.map(\.count).max() ?? 0) * 4
    let plan = MemoryPlan(graph: graph, scratchBytes: scratch, capacity: capacity)
    #expect(plan.arenas.count > 1)
    #expect(plan.arenas.allSatisfy { $0 <= capacity })
    let lastUse = graph.lastUse
    let lives = graph.nodes.enumerated().compactMap { index, node -> (MemoryPlan.Region, Int, Int)? in
        plan.tensors[node.output].map { ($0, index, lastUse[node.output] ?? index) }
    }
    for (i, a) in lives.enumerated() {
        for b in lives[(i + 1)...] where a.0.arena == b.0.arena && a.1 <= b.2 && b.1 <= a.2 {
            #expect(a.0.end <= b.0.offset || b.0.end <= a.0.offset, "live tensors overlap in arena \(a.0.arena)")
        }
    }
}

/// A downsampling block's two branches, built the way the model reads (shortcut first): the shortcut's average pool
/// and 1x1 convolution, then the main path's 1x1 convolution and strided depthwise convolution, joined by a 1x1
/// convolution whose epilogue adds the shortcut.
func branchingGraph(batch: Int = 2) throws -> Graph {
    var random = SeededRandom(seed: 3)
    var graph = Graph(input: TensorShape(batch: batch, channels: 16, height: 8, width: 8))
    let x = graph.input
    let small = TensorShape(batch: batch, channels: 16, height: 4, width: 4)
    let pooled = graph.add(
        "shortcut.0", AvgPool(batch: batch, channels: 16, height: 8, width: 8), inputs: [x], output: small)
    let shortcut = graph.add(
        "shortcut.1",
        ConvolutionLayer(
            Pointwise(batch: batch, inChannels: 16, pixels: 16, outChannels: 32),
            try randomLayer(&graph, "shortcut.1", weight: [32, 16, 1, 1], random: &random)),
        inputs: [pooled], output: TensorShape(batch: batch, channels: 32, height: 4, width: 4))
    let conv1 = graph.add(
        "conv1",
        ConvolutionLayer(
            Pointwise(batch: batch, inChannels: 16, pixels: 64, outChannels: 16, epilogue: Epilogue(activation: .relu)),
            try randomLayer(&graph, "conv1", weight: [16, 16, 1, 1], random: &random)), inputs: [x],
        output: graph.shapes[x])
    let peg = graph.add(
        "peg",
        DepthwiseLayer(
            Depthwise(batch: batch, channels: 16, height: 8, width: 8, kernelSize: 3, stride: 2, padding: 1),
            try randomLayer(&graph, "peg", weight: [16, 1, 3, 3], random: &random)), inputs: [conv1], output: small)
    graph.add(
        "conv3",
        ConvolutionLayer(
            Pointwise(
                batch: batch, inChannels: 16, pixels: 16, outChannels: 32,
                epilogue: Epilogue(activation: .relu, hasResidual: true)),
            try randomLayer(&graph, "conv3", weight: [32, 16, 1, 1], random: &random)),
        inputs: [peg, shortcut], output: graph.shapes[shortcut])
    return graph
}

@Test("independent branches run side by side: level order, memory kept apart within a level, one barrier per level")
func branchesShareBarriers() throws {
    let graph = try branchingGraph()
    let ordered = graph.inLevelOrder()
    #expect(ordered.nodes.map(\.name) == ["shortcut.0", "conv1", "shortcut.1", "peg", "conv3"])
    #expect(ordered.levelRuns == [0...1, 0...1, 2...3, 2...3, 4...4])
    #expect(graph.levelRuns == [0...0, 1...1, 2...2, 3...3, 4...4])  // levels 1, 2, 1, 2, 3: no two side by side
    // No tensor shares memory with one that another node of its run still reads or writes.
    let plan = MemoryPlan(graph: ordered, scratchBytes: Array(repeating: [], count: ordered.nodes.count))
    let lastUse = ordered.lastUse, runs = ordered.levelRuns
    let lives = ordered.nodes.enumerated().compactMap { index, node -> (MemoryPlan.Region, ClosedRange<Int>)? in
        plan.tensors[node.output].map { ($0, runs[index].lowerBound...runs[lastUse[node.output] ?? index].upperBound) }
    }
    for (i, a) in lives.enumerated() {
        for b in lives[(i + 1)...] where a.1.overlaps(b.1) {
            #expect(a.0.end <= b.0.offset || b.0.end <= a.0.offset, "tensors live in one run share memory")
        }
    }
    var random = SeededRandom(seed: testSeed())
    let input = random.floats(graph.shapes[graph.input].count)
    try withValidatedDevice { device in
        let session = try InferenceSession(graph: graph, device: device)
        #expect(Comparison(try session.run(input), CPUExecutor.run(graph, input: input)).passes)
        // Three levels, so two barriers (in the order as built: three, the pool alone before the shortcut's conv).
        #expect(session.statistics.dispatches == 5)
        #expect(session.statistics.barriers == 2)
    }
}

@Test("a graph without its parameters' values is refused before any allocation, naming the node and the parameter")
func missingParameters() throws {
    var graph = try smallGraph()
    graph.parameters = ParameterStore()
    _ = try withValidatedDevice { device in
        #expect(throws: PlanError.parameterMissing(node: "stem", parameter: "stem.weight")) {
            try InferenceSession(graph: graph, device: device)
        }
    }
}
