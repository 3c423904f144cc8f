import CVulkan
import Foundation

/// Every device limit the engine reads, in one place: what kernels, views, buffers and plans are checked against.
///
/// ``VulkanDevice/limits`` holds the device's own values, or the Vulkan spec's guaranteed minimums when the device was
/// opened with ``LimitsMode/minimum`` (to see on any machine how the engine behaves on the smallest devices).
public struct DeviceLimits: Sendable, Codable, Equatable {
    /// Texels one uniform texel buffer view may hold.
    public var maxTexelBufferElements: Int
    /// Bytes one storage-buffer descriptor may cover.
    public var maxStorageBufferRange: Int
    /// Bytes of shared memory one workgroup may use.
    public var maxComputeSharedMemorySize: Int
    /// Invocations in one workgroup.
    public var maxComputeWorkGroupInvocations: Int
    /// Workgroup size in x, y and z.
    public var maxComputeWorkGroupSize: [Int]
    /// Workgroups one dispatch may have in x, y and z.
    public var maxComputeWorkGroupCount: [Int]
    /// Bytes of push constants.
    public var maxPushConstantsSize: Int
    /// Bytes of one memory allocation (maxMemoryAllocationSize, Vulkan 1.1).
    public var maxMemoryAllocationSize: Int
    /// Bytes of one buffer (maxBufferSize, Vulkan 1.3; the allocation limit where the device does not say).
    public var maxBufferSize: Int
    /// Offsets of storage-buffer descriptors are multiples of this.
    public var minStorageBufferOffsetAlignment: Int
    /// Offsets of texel buffer views are multiples of this.
    public var minTexelBufferOffsetAlignment: Int
    /// Storage buffers one shader stage may bind (4 on the smallest devices).
    public var maxPerStageDescriptorStorageBuffers: Int = 4
    /// Sampled images, uniform texel buffers among them, one shader stage may bind (16 on the smallest devices).
    public var maxPerStageDescriptorSampledImages: Int = 16
    /// Storage images, storage texel buffers among them, one shader stage may bind (4 on the smallest devices).
    public var maxPerStageDescriptorStorageImages: Int = 4
    /// Invocations in one subgroup (a warp or wavefront).
    public var subgroupSize: Int
    /// Whether compute shaders may use subgroup arithmetic (subgroupAdd and the like).
    public var subgroupArithmetic: Bool
    /// Whether compute shaders may use subgroup shuffles (subgroupShuffle).
    public var subgroupShuffle = false

    /// The least every Vulkan 1.1 device guarantees (the spec's table of required limits; alignments at their largest
    /// allowed value, no subgroup arithmetic, subgroups of one).
    public static let vulkanMinimum = DeviceLimits(
        maxTexelBufferElements: 65_536, maxStorageBufferRange: 1 << 27, maxComputeSharedMemorySize: 16_384,
        maxComputeWorkGroupInvocations: 128, maxComputeWorkGroupSize: [128, 128, 64],
        maxComputeWorkGroupCount: [65_535, 65_535, 65_535], maxPushConstantsSize: 128, maxMemoryAllocationSize: 1 << 30,
        maxBufferSize: 1 << 30, minStorageBufferOffsetAlignment: 256, minTexelBufferOffsetAlignment: 256,
        maxPerStageDescriptorStorageBuffers: 4, maxPerStageDescriptorSampledImages: 16,
        maxPerStageDescriptorStorageImages: 4, subgroupSize: 1,
        subgroupArithmetic: false)

    /// These limits, each no larger than `other`'s (alignments no smaller, features only where both have them).
    public func clamped(to other: DeviceLimits) -> DeviceLimits {
        DeviceLimits(
            maxTexelBufferElements: min(maxTexelBufferElements, other.maxTexelBufferElements),
            maxStorageBufferRange: min(maxStorageBufferRange, other.maxStorageBufferRange),
            maxComputeSharedMemorySize: min(maxComputeSharedMemorySize, other.maxComputeSharedMemorySize),
            maxComputeWorkGroupInvocations: min(maxComputeWorkGroupInvocations, other.maxComputeWorkGroupInvocations),
            maxComputeWorkGroupSize: zip(maxComputeWorkGroupSize, other.maxComputeWorkGroupSize).map { min($0, $1) },
            maxComputeWorkGroupCount: zip(maxComputeWorkGroupCount, other.maxComputeWorkGroupCount).map { min($0, $1) },
            maxPushConstantsSize: min(maxPushConstantsSize, other.maxPushConstantsSize),
            maxMemoryAllocationSize: min(maxMemoryAllocationSize, other.maxMemoryAllocationSize),
            maxBufferSize: min(maxBufferSize, other.maxBufferSize),
            minStorageBufferOffsetAlignment: max(
                minStorageBufferOffsetAlignment, other.minStorageBufferOffsetAlignment),
            minTexelBufferOffsetAlignment: max(minTexelBufferOffsetAlignment, other.minTexelBufferOffsetAlignment),
            maxPerStageDescriptorStorageBuffers: min(
                maxPerStageDescriptorStorageBuffers, other.maxPerStageDescriptorStorageBuffers),
            maxPerStageDescriptorSampledImages: min(
                maxPerStageDescriptorSampledImages, other.maxPerStageDescriptorSampledImages),
            maxPerStageDescriptorStorageImages: min(
                maxPerStageDescriptorStorageImages, other.maxPerStageDescriptorStorageImages),
            subgroupSize: min(subgroupSize, other.subgroupSize),
            subgroupArithmetic: subgroupArithmetic && other.subgroupArithmetic,
            subgroupShuffle: subgroupShuffle && other.subgroupShuffle)
    }

