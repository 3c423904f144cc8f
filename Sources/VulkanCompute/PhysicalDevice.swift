import CVulkan
import Foundation

/// The kind of a Vulkan device, in the order the default choice prefers them.
public enum DeviceType: String, Sendable, Codable, Comparable {
    case discrete, integrated, virtual, cpu, other

    init(_ type: VkPhysicalDeviceType) {
        switch type {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: self = .discrete
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: self = .integrated
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: self = .virtual
        case VK_PHYSICAL_DEVICE_TYPE_CPU: self = .cpu
        default: self = .other
        }
    }

    /// Higher is preferred: discrete > integrated > virtual > CPU > other.
    var preference: Int {
        switch self {
        case .discrete: 4
        case .integrated: 3
        case .virtual: 2
        case .cpu: 1
        case .other: 0
        }
    }

    public static func < (a: Self, b: Self) -> Bool { a.preference < b.preference }
}

/// One memory heap of a device.
public struct MemoryHeap: Sendable, Codable, Equatable {
    public let size: UInt64
    public let deviceLocal: Bool
}

/// Optional features the engine uses only where a device has them.
public struct OptionalFeatures: Sendable, Codable, Equatable {
    /// 16-bit floats in shader arithmetic (shaderFloat16).
    public var float16Arithmetic = false
    /// 16-bit values in storage buffers (storageBuffer16BitAccess).
    public var float16Storage = false
    /// Choosing the subgroup size per pipeline (VK_EXT_subgroup_size_control or Vulkan 1.3).
    public var subgroupSizeControl = false
    /// Cooperative matrix multiply (VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix).
    public var cooperativeMatrix = false

    /// The names of the features present, for display.
    public var names: [String] {
        var names: [String] = []
        if float16Arithmetic { names.append("fp16") }
        if float16Storage { names.append("fp16-storage") }
        if subgroupSizeControl { names.append("subgroup-size-control") }
        if cooperativeMatrix { names.append("cooperative-matrix") }
        return names
    }
}

/// What a Vulkan device is and what it can do, read once when the devices are listed.
public struct DeviceInfo: Sendable, Codable, Equatable {
    /// The device's position in the loader's list (the N of `--device N`).
    public let index: Int
    public let name: String
    public let type: DeviceType
    public let vendorID: UInt32
    public let deviceID: UInt32
    public let apiVersion: String
    /// The driver's version, decoded the vendor's way where it has one (NVIDIA, Intel on Windows) and as a Vulkan
    /// version otherwise.
    public let driverVersion: String
    /// The driver's name and info string where the device reports them (VK_KHR_driver_properties).
    public let driverName: String?
    public let driverInfo: String?
    public let memoryHeaps: [MemoryHeap]
    /// The limits the engine reads, as the device reports them.
    public let limits: DeviceLimits
    public let timestampPeriodNanoseconds: Float
    /// Whether every memory type that is device-local is also visible to the host (integrated GPUs, lavapipe), so
    /// uploads need no staging copy.
    public let unifiedMemory: Bool
    public let features: OptionalFeatures
    /// The device extensions it offers.
    public let extensions: [String]

    /// Set to `true` in a `JSONEncoder`'s `userInfo` to encode ``extensions``; without it the JSON leaves out the
    /// extension names (about a hundred on most drivers), which a report about something else does not need.
    public static let encodesExtensions = CodingUserInfoKey(rawValue: "VulkanCompute.DeviceInfo.extensions")!
}

extension DeviceInfo {
    private enum CodingKeys: String, CodingKey {
        case index, name, type, vendorID, deviceID, apiVersion, driverVersion, driverName, driverInfo, memoryHeaps
        case limits, timestampPeriodNanoseconds, unifiedMemory, features, extensions
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(index, forKey: .index)
        try container.encode(name, forKey: .name)
        try container.encode(type, forKey: .type)
        try container.encode(vendorID, forKey: .vendorID)
        try container.encode(deviceID, forKey: .deviceID)
        try container.encode(apiVersion, forKey: .apiVersion)
        try container.encode(driverVersion, forKey: .driverVersion)
        try container.encodeIfPresent(driverName, forKey: .driverName)
        try container.encodeIfPresent(driverInfo, forKey: .driverInfo)
        try container.encode(memoryHeaps, forKey: .memoryHeaps)
        try container.encode(limits, forKey: .limits)
        try container.encode(timestampPeriodNanoseconds, forKey: .timestampPeriodNanoseconds)
        try container.encode(unifiedMemory, forKey: .unifiedMemory)
        try container.encode(features, forKey: .features)
        if encoder.userInfo[Self.encodesExtensions] as? Bool == true {
            try container.encode(extensions, forKey: .extensions)
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        index = try container.decode(Int.self, forKey: .index)
        name = try container.decode(String.self, forKey: .name)
        type = try container.decode(DeviceType.self, forKey: .type)
        vendorID = try container.decode(UInt32.self, forKey: .vendorID)
        deviceID = try container.decode(UInt32.self, forKey: .deviceID)
        apiVersion = try container.decode(String.self, forKey: .apiVersion)
        driverVersion = try container.decode(String.self, forKey: .driverVersion)
        driverName = try container.decodeIfPresent(String.self, forKey: .driverName)
        driverInfo = try container.decodeIfPresent(String.self, forKey: .driverInfo)
        memoryHeaps = try container.decode([MemoryHeap].self, forKey: .memoryHeaps)
        limits = try container.decode(DeviceLimits.self, forKey: .limits)
        timestampPeriodNanoseconds = try container.decode(Float.self, forKey: .timestampPeriodNanoseconds)
        unifiedMemory = try container.decode(Bool.self, forKey: .unifiedMemory)
        features = try container.decode(OptionalFeatures.self, forKey: .features)
        extensions = try container.decodeIfPresent([String].self, forKey: .extensions) ?? []
    }
}

/// A Vulkan physical device and its ``DeviceInfo``.
public struct PhysicalDevice {
    let handle: VkPhysicalDevice
    public let info: DeviceInfo
    let properties: VkPhysicalDeviceProperties
    let memoryProperties: VkPhysicalDeviceMemoryProperties
    /// The version the device is used at: the lower of its own and the instance's. Core features of later versions
    /// are reached through their extensions.
    let apiVersion: UInt32

