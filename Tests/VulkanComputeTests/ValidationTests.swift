import Kernels
import TestSupport
import Testing
import VulkanCompute

/// The tests' zero-message check only means something if the layer is really watching: a read-after-write with no
/// barrier between two dispatches must be reported by synchronization validation.
@Test("synchronization validation reports a missing barrier")
func syncValidationIsOn() throws {
    let messages = try validationMessages { device in
        let count = 1024
        let a = try VulkanBuffer(device: device, size: count * 4)
        let b = try VulkanBuffer(device: device, size: count * 4)
        let c = try VulkanBuffer(device: device, size: count * 4)
        try a.upload([Float](repeating: 1, count: count))
        try b.upload([Float](repeating: 2, count: count))
        let add = Add(count: count).launch()
        let pipeline = try KernelPipelines(device: device).pipeline(for: add)
        let pool = try DescriptorPool(device: device, forSetsOf: [pipeline, pipeline])
        let view = { (buffer: VulkanBuffer) in try TexelBufferView(buffer: buffer, format: .rgba32Float) }
        let first = try pool.makeSet(for: pipeline, [.texels(view(a)), .texels(view(b)), .buffer(c)])
        let second = try pool.makeSet(for: pipeline, [.texels(view(c)), .texels(view(b)), .buffer(a)])
        try device.run { commands in
            try add.record(commands, set: first)
            // Deliberately no barrier: the second dispatch reads c while the first may still write it.
            try add.record(commands, set: second)
        }
    }
    #expect(messages.contains { $0.id.contains("SYNC-HAZARD") }, "expected a SYNC-HAZARD message, got \(messages)")
}

@Test("a correct sequence with a barrier draws no message")
func barrierSilencesTheHazard() throws {
    let result: [Float] = try withValidatedDevice { device in
        let count = 1024
        let a = try VulkanBuffer(device: device, size: count * 4)
        let b = try VulkanBuffer(device: device, size: count * 4)
        let c = try VulkanBuffer(device: device, size: count * 4)
        try a.upload([Float](repeating: 1, count: count))
        try b.upload([Float](repeating: 2, count: count))
        let add = Add(count: count).launch()
        let pipeline = try KernelPipelines(device: device).pipeline(for: add)
        let pool = try DescriptorPool(device: device, forSetsOf: [pipeline, pipeline])
        let view = { (buffer: VulkanBuffer) in try TexelBufferView(buffer: buffer, format: .rgba32Float) }
        let first = try pool.makeSet(for: pipeline, [.texels(view(a)), .texels(view(b)), .buffer(c)])
        let second = try pool.makeSet(for: pipeline, [.texels(view(c)), .texels(view(b)), .buffer(a)])
        try device.run { commands in
            try add.record(commands, set: first)
            // c: written, then read. a: read by the first dispatch, then written by the second.
            commands.barrier(.computeReadWrite, before: .computeReadWrite, buffers: [a, c])
            try add.record(commands, set: second)
            commands.barrier(.computeWrite, before: .hostRead, buffers: [a])
        }
        return try a.download(Float.self, count: count)
    }
    #expect(result.allSatisfy { $0 == 5 })
}

@Test("a resource of the wrong kind for a binding is an error that names what the shader takes and what it was given")
func bindingKindMismatch() throws {
    try withValidatedDevice { device in
        let buffer = try VulkanBuffer(device: device, size: 1024 * 4)
        let add = Add(count: 1024).launch()
        let pipeline = try KernelPipelines(device: device).pipeline(for: add)
        let pool = try DescriptorPool(device: device, forSetsOf: [pipeline])
        let view = try TexelBufferView(buffer: buffer, format: .rgba32Float)
        #expect(
            throws: VulkanSetupError.kernelInterfaceMismatch(
                kernel: pipeline.name,
                .bindings(
                    shader: [.uniformTexelBuffer, .uniformTexelBuffer, .storageBuffer],
                    given: ["storage buffer", "texel view", "texel view"]))
        ) {
            _ = try pool.makeSet(for: pipeline, [.buffer(buffer), .texels(view), .texels(view)])
        }
    }
}
