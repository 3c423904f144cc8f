import Foundation
import VulkanCompute

/// The validation layer reported something during a test.
public struct ValidationFailure: Error, CustomStringConvertible {
    public let messages: [ValidationMessage]
    public var description: String {
        "the Vulkan validation layer reported \(messages.count) message(s):\n"
            + messages.map { "  \($0)" }.joined(separator: "\n")
    }
}

/// Runs `body` on the default Vulkan device with VK_LAYER_KHRONOS_validation and synchronization validation on, then
/// throws ``ValidationFailure`` if the layer said anything, including while the device was being destroyed.
///
/// There is no skipping: with no Vulkan device or no validation layer, this throws and the test fails. The pipeline
/// cache is kept in memory only, so tests never touch the user's cache directory.
///
/// `options` defaults to no pipeline cache on disk; pass others (``LimitsMode/minimum``, a memory budget) to emulate
/// another device.
public func withValidatedDevice<R>(
    options: DeviceOptions = DeviceOptions(pipelineCacheDirectory: nil), _ body: (VulkanDevice) throws -> R
) throws -> R {
    let instance = try VulkanInstance(validation: .required)
    let result = try openAndRun(instance, options, body)
    let messages = instance.validationMessages
    if !messages.isEmpty { throw ValidationFailure(messages: messages) }
    return result
}

/// Like ``withValidatedDevice(_:)`` but returns the layer's messages instead of failing on them, for tests that
/// check the layer is really watching.
public func validationMessages(during body: (VulkanDevice) throws -> Void) throws -> [ValidationMessage] {
    let instance = try VulkanInstance(validation: .required)
    try openAndRun(instance, DeviceOptions(pipelineCacheDirectory: nil), body)
    return instance.validationMessages
}

// In a function of its own so that the device is released (and destroyed) before the messages are read.
private func openAndRun<R>(_ instance: VulkanInstance, _ options: DeviceOptions, _ body: (VulkanDevice) throws -> R)
    throws -> R
{
    let device = try VulkanDevice(instance: instance, options: options)
    return try body(device)
}

/// The bits of a quiet NaN, for poisoning buffers that a test expects to be overwritten.
public let poisonBits: UInt32 = 0x7FC0_0000

/// The seed of a test's random inputs: `BOSSNET_TEST_SEED` when the environment sets it, else a fixed seed, so every
/// run draws the same inputs and a failure reproduces. Tests print the seed in their failure messages; rerun with
/// `BOSSNET_TEST_SEED=<seed> swift test --filter <test>` (or another value to draw other inputs).
public func testSeed() -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["BOSSNET_TEST_SEED"], let seed = UInt64(text) { return seed }
    return 0x5EED_B055_0000_0001
}
