import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import Testing
import TestSupport

func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}

/// Logits that PyTorch computed (Tools/make_fixtures.py) for BossNet-T0 with the synthetic weights, which both sides
/// generate from the formula documented on SyntheticWeights.
@Test("BossNet-T0 on Vulkan gives PyTorch's logits for an .npy input (64x64)")
func goldenNPY() throws {
    let input = try NumPyArray(contentsOf: fixture("input_64.npy"))
    let expected = try NumPyArray(contentsOf: fixture("t0_logits_64.npy"))
    let graph = try Model(name: "bossnet_T0").graph(batch: 1, inputSize: 64, weights: SyntheticWeights())
    let logits = try withValidatedDevice { device in try InferenceSession(graph: graph, device: device).run(input.values) }
    let comparison = Comparison(logits, expected.values)
    #expect(comparison.relativeL2 < 1e-4, "\(comparison)")
}

@Test("BossNet-T0 through the PNG preprocessing gives PyTorch's logits (64x64)")
func goldenPNG() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ImagesTests/Fixtures/gradient.png")
    let input = Preprocess.evaluationTensor(try RGBImage(pngFile: url), inputSize: 64)
    let expected = try NumPyArray(contentsOf: fixture("t0_png_logits_64.npy"))
    let graph = try Model(name: "bossnet_T0").graph(batch: 1, inputSize: 64, weights: SyntheticWeights())
    let logits = try withValidatedDevice { device in try InferenceSession(graph: graph, device: device).run(input) }
    let comparison = Comparison(logits, expected.values)
    #expect(comparison.relativeL2 < 1e-2, "\(comparison)")
    #expect(comparison.relativeL2 < 1e-4, "PIL-exact preprocessing should leave only float rounding: \(comparison)")
}
