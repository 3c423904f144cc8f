import Kernels
import Testing
import TestSupport
import VulkanCompute

/// Runs the add kernel on the device and returns `count` outputs plus the guard floats that follow them.
private func runAdd(_ device: VulkanDevice, _ a: [Float], _ b: [Float], activation: Activation, guardValue: Float) throws -> [Float] {
    let count = a.count
    let padded = (count + 3) / 4 * 4
    let inputA = try VulkanBuffer(device: device, size: padded * 4, label: "a")
    let inputB = try VulkanBuffer(device: device, size: padded * 4, label: "b")
    try inputA.upload(a)
    try inputB.upload(b)
    // Outputs start as NaN so an element the kernel does not write fails; four guard floats after them must survive.
    let output = try VulkanBuffer(device: device, size: (count + 4) * 4, label: "y")
    try output.upload([Float](repeating: Float(bitPattern: poisonBits), count: count) + [Float](repeating: guardValue, count: 4))

    let pipeline = try Add.pipeline(device: device, activation: activation)
    let pool = try DescriptorPool(device: device, forSetsOf: [pipeline])
    let set = try pool.makeSet(for: pipeline, [
        .texels(TexelBufferView(buffer: inputA, format: .rgba32Float)),
        .texels(TexelBufferView(buffer: inputB, format: .rgba32Float)),
        .buffer(output),
    ])
    try device.run { commands in
        try Add.record(commands, set: set, count: count)
        commands.barrier(.computeWrite, before: .hostRead, buffers: [output])
    }
    return try output.download(Float.self, count: count + 4)
}

@Test("add matches the CPU reference", arguments: [1, 3, 4, 5, 255, 1023, 4099, 70_001])
func addMatchesReference(count: Int) throws {
    let seed = SeededGenerator.freshSeed()
    var random = SeededGenerator(seed: seed)
    try withValidatedDevice { device in
        for activation in Activation.allCases {
            let a = random.floats(count, in: -4...4)
            let b = random.floats(count, in: -4...4)
            let result = try runAdd(device, a, b, activation: activation, guardValue: 12345)
            let comparison = Comparison(Array(result.prefix(count)), Add.reference(a, b, activation: activation))
            #expect(comparison.passesFloat32, "add \(activation) n=\(count) seed=\(seed): \(comparison)")
            #expect(Array(result.suffix(4)) == [12345, 12345, 12345, 12345], "add wrote past its output (n=\(count))")
        }
    }
}

@Test("the CPU reference of add computes the activation of the sum")
func addReferenceKnownValues() {
    #expect(Add.reference([1, -2], [0.5, 0.5], activation: .identity) == [1.5, -1.5])
    #expect(Add.reference([1, -2], [0.5, 0.5], activation: .relu) == [1.5, 0])
    let silu = Add.reference([1], [0], activation: .silu)[0]
    #expect(abs(silu - 0.7310586) < 1e-6)
    let sigmoid = Add.reference([0], [0], activation: .sigmoid)[0]
    #expect(sigmoid == 0.5)
}
