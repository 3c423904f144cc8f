import Kernels
import TestSupport
import Testing
import VulkanCompute

@Test("add matches the CPU reference", arguments: [1, 3, 4, 5, 255, 1023, 4099, 70_001])
func addMatchesReference(count: Int) throws {
    try withValidatedDevice { device in
        for activation in Activation.allCases {
            for family in [KernelFamily.texel, .storage, .fp16] {
                let seed = testSeed()
                let comparison = try Add(count: count, activation: activation).check().run(
                    on: device, seed: seed, family: family)
                #expect(
                    comparison.passes, "add \(family) \(activation) n=\(count) BOSSNET_TEST_SEED=\(seed): \(comparison)"
                )
            }
        }
    }
}

@Test("the CPU reference of add computes the activation of the sum")
func addReferenceKnownValues() {
    #expect(Add(count: 2).reference([1, -2], [0.5, 0.5]) == [1.5, -1.5])
    #expect(Add(count: 2, activation: .relu).reference([1, -2], [0.5, 0.5]) == [1.5, 0])
    #expect(abs(Add(count: 1, activation: .silu).reference([1], [0])[0] - 0.7310586) < 1e-6)
    #expect(Add(count: 1, activation: .sigmoid).reference([0], [0])[0] == 0.5)
}
