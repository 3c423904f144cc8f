import CVulkan
import Foundation

/// Options for opening a ``VulkanDevice``.
public struct DeviceOptions: Sendable {
    /// Where the pipeline cache file lives; `nil` (the default) keeps no cache on disk.
    /// ``PipelineCacheFile/defaultDirectory(environment:)`` gives the usual place.
    public var pipelineCacheDirectory: URL?
    /// Enable the optional features the device has (fp16, subgroup size control). On by default.
    public var enableOptionalFeatures: Bool
    /// How long one submission may run before it counts as failed (and the device takes no more work).
    public var submitTimeoutSeconds: Double
    /// The device memory sessions may plan for; `nil` for the size of the device's largest device-local heap. A
    /// smaller figure emulates a smaller device.
    public var memoryBudgetBytes: Int?
    /// The device's own limits, or the Vulkan spec's minimums (``LimitsMode/minimum``: no optional features either),
    /// to see how the engine fares on the smallest devices.
    public var limits: LimitsMode
    /// Limits to clamp to as well (each limit no larger than here), to emulate a particular small device.
    public var clampLimits: DeviceLimits?

    public init(
        pipelineCacheDirectory: URL? = nil, enableOptionalFeatures: Bool = true,
        submitTimeoutSeconds: Double = 600, memoryBudgetBytes: Int? = nil, limits: LimitsMode = .device,
        clampLimits: DeviceLimits? = nil
    ) {
        self.clampLimits = clampLimits
        self.pipelineCacheDirectory = pipelineCacheDirectory
        self.enableOptionalFeatures = enableOptionalFeatures
        self.submitTimeoutSeconds = submitTimeoutSeconds
        self.memoryBudgetBytes = memoryBudgetBytes
        self.limits = limits
    }
}

/// An open Vulkan device with one compute queue: the owner of everything else this module creates.
///
/// A device and the objects made from it are meant for one thread at a time (Vulkan's command pools and queues
/// need external synchronization); they are not `Sendable`.
public final class VulkanDevice {
    /// The instance this device came from; kept alive as long as the device.
    public let instance: VulkanInstance
    public let physical: PhysicalDevice
    let handle: VkDevice
    let queue: VkQueue
    let queueFamily: UInt32
    let commandPool: VkCommandPool
    let fence: VkFence
    /// Bits of a timestamp that are valid on the compute queue (0: no timestamps).
    public let timestampValidBits: UInt32
    /// The optional features enabled on this device.
    public let enabledFeatures: OptionalFeatures
    let pipelineCache: VkPipelineCache
    private let cacheFile: PipelineCacheFile?
    /// Whether a pipeline cache was found on disk and accepted when the device opened.
    public let pipelineCacheLoaded: Bool
    /// Set when a pipeline cache file was there but did not fit this device (another GPU or driver, or damaged): it
    /// was ignored, and is replaced when the device closes. For the caller to show; the library prints nothing.
    public let pipelineCacheWarning: String?
    /// How long one submission may run (``DeviceOptions/submitTimeoutSeconds``).
    public let submitTimeoutSeconds: Double
    /// The device memory a session may plan for: ``DeviceOptions/memoryBudgetBytes``, or the largest device-local heap.
    public let memoryBudgetBytes: Int
    /// The failure of the first submission that failed (a timeout, a lost device): once set, the device refuses
    /// all further work with ``VulkanSetupError/deviceUnusable(after:)`` and never resubmits what may be pending.
    public private(set) var failure: VulkanError?
    /// The limits everything made on this device is planned and checked against: the device's own, or with
    /// ``LimitsMode/minimum`` the spec's minimums.
    public let limits: DeviceLimits
    /// Which limits are in force.
    public let limitsMode: LimitsMode
    /// Whether the queue belongs to a family for compute without graphics (an asynchronous compute queue).
    public let dedicatedComputeQueue: Bool
    private let allocationLock = NSLock()
    private var liveAllocationBytes = 0

    /// Bytes of device memory the buffers made on this device hold now, as the driver sized their allocations.
    public var allocatedBytes: Int { allocationLock.withLock { liveAllocationBytes } }

    /// Counts an allocation of `bytes` (negative when one is freed).
    func countAllocation(_ bytes: Int) { allocationLock.withLock { liveAllocationBytes += bytes } }

