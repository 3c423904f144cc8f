import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import TestSupport
import Testing
import VulkanCompute

/// Relative L2 error allowed between a whole network on Vulkan and the CPU reference (float32 through ~40 layers).
let fullModelTolerance = 1e-4

/// `batch` images of 3 channels, each channel a sum of four random plane waves of low frequency plus a little noise:
/// smooth, of unit-ish variance, as normalised photographs are (white noise is far outside what a network, or its
/// calibrated synthetic weights, is made for: it drives peaked attention to near-ties that float32 cannot resolve).
func smoothImages(batch: Int, size: Int, _ random: inout SeededRandom) -> [Float] {
    var pixels: [Float] = []
    for _ in 0..<(batch * 3) {
        let waves = (0..<4).map { _ in
            (
                amplitude: Double.random(in: 0.3...0.8, using: &random),
                fx: Double.random(in: -0.3...0.3, using: &random),
                fy: Double.random(in: -0.3...0.3, using: &random),
                phase: Double.random(in: 0...(2 * .pi), using: &random)
            )
        }
        for y in 0..<size {
            for x in 0..<size {
                var value = Double.random(in: -0.1...0.1, using: &random)
                for w in waves { value += w.amplitude * sin(w.fx * Double(x) + w.fy * Double(y) + w.phase) }
                pixels.append(Float(value))
            }
        }
    }
    return pixels
}

/// Builds `model` at 64x64, batch 2, with synthetic weights, runs it on Vulkan and on the CPU, and compares logits.
func expectVulkanMatchesCPU(_ model: Model, inputSize: Int = 64, batch: Int = 2) throws {
    let graph = try model.graph(batch: batch, inputSize: inputSize, weights: try SyntheticWeights(calibratedFor: model))
    var random = SeededRandom(seed: testSeed())
    let seed = random.state
    let input = smoothImages(batch: batch, size: inputSize, &random)
    let start = Date()
    let expected = CPUExecutor.run(graph, input: input)
    testProgress("\(model.name): the CPU reference at \(inputSize) px, batch \(batch); now the device", since: start)
    let logits = try withValidatedDevice { device in
        let session = try InferenceSession(graph: graph, device: device)
        let first = try session.run(input)
        // A replay of the same recording gives the same answer.
        #expect(try session.run(input) == first)
        return first
    }
    let comparison = Comparison(logits, expected)
    #expect(logits.count == batch * 1000)
    #expect(
        comparison.nonFinite.isEmpty && comparison.relativeL2 <= fullModelTolerance,
        "\(model.name) BOSSNET_TEST_SEED=\(seed): \(comparison)")
    // The logits are not degenerate: images differ and classes differ.
    #expect(Set(logits.prefix(1000)).count > 900)
}

// BossNet-T0, T0 without SE and T1 on the device are checked against the authors' own logits by GoldenTests; the
// MBConv space has no published model, so its check is against the CPU reference.
@Test("an MBConv-space network on Vulkan matches the CPU reference (64x64, batch 2)")
func mbconvNet() throws {
    let architecture = try Architecture.parse(
        "mbconv:6x3,3x5,6x5,3x3,6x3,3x5,6x5,3x3,6x3,3x5,6x5,3x3,6x3,3x5,6x5,3x3,6x3,3x5,6x5")
    try expectVulkanMatchesCPU(Model(architecture))
}

/// What the emulations and kernel families of the planner are checked in: (limits, kernels, tolerance on the logits).
private let plannerRuns: [(limits: LimitsMode, kernels: KernelChoice, tolerance: Double)] = [
    (.minimum, .automatic, fullModelTolerance),  // texel where views fit 65,536 texels, storage elsewhere
    (.minimum, .family(.tiled), fullModelTolerance),  // 128-lane tiles, 16 KiB shared, no subgroup arithmetic
    (.device, .family(.storage), fullModelTolerance),
    (.device, .family(.tiled), fullModelTolerance),  // subgroup reductions
    (.device, .family(.fp16), 2e-2),
    (.device, .family(.fp16math), 2e-2),
]

/// Every kernel family and both limit emulations on one full model, against the authors' logits for the same inputs
/// (the .npy fixture and gradient.png): T0 holds every kind of node (T1 differs only in the last stage's stride, and
/// `validate` checks every family at both models' shapes).
@Test("T0 gives the authors' logits in every kernel family and under the spec's minimum limits (64x64, batch 2)")
func kernelFamiliesAndMinimumLimits() throws {
    let model = try Model(name: "bossnet_T0")
    let graph = try model.graph(batch: 2, inputSize: 64, weights: try SyntheticWeights(calibratedFor: model))
    let input = try NumPyArray(contentsOf: fixture("input_64.npy")).values + gradientInput()
    let expected =
        try NumPyArray(contentsOf: fixture("bossnet_T0_logits_64.npy")).values
        + NumPyArray(contentsOf: fixture("bossnet_T0_png_logits_64.npy")).values
    let start = Date()
    for (index, run) in plannerRuns.enumerated() {
        let (logits, statistics) = try withValidatedDevice(
            options: DeviceOptions(pipelineCacheDirectory: nil, limits: run.limits)
        ) { device in
            let session = try InferenceSession(
                graph: graph, device: device, options: SessionOptions(kernels: run.kernels))
            return (try session.run(input), session.statistics)
        }
        let comparison = Comparison(logits, expected)
        #expect(
            comparison.nonFinite.isEmpty && comparison.relativeL2 <= run.tolerance,
            "\(run.limits) \(run.kernels): \(comparison)")
        testProgress(
            "bossnet_T0: run \(index + 1) of \(plannerRuns.count), \(run.kernels) within \(run.limits) limits: "
                + "relative L2 \(String(format: "%.1e", comparison.relativeL2))", since: start)
        if run.limits == .minimum && run.kernels == .automatic {
            // The stem's output (2 x 64 x 32 x 32 values) passes 65,536 texels: that node reads storage buffers.
            #expect(
                (statistics.dataPaths["storage"] ?? 0) > 0 && (statistics.dataPaths["texel"] ?? 0) > 0,
                "\(statistics.dataPaths)")
        }
    }
}

@Test("a batch that does not fit the device's memory runs in smaller submissions, with the same logits")
func microBatches() throws {
    let model = try Model(name: "bossnet_T0")
    let graph = try model.graph(batch: 3, inputSize: 64, weights: try SyntheticWeights(calibratedFor: model))
    var random = SeededRandom(seed: 12)
    let input = smoothImages(batch: 3, size: 64, &random)
    let whole = try withValidatedDevice { device in
        try InferenceSession(graph: graph, device: device, options: SessionOptions(kernels: .family(.texel))).run(input)
    }
    // Weights plus one image's activations, but not three.
    let oneImage = try withValidatedDevice { device in
        try InferenceSession(
            graph: graph.withBatch(1), device: device, options: SessionOptions(kernels: .family(.texel))
        )
        .statistics
    }
    let budget = oneImage.weightBytes + oneImage.activationBytes * 3 / 2
    let (split, statistics) = try withValidatedDevice(
        options: DeviceOptions(pipelineCacheDirectory: nil, memoryBudgetBytes: budget)
    ) { device in
        let session = try InferenceSession(
            graph: graph, device: device, options: SessionOptions(kernels: .family(.texel)))
        return (try session.run(input), session.statistics)
    }
    #expect(statistics.microBatch == 1)
    // Each output sums its products in the same order whatever the batch: the logits are the same bits.
    #expect(split == whole)

}