    init(handle: VkPhysicalDevice, index: Int, instanceVersion: UInt32) throws {
        self.handle = handle
        var properties = VkPhysicalDeviceProperties()
        vkGetPhysicalDeviceProperties(handle, &properties)
        self.properties = properties
        let apiVersion = min(properties.apiVersion & 0x0FFF_F000, instanceVersion)
        self.apiVersion = apiVersion
        var memory = VkPhysicalDeviceMemoryProperties()
        vkGetPhysicalDeviceMemoryProperties(handle, &memory)
        memoryProperties = memory

        var count: UInt32 = 0
        try check(
            vkEnumerateDeviceExtensionProperties(handle, nil, &count, nil), "vkEnumerateDeviceExtensionProperties")
        var extensionProperties = [VkExtensionProperties](repeating: VkExtensionProperties(), count: Int(count))
        try check(
            vkEnumerateDeviceExtensionProperties(handle, nil, &count, &extensionProperties),
            "vkEnumerateDeviceExtensionProperties")
        let extensions = Set(extensionProperties.prefix(Int(count)).map { string(fromCArray: $0.extensionName) })

        // Properties and features through the Vulkan 1.1 "2" queries, chaining only structs the device knows.
        var subgroup = VkPhysicalDeviceSubgroupProperties()
        subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES
        var driver = VkPhysicalDeviceDriverProperties()
        driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES
        let hasDriverProperties = apiVersion >= vulkanVersion(1, 2) || extensions.contains("VK_KHR_driver_properties")
        var maintenance3 = VkPhysicalDeviceMaintenance3Properties()
        maintenance3.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES
        var maintenance4 = VkPhysicalDeviceMaintenance4Properties()
        maintenance4.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES
        let hasMaintenance4 = apiVersion >= vulkanVersion(1, 3) || extensions.contains("VK_KHR_maintenance4")
        // subgroup -> maintenance3 (core 1.1) -> driver? -> maintenance4?
        withUnsafeMutablePointer(to: &maintenance4) { maintenance4Pointer in
            withUnsafeMutablePointer(to: &driver) { driverPointer in
                var tail: UnsafeMutableRawPointer? =
                    hasMaintenance4 ? UnsafeMutableRawPointer(maintenance4Pointer) : nil
                if hasDriverProperties {
                    driverPointer.pointee.pNext = tail
                    tail = UnsafeMutableRawPointer(driverPointer)
                }
                maintenance3.pNext = tail
                withUnsafeMutablePointer(to: &maintenance3) { maintenance3Pointer in
                    subgroup.pNext = UnsafeMutableRawPointer(maintenance3Pointer)
                    withUnsafeMutablePointer(to: &subgroup) { subgroupPointer in
                        var properties2 = VkPhysicalDeviceProperties2()
                        properties2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
                        properties2.pNext = UnsafeMutableRawPointer(subgroupPointer)
                        vkGetPhysicalDeviceProperties2(handle, &properties2)
                    }
                }
            }
        }
        subgroup.pNext = nil
        maintenance3.pNext = nil
        driver.pNext = nil

        var features = OptionalFeatures()
        let hasFloat16Int8 = apiVersion >= vulkanVersion(1, 2) || extensions.contains("VK_KHR_shader_float16_int8")
        var float16Int8 = VkPhysicalDeviceShaderFloat16Int8Features()
        float16Int8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES
        var storage16 = VkPhysicalDevice16BitStorageFeatures()
        storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES
        let hasSubgroupControl =
            apiVersion >= vulkanVersion(1, 3) || extensions.contains("VK_EXT_subgroup_size_control")
        var subgroupControl = VkPhysicalDeviceSubgroupSizeControlFeatures()
        subgroupControl.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES
        withUnsafeMutablePointer(to: &float16Int8) { float16Pointer in
            withUnsafeMutablePointer(to: &subgroupControl) { subgroupControlPointer in
                // storage16 (core in 1.1) -> float16Int8? -> subgroupControl?
                var tail: UnsafeMutableRawPointer? = nil
                if hasSubgroupControl { tail = UnsafeMutableRawPointer(subgroupControlPointer) }
                if hasFloat16Int8 {
                    float16Pointer.pointee.pNext = tail
                    tail = UnsafeMutableRawPointer(float16Pointer)
                }
                storage16.pNext = tail
                withUnsafeMutablePointer(to: &storage16) { storagePointer in
                    var features2 = VkPhysicalDeviceFeatures2()
                    features2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
                    features2.pNext = UnsafeMutableRawPointer(storagePointer)
                    vkGetPhysicalDeviceFeatures2(handle, &features2)
                }
            }
        }
        features.float16Storage = storage16.storageBuffer16BitAccess != 0
        features.float16Arithmetic = hasFloat16Int8 && float16Int8.shaderFloat16 != 0
        features.subgroupSizeControl = hasSubgroupControl && subgroupControl.subgroupSizeControl != 0
        features.cooperativeMatrix =
            extensions.contains("VK_KHR_cooperative_matrix") || extensions.contains("VK_NV_cooperative_matrix")

        let heaps = withUnsafeBytes(of: memory.memoryHeaps) { raw in
            Array(raw.bindMemory(to: VkMemoryHeap.self).prefix(Int(memory.memoryHeapCount)))
        }
        let types = withUnsafeBytes(of: memory.memoryTypes) { raw in
            Array(raw.bindMemory(to: VkMemoryType.self).prefix(Int(memory.memoryTypeCount)))
        }
        let deviceLocal = VkMemoryPropertyFlags(VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue)
        let hostVisible = VkMemoryPropertyFlags(VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue)
        let localTypes = types.filter { $0.propertyFlags & deviceLocal != 0 }
        let unified = !localTypes.isEmpty && localTypes.allSatisfy { $0.propertyFlags & hostVisible != 0 }

        info = DeviceInfo(
            index: index,
            name: string(fromCArray: properties.deviceName),
            type: DeviceType(properties.deviceType),
            vendorID: properties.vendorID,
            deviceID: properties.deviceID,
            apiVersion: VulkanVersion(properties.apiVersion).description,
            driverVersion: Self.driverVersionString(properties.driverVersion, vendor: properties.vendorID),
            driverName: hasDriverProperties ? string(fromCArray: driver.driverName) : nil,
            driverInfo: hasDriverProperties ? string(fromCArray: driver.driverInfo) : nil,
            memoryHeaps: heaps.map {
                MemoryHeap(
                    size: $0.size,
                    deviceLocal: $0.flags & VkMemoryHeapFlags(VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue) != 0)
            },
            limits: DeviceLimits(
                physical: handle, properties: properties, subgroup: subgroup, maintenance3: maintenance3,
                maxBufferSize: hasMaintenance4 ? maintenance4.maxBufferSize : nil),
            timestampPeriodNanoseconds: properties.limits.timestampPeriod,
            unifiedMemory: unified,
            features: features,
            extensions: extensions.sorted()
        )
    }

