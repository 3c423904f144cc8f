import CVulkan
import Foundation
import Kernels
import TestSupport
import Testing

@testable import VulkanCompute

@Test("the loader finds a Vulkan device (CI must have one: no skipping)")
func findsADevice() throws {
    let instance = try VulkanInstance(validation: .required)
    let devices = try instance.physicalDevices()
    #expect(!devices.isEmpty)
    let chosen = try instance.chooseDevice()
    #expect(!chosen.info.name.isEmpty)
    #expect(chosen.info.limits.subgroupSize >= 1)
    #expect(chosen.info.limits.maxPushConstantsSize >= 128)
    #expect(chosen.info.memoryHeaps.contains { $0.deviceLocal })
    #expect(instance.validationEnabled)
}

@Test("a device index that does not exist is a clear error")
func badDeviceIndex() throws {
    let instance = try VulkanInstance(validation: .off)
    let count = try instance.physicalDevices().count
    #expect(throws: VulkanSetupError.deviceIndexOutOfRange(index: count + 5, count: count)) {
        try instance.chooseDevice(index: count + 5)
    }
    let message = VulkanSetupError.deviceIndexOutOfRange(index: 7, count: 1).description
    #expect(message.contains("1 Vulkan device(s), numbered 0 to 0"))
    #expect(!message.contains("bossnet"), "the library names no tool; the command line adds its own hints")
}

@Test("a failed call names the call and the VkResult")
func errorsNameTheCall() {
    let error = VulkanError(call: "vkAllocateMemory", result: VK_ERROR_OUT_OF_DEVICE_MEMORY)
    #expect(error.description == "vkAllocateMemory failed with VK_ERROR_OUT_OF_DEVICE_MEMORY (-2)")
}

@Test("the device-type preference is discrete > integrated > virtual > CPU")
func deviceTypeOrder() {
    #expect(
        [DeviceType.cpu, .discrete, .virtual, .integrated].sorted(by: >) == [.discrete, .integrated, .virtual, .cpu])
}

@Test("buffers round-trip data in device-local and staging memory", arguments: [BufferMemory.deviceLocal, .staging])
func bufferRoundTrip(memory: BufferMemory) throws {
    try withValidatedDevice { device in
        let values = (0..<1000).map { Float($0) * 0.5 - 7 }
        let buffer = try VulkanBuffer(device: device, size: 4000 + 64, memory: memory)
        try buffer.upload(values, at: 64)
        #expect(try buffer.download(Float.self, count: 1000, from: 64) == values)
        #expect(
            throws: VulkanSetupError.badRange(
                buffer: "buffer", offset: 128, bytes: 4000, bufferBytes: 4064, alignment: 1)
        ) {
            try buffer.upload(values, at: 128)
        }
    }
}

@Test("the device counts the memory its buffers hold, and forgets a buffer once it is freed")
func allocationCount() throws {
    try withValidatedDevice { device in
        let before = device.allocatedBytes
        var buffers = [try VulkanBuffer(device: device, size: 4000), try VulkanBuffer(device: device, size: 100_000)]
        let held = device.allocatedBytes - before
        #expect(held >= 104_000 && held < 104_000 + 2 * 65536, "counted \(held) bytes for 104,000")
        buffers.removeLast()
        #expect(device.allocatedBytes - before >= 4000 && device.allocatedBytes - before < 100_000)
        buffers.removeAll()
        #expect(device.allocatedBytes == before)
    }
}

@Test("a copy between buffers on the queue, with barriers, arrives intact")
func queueCopy() throws {
    try withValidatedDevice { device in
        let source = try VulkanBuffer(device: device, size: 256)
        let destination = try VulkanBuffer(device: device, size: 256)
        let bytes = (0..<256).map { UInt8($0) }
        try source.upload(bytes)
        try device.run { commands in
            commands.fill(destination, with: poisonBits)
            commands.barrier(.transferWrite, before: .transferWrite, buffers: [destination])
            commands.copy(from: source, to: destination, size: 128, sourceOffset: 128, destinationOffset: 0)
            commands.barrier(.transferWrite, before: .hostRead, buffers: [destination])
        }
        let result = try destination.download(UInt8.self, count: 256)
        #expect(Array(result.prefix(128)) == Array(bytes.suffix(128)))
        // The rest still holds the fill pattern.
        #expect(result[128..<132] == [0x00, 0x00, 0xC0, 0x7F])
    }
}

@Test("timestamps come back in order, in nanoseconds")
func timestamps() throws {
    try withValidatedDevice { device in
        let queries = try TimestampQueries(device: device, count: 2)
        let buffer = try VulkanBuffer(device: device, size: 1 << 20)
        try device.run { commands in
            commands.resetQueries(queries)
            commands.writeTimestamp(queries, index: 0)
            commands.fill(buffer, with: 0)
            commands.writeTimestamp(queries, index: 1)
        }
        let times = try queries.nanoseconds()
        #expect(times.count == 2)
        // Written, in order, around real work: filling a megabyte takes measurable time.
        #expect(times[0] > 0 && times[1] > times[0])
        #expect(times[1] - times[0] < 60e9)
    }
}

@Test("half conversions by hand (for Intel Macs, which lack Float16) agree with Float16 bit for bit")
func halfConversions() {
    let seed = testSeed()
    var random = SeededRandom(seed: seed)
    var values: [Float] = [
        0, -0, 1, -1, 65504, 65519, 65520, -65520, 1e-8, 5.96e-8, 2.98e-8, 6.1e-5, 6.09e-5, .infinity, -.infinity,
        1 + 1 / 2048, 1 + 3 / 2048, 0.1, 31337,
    ]
    for _ in 0..<20_000 {
        values.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &random)))
    }
    for value in values where !value.isNaN {
        #expect(Half.bitsByHand(value) == Float16(value).bitPattern, "\(value) BOSSNET_TEST_SEED=\(seed)")
    }
    for bits in UInt16.min...UInt16.max where !Float16(bitPattern: bits).isNaN {
        #expect(Half.floatByHand(bits) == Float(Float16(bitPattern: bits)), "\(bits)")
    }
    #expect(Half.floatByHand(Half.bitsByHand(.nan)).isNaN)
}