    /// Opens `physical` for compute.
    public init(instance: VulkanInstance, physical: PhysicalDevice, options: DeviceOptions = DeviceOptions()) throws {
        self.instance = instance
        self.physical = physical
        let chosen = try Self.queueFamily(of: physical)
        queueFamily = chosen.index
        timestampValidBits = chosen.timestampValidBits
        dedicatedComputeQueue = chosen.dedicated
        limitsMode = options.limits
        let ownOrMinimum =
            options.limits == .minimum ? physical.info.limits.clamped(to: .vulkanMinimum) : physical.info.limits
        limits = options.clampLimits.map { ownOrMinimum.clamped(to: $0) } ?? ownOrMinimum
        let (enabled, extensions) = Self.optionalFeatures(of: physical, options: options)
        enabledFeatures = enabled
        let device = try Self.createDevice(
            physical, queueFamily: chosen.index, enabled: enabled, extensions: extensions)
        handle = device

        var queue: VkQueue?
        vkGetDeviceQueue(device, queueFamily, 0, &queue)
        guard let queue else {
            vkDestroyDevice(device, nil)
            throw VulkanError(call: "vkGetDeviceQueue", result: VK_ERROR_INITIALIZATION_FAILED)
        }
        self.queue = queue

        var poolInfo = VkCommandPoolCreateInfo()
        poolInfo.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
        poolInfo.flags = VkCommandPoolCreateFlags(VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT.rawValue)
        poolInfo.queueFamilyIndex = queueFamily
        var pool: VkCommandPool?
        let poolResult = vkCreateCommandPool(device, &poolInfo, nil, &pool)
        guard poolResult == VK_SUCCESS, let pool else {
            vkDestroyDevice(device, nil)
            throw VulkanError(call: "vkCreateCommandPool", result: poolResult)
        }
        commandPool = pool

        var fenceInfo = VkFenceCreateInfo()
        fenceInfo.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO
        var fence: VkFence?
        let fenceResult = vkCreateFence(device, &fenceInfo, nil, &fence)
        guard fenceResult == VK_SUCCESS, let fence else {
            vkDestroyCommandPool(device, pool, nil)
            vkDestroyDevice(device, nil)
            throw VulkanError(call: "vkCreateFence", result: fenceResult)
        }
        self.fence = fence

        let file = options.pipelineCacheDirectory.map { PipelineCacheFile(directory: $0, device: physical) }
        let opened = Self.openPipelineCache(device, file: file)
        guard opened.result == VK_SUCCESS, let cache = opened.cache else {
            vkDestroyFence(device, fence, nil)
            vkDestroyCommandPool(device, pool, nil)
            vkDestroyDevice(device, nil)
            throw VulkanError(call: "vkCreatePipelineCache", result: opened.result)
        }
        pipelineCache = cache
        cacheFile = file
        pipelineCacheLoaded = opened.loaded
        pipelineCacheWarning = opened.warning
        submitTimeoutSeconds = options.submitTimeoutSeconds
        let largestHeap =
            physical.info.memoryHeaps.filter(\.deviceLocal).map { Int(clamping: $0.size) }.max()
            ?? physical.info.memoryHeaps.map { Int(clamping: $0.size) }.max() ?? Int.max
        memoryBudgetBytes = options.memoryBudgetBytes ?? largestHeap
    }