    /// Decodes a driver version the way its vendor packs it.
    static func driverVersionString(_ version: UInt32, vendor: UInt32) -> String {
        switch vendor {
        case 0x10DE:  // NVIDIA: 10.8.8.6 bits
            return "\(version >> 22).\((version >> 14) & 0xFF).\((version >> 6) & 0xFF).\(version & 0x3F)"
        default:
            return VulkanVersion(version).description
        }
    }

    var memoryTypes: [VkMemoryType] {
        withUnsafeBytes(of: memoryProperties.memoryTypes) { raw in
            Array(raw.bindMemory(to: VkMemoryType.self).prefix(Int(memoryProperties.memoryTypeCount)))
        }
    }
}

extension VulkanInstance {
    /// Picks the device to run on.
    ///
    /// An explicit `index` wins; otherwise the most capable kind of device (discrete > integrated > virtual > CPU),
    /// the loader's order breaking ties.
    public func chooseDevice(index: Int? = nil) throws -> PhysicalDevice {
        let devices = try physicalDevices()
        guard !devices.isEmpty else { throw VulkanSetupError.noDevice }
        if let wanted = index {
            guard devices.indices.contains(wanted) else {
                throw VulkanSetupError.deviceIndexOutOfRange(index: wanted, count: devices.count)
            }
            return devices[wanted]
        }
        // max(by:) returns the last of equal maxima; keep the loader's first instead.
        var best = devices[0]
        for device in devices.dropFirst() where device.info.type > best.info.type { best = device }
        return best
    }
}