    /// The largest single buffer the engine may make: the lower of the allocation and buffer limits.
    public var maxSingleBuffer: Int { min(maxMemoryAllocationSize, maxBufferSize) }

    /// The largest workgroup (in x) a kernel may use on this device.
    public var maxWorkgroupX: Int { min(maxComputeWorkGroupInvocations, maxComputeWorkGroupSize.first ?? 1) }
}

/// Which limits a device is used under.
public enum LimitsMode: String, Sendable, Codable, CaseIterable {
    /// The device's own limits and optional features.
    case device
    /// The Vulkan spec's minimums (``DeviceLimits/vulkanMinimum``) and no optional features: emulates the smallest
    /// device on any machine (the tools' `BOSSNET_LIMITS=minimum`).
    case minimum
}

extension DeviceLimits {
    /// Reads the limits of a physical device (the Vulkan 1.1 properties, and maintenance 3 and 4 where present).
    init(
        physical handle: VkPhysicalDevice, properties: VkPhysicalDeviceProperties,
        subgroup: VkPhysicalDeviceSubgroupProperties,
        maintenance3: VkPhysicalDeviceMaintenance3Properties, maxBufferSize: UInt64?
    ) {
        let limits = properties.limits
        let computeStage = subgroup.supportedStages & VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0
        let arithmetic =
            subgroup.supportedOperations & VkSubgroupFeatureFlags(VK_SUBGROUP_FEATURE_ARITHMETIC_BIT.rawValue) != 0
        let shuffle =
            subgroup.supportedOperations & VkSubgroupFeatureFlags(VK_SUBGROUP_FEATURE_SHUFFLE_BIT.rawValue) != 0
        let allocation = Int(clamping: maintenance3.maxMemoryAllocationSize)
        self.init(
            maxTexelBufferElements: Int(limits.maxTexelBufferElements),
            maxStorageBufferRange: Int(limits.maxStorageBufferRange),
            maxComputeSharedMemorySize: Int(limits.maxComputeSharedMemorySize),
            maxComputeWorkGroupInvocations: Int(limits.maxComputeWorkGroupInvocations),
            maxComputeWorkGroupSize: withUnsafeBytes(of: limits.maxComputeWorkGroupSize) {
                $0.bindMemory(to: UInt32.self).map { Int($0) }
            },
            maxComputeWorkGroupCount: withUnsafeBytes(of: limits.maxComputeWorkGroupCount) {
                $0.bindMemory(to: UInt32.self).map { Int($0) }
            },
            maxPushConstantsSize: Int(limits.maxPushConstantsSize),
            maxMemoryAllocationSize: allocation > 0 ? allocation : 1 << 30,
            maxBufferSize: maxBufferSize.map { Int(clamping: $0) } ?? (allocation > 0 ? allocation : 1 << 30),
            minStorageBufferOffsetAlignment: Int(max(1, limits.minStorageBufferOffsetAlignment)),
            minTexelBufferOffsetAlignment: Int(max(1, limits.minTexelBufferOffsetAlignment)),
            maxPerStageDescriptorStorageBuffers: Int(limits.maxPerStageDescriptorStorageBuffers),
            maxPerStageDescriptorSampledImages: Int(limits.maxPerStageDescriptorSampledImages),
            maxPerStageDescriptorStorageImages: Int(limits.maxPerStageDescriptorStorageImages),
            subgroupSize: Int(max(1, subgroup.subgroupSize)),
            subgroupArithmetic: computeStage && arithmetic,
            subgroupShuffle: computeStage && shuffle)
    }
}

/// What a planner needs to know of a device to choose kernels for it: its kind, limits and enabled features.
public struct DeviceProfile: Sendable, Equatable {
    public var type: DeviceType
    public var limits: DeviceLimits
    /// The optional features enabled on the device (none under ``LimitsMode/minimum``).
    public var features: OptionalFeatures

    public init(type: DeviceType, limits: DeviceLimits, features: OptionalFeatures) {
        self.type = type
        self.limits = limits
        self.features = features
    }

    /// A device that offers exactly the spec's minimums: what plans are checked against when no device is at hand.
    public static let minimum = DeviceProfile(type: .other, limits: .vulkanMinimum, features: OptionalFeatures())
}

extension VulkanDevice {
    /// This device as planners see it.
    public var profile: DeviceProfile { DeviceProfile(type: info.type, limits: limits, features: enabledFeatures) }
}