    /// The queue family to use: one for compute alone (NVIDIA and AMD have one beside the graphics family) with
    /// timestamps, then any compute family with timestamps, then any compute family; the driver's order breaks ties.
    private static func queueFamily(of physical: PhysicalDevice) throws
        -> (index: UInt32, timestampValidBits: UInt32, dedicated: Bool)
    {
        var familyCount: UInt32 = 0
        vkGetPhysicalDeviceQueueFamilyProperties(physical.handle, &familyCount, nil)
        var families = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(familyCount))
        vkGetPhysicalDeviceQueueFamilyProperties(physical.handle, &familyCount, &families)
        let compute = VkQueueFlags(VK_QUEUE_COMPUTE_BIT.rawValue)
        let graphics = VkQueueFlags(VK_QUEUE_GRAPHICS_BIT.rawValue)
        let candidates = families.prefix(Int(familyCount)).enumerated().filter { $0.element.queueFlags & compute != 0 }
        let dedicated = { (family: VkQueueFamilyProperties) in family.queueFlags & graphics == 0 }
        guard
            let chosen = candidates.first(where: { dedicated($0.element) && $0.element.timestampValidBits > 0 })
                ?? candidates.first(where: { $0.element.timestampValidBits > 0 }) ?? candidates.first
        else {
            throw VulkanSetupError.noComputeQueue(device: physical.info.name)
        }
        return (UInt32(chosen.offset), chosen.element.timestampValidBits, dedicated(chosen.element))
    }

    /// The optional features to enable (what the device has and the engine can use, none within the minimum limits),
    /// and the extensions they and the device need.
    private static func optionalFeatures(of physical: PhysicalDevice, options: DeviceOptions)
        -> (OptionalFeatures, [String])
    {
        var enabled = OptionalFeatures()
        var extensions: [String] = []
        let version = physical.apiVersion
        if options.enableOptionalFeatures && options.limits == .device {
            enabled.float16Storage = physical.info.features.float16Storage
            enabled.float16Arithmetic = physical.info.features.float16Arithmetic
            if enabled.float16Arithmetic && version < vulkanVersion(1, 2) {
                extensions.append("VK_KHR_shader_float16_int8")
            }
            enabled.subgroupSizeControl = physical.info.features.subgroupSizeControl
            if enabled.subgroupSizeControl && version < vulkanVersion(1, 3) {
                extensions.append("VK_EXT_subgroup_size_control")
            }
        }
        if physical.info.extensions.contains("VK_KHR_portability_subset") {
            extensions.append("VK_KHR_portability_subset")
        }
        return (enabled, extensions)
    }

    /// Creates the logical device: one queue of `queueFamily`, the `enabled` features chained, `extensions` on.
    private static func createDevice(
        _ physical: PhysicalDevice, queueFamily: UInt32, enabled: OptionalFeatures, extensions: [String]
    ) throws -> VkDevice {
        var float16Int8 = VkPhysicalDeviceShaderFloat16Int8Features()
        float16Int8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES
        float16Int8.shaderFloat16 = VkBool32(enabled.float16Arithmetic ? VK_TRUE : VK_FALSE)
        var storage16 = VkPhysicalDevice16BitStorageFeatures()
        storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES
        storage16.storageBuffer16BitAccess = VkBool32(enabled.float16Storage ? VK_TRUE : VK_FALSE)
        var subgroupControl = VkPhysicalDeviceSubgroupSizeControlFeatures()
        subgroupControl.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES
        subgroupControl.subgroupSizeControl = VkBool32(enabled.subgroupSizeControl ? VK_TRUE : VK_FALSE)

        var device: VkDevice?
        var priority: Float = 1
        let result: VkResult = withCStringArray(extensions) { extensionNames in
            withUnsafeMutablePointer(to: &float16Int8) { float16Pointer in
                withUnsafeMutablePointer(to: &subgroupControl) { subgroupPointer in
                    var tail: UnsafeMutableRawPointer? = nil
                    if enabled.subgroupSizeControl { tail = UnsafeMutableRawPointer(subgroupPointer) }
                    if enabled.float16Arithmetic {
                        float16Pointer.pointee.pNext = tail
                        tail = UnsafeMutableRawPointer(float16Pointer)
                    }
                    if enabled.float16Storage {
                        storage16.pNext = tail
                    }
                    return withUnsafeMutablePointer(to: &storage16) { storagePointer in
                        if enabled.float16Storage { tail = UnsafeMutableRawPointer(storagePointer) }
                        return withUnsafePointer(to: &priority) { priorityPointer in
                            var queueInfo = VkDeviceQueueCreateInfo()
                            queueInfo.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO
                            queueInfo.queueFamilyIndex = queueFamily
                            queueInfo.queueCount = 1
                            queueInfo.pQueuePriorities = priorityPointer
                            return withUnsafePointer(to: &queueInfo) { queuePointer in
                                var info = VkDeviceCreateInfo()
                                info.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO
                                info.pNext = UnsafeRawPointer(tail)
                                info.queueCreateInfoCount = 1
                                info.pQueueCreateInfos = queuePointer
                                info.enabledExtensionCount = UInt32(extensions.count)
                                info.ppEnabledExtensionNames = extensionNames
                                return vkCreateDevice(physical.handle, &info, nil, &device)
                            }
                        }
                    }
                }
            }
        }
        try check(result, "vkCreateDevice")
        guard let device else { throw VulkanError(call: "vkCreateDevice", result: VK_ERROR_INITIALIZATION_FAILED) }
        return device
    }

    /// The pipeline cache: seeded from `file` when a matching one is there, empty otherwise (a driver may still
    /// refuse data that passed the header check: then it starts empty rather than fail), with the warning to give
    /// when a file was there but not used.
    private static func openPipelineCache(_ device: VkDevice, file: PipelineCacheFile?)
        -> (result: VkResult, cache: VkPipelineCache?, loaded: Bool, warning: String?)
    {
        let seed = file?.load()
        var cache: VkPipelineCache?
        var result = createPipelineCache(device, seed: seed, into: &cache)
        var loaded = seed != nil && result == VK_SUCCESS
        if result != VK_SUCCESS && seed != nil {
            result = createPipelineCache(device, seed: nil, into: &cache)
            loaded = false
        }
        var warning: String? = nil
        if let file, !loaded, FileManager.default.fileExists(atPath: file.url.path) {
            warning =
                "ignored the pipeline cache \(file.url.path): it does not fit this device and driver "
                + "(another GPU or driver version, or a damaged file); it will be replaced"
        }
        return (result, cache, loaded, warning)
    }

    /// Opens the device chosen by ``VulkanInstance/chooseDevice(index:)``.
    public convenience init(instance: VulkanInstance, index: Int? = nil, options: DeviceOptions = DeviceOptions())
        throws
    {
        try self.init(instance: instance, physical: instance.chooseDevice(index: index), options: options)
    }

    private static func createPipelineCache(_ device: VkDevice, seed: [UInt8]?, into cache: inout VkPipelineCache?)
        -> VkResult
    {
        var info = VkPipelineCacheCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO
        guard let seed, !seed.isEmpty else { return vkCreatePipelineCache(device, &info, nil, &cache) }
        return seed.withUnsafeBytes { bytes in
            info.initialDataSize = bytes.count
            info.pInitialData = bytes.baseAddress
            return vkCreatePipelineCache(device, &info, nil, &cache)
        }
    }

    deinit {
        vkDeviceWaitIdle(handle)
        try? savePipelineCache()
        vkDestroyPipelineCache(handle, pipelineCache, nil)
        vkDestroyFence(handle, fence, nil)
        vkDestroyCommandPool(handle, commandPool, nil)
        vkDestroyDevice(handle, nil)
    }

    /// What the device is.
    public var info: DeviceInfo { physical.info }

    /// Writes the pipeline cache to disk now (it is also written when the device closes).
    public func savePipelineCache() throws {
        guard let cacheFile else { return }
        var size = 0
        try check(vkGetPipelineCacheData(handle, pipelineCache, &size, nil), "vkGetPipelineCacheData")
        var data = [UInt8](repeating: 0, count: size)
        try check(vkGetPipelineCacheData(handle, pipelineCache, &size, &data), "vkGetPipelineCacheData")
        try cacheFile.save(Array(data.prefix(size)))
    }

    /// Submits recorded work and waits for it to finish, at most `timeoutSeconds` (the device's
    /// ``submitTimeoutSeconds`` by default). If the submission or the wait fails, the device takes no more work.
    public func submitAndWait(_ commands: CommandBuffer, timeoutSeconds: Double? = nil) throws {
        if let failure { throw VulkanSetupError.deviceUnusable(after: failure) }
        do {
            try submitAndWaitOnce(commands, timeoutSeconds: timeoutSeconds ?? submitTimeoutSeconds)
        } catch {
            failure = (error as? VulkanError) ?? VulkanError(call: "vkQueueSubmit", result: VK_ERROR_UNKNOWN)
            throw error
        }
    }

    private func submitAndWaitOnce(_ commands: CommandBuffer, timeoutSeconds: Double) throws {
        try check(vkResetFences(handle, 1, [fence]), "vkResetFences")
        var buffer: VkCommandBuffer? = commands.handle
        var submit = VkSubmitInfo()
        submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO
        let result: VkResult = withUnsafePointer(to: &buffer) { bufferPointer in
            submit.commandBufferCount = 1
            submit.pCommandBuffers = bufferPointer
            return vkQueueSubmit(queue, 1, &submit, fence)
        }
        try check(result, "vkQueueSubmit")
        let nanoseconds = UInt64(max(0, timeoutSeconds) * 1e9)
        try check(vkWaitForFences(handle, 1, [fence], VkBool32(VK_TRUE), nanoseconds), "vkWaitForFences")
    }

    /// Waits until the device has finished all work, however long that takes (for tearing down after a failure).
    public func waitIdle() { vkDeviceWaitIdle(handle) }

    /// Records commands with `body` into a one-time command buffer, submits it and waits.
    public func run(_ body: (CommandBuffer) throws -> Void) throws {
        let commands = try CommandBuffer(device: self)
        try commands.begin()
        try body(commands)
        try commands.end()
        try submitAndWait(commands)
    }

    /// Picks a memory type index allowed by `typeBits` that has all of `required`, preferring ones that also have
    /// `preferred`.
    func memoryType(typeBits: UInt32, required: VkMemoryPropertyFlags, preferred: VkMemoryPropertyFlags = 0) -> UInt32?
    {
        let types = physical.memoryTypes
        let allowed = types.indices.filter {
            typeBits & (1 << UInt32($0)) != 0 && types[$0].propertyFlags & required == required
        }
        let best = allowed.first { types[$0].propertyFlags & preferred == preferred } ?? allowed.first
        return best.map(UInt32.init)
    }

    func memoryFlags(ofType index: UInt32) -> VkMemoryPropertyFlags {
        physical.memoryTypes[Int(index)].propertyFlags
    }
}
