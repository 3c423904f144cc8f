import CVulkan
import Foundation

/// A pool of GPU timestamps, read back as nanoseconds.
public final class TimestampQueries {
    public let device: VulkanDevice
    let handle: VkQueryPool
    /// The number of timestamps.
    public let count: Int

    /// Makes `count` timestamps. Throws when the device's compute queue has no timestamp support.
    public init(device: VulkanDevice, count: Int) throws {
        guard device.timestampValidBits > 0 else {
            throw VulkanSetupError.noTimestamps(device: device.info.name)
        }
        self.device = device
        self.count = count
        var info = VkQueryPoolCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO
        info.queryType = VK_QUERY_TYPE_TIMESTAMP
        info.queryCount = UInt32(max(count, 1))
        var pool: VkQueryPool?
        try check(vkCreateQueryPool(device.handle, &info, nil, &pool), "vkCreateQueryPool")
        guard let pool else { throw VulkanError(call: "vkCreateQueryPool", result: VK_ERROR_INITIALIZATION_FAILED) }
        handle = pool
    }

    deinit { vkDestroyQueryPool(device.handle, handle, nil) }

    /// The timestamps in nanoseconds (raw ticks masked to the valid bits and scaled by the device's timestampPeriod).
    /// Call after the submission that wrote them has finished.
    public func nanoseconds() throws -> [Double] {
        var ticks = [UInt64](repeating: 0, count: count)
        let flags = VkQueryResultFlags(VK_QUERY_RESULT_64_BIT.rawValue | VK_QUERY_RESULT_WAIT_BIT.rawValue)
        try ticks.withUnsafeMutableBytes { bytes in
            try check(
                vkGetQueryPoolResults(
                    device.handle, handle, 0, UInt32(count), bytes.count, bytes.baseAddress, 8, flags),
                "vkGetQueryPoolResults")
        }
        let bits = device.timestampValidBits
        let mask: UInt64 = bits >= 64 ? .max : (1 << UInt64(bits)) - 1
        let period = Double(device.info.timestampPeriodNanoseconds)
        return ticks.map { Double($0 & mask) * period }
    }
}
