import Foundation
import Kernels
import Models
import NetworkGraph
import Testing
import TestSupport
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
            (amplitude: Double.random(in: 0.3...0.8, using: &random), fx: Double.random(in: -0.3...0.3, using: &random),
             fy: Double.random(in: -0.3...0.3, using: &random), phase: Double.random(in: 0...(2 * .pi), using: &random))
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
    var random = SeededRandom(seed: SeededRandom.freshSeed())
    let seed = random.state
    let input = smoothImages(batch: batch, size: inputSize, &random)
    let expected = CPUExecutor.run(graph, input: input)
    let logits = try withValidatedDevice { device in
        let session = try InferenceSession(graph: graph, device: device)
        let first = try session.run(input)
        // A replay of the same recording gives the same answer.
        #expect(try session.run(input) == first)
        return first
    }
    let comparison = Comparison(logits, expected)
    #expect(logits.count == batch * 1000)
    #expect(comparison.nonFinite.isEmpty && comparison.relativeL2 <= fullModelTolerance,
            "\(model.name) seed \(seed): \(comparison)")
    // The logits are not degenerate: images differ and classes differ.
    #expect(Set(logits.prefix(1000)).count > 900)
}

@Test("bossnet_T0 on Vulkan matches the CPU reference (64x64, batch 2)")
func bossNetT0() throws { try expectVulkanMatchesCPU(Model(name: "bossnet_T0")) }

@Test("bossnet_T1 on Vulkan matches the CPU reference (64x64, batch 2)")
func bossNetT1() throws { try expectVulkanMatchesCPU(Model(name: "bossnet_T1")) }

@Test("bossnet_T0_nose on Vulkan matches the CPU reference (64x64, batch 2)")
func bossNetT0NoSE() throws { try expectVulkanMatchesCPU(Model(name: "bossnet_T0_nose")) }

@Test("an MBConv-space network on Vulkan matches the CPU reference (64x64, batch 2)")
func mbconvNet() throws {
    let architecture = try Architecture.parse("mbconv:6x3,3x5,6x5,3x3,6x3,3x5,6x5,3x3,6x3,3x5,6x5,3x3,6x3,3x5,6x5,3x3,6x3,3x5,6x5")
    try expectVulkanMatchesCPU(Model(architecture))
}
