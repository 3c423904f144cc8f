import CVulkan
import Foundation

/// One side of a memory dependency: which stage touches memory, and how.
public enum Access: Sendable {
    case computeRead, computeWrite, computeReadWrite
    case transferRead, transferWrite
    case hostRead, hostWrite

    var stage: VkPipelineStageFlags {
        switch self {
        case .computeRead, .computeWrite, .computeReadWrite:
            VkPipelineStageFlags(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue)
        case .transferRead, .transferWrite: VkPipelineStageFlags(VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue)
        case .hostRead, .hostWrite: VkPipelineStageFlags(VK_PIPELINE_STAGE_HOST_BIT.rawValue)
        }
    }

    var mask: VkAccessFlags {
        switch self {
        case .computeRead: VkAccessFlags(VK_ACCESS_SHADER_READ_BIT.rawValue)
        case .computeWrite: VkAccessFlags(VK_ACCESS_SHADER_WRITE_BIT.rawValue)
        case .computeReadWrite: VkAccessFlags(VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue)
        case .transferRead: VkAccessFlags(VK_ACCESS_TRANSFER_READ_BIT.rawValue)
        case .transferWrite: VkAccessFlags(VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        case .hostRead: VkAccessFlags(VK_ACCESS_HOST_READ_BIT.rawValue)
        case .hostWrite: VkAccessFlags(VK_ACCESS_HOST_WRITE_BIT.rawValue)
        }
    }
}

/// A primary command buffer for the device's compute queue, freed when the last reference goes.
///
/// It keeps every pipeline, descriptor set and buffer it records alive, so recorded work never outlives what it uses.
/// Recording can be replayed: end it once, then submit it with ``VulkanDevice/submitAndWait(_:timeoutSeconds:)`` as
/// often as needed.
public final class CommandBuffer {
    public let device: VulkanDevice
    let handle: VkCommandBuffer
    private var retained: [AnyObject] = []
    private var boundPipeline: ComputePipeline?
    /// The number of dispatches recorded.
    public private(set) var dispatchCount = 0

    /// Allocates a primary command buffer from the device's command pool.
    public init(device: VulkanDevice) throws {
        self.device = device
        var info = VkCommandBufferAllocateInfo()
        info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        info.commandPool = device.commandPool
        info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        info.commandBufferCount = 1
        var buffer: VkCommandBuffer?
        try check(vkAllocateCommandBuffers(device.handle, &info, &buffer), "vkAllocateCommandBuffers")
        guard let buffer else {
            throw VulkanError(call: "vkAllocateCommandBuffers", result: VK_ERROR_INITIALIZATION_FAILED)
        }
        handle = buffer
    }

    deinit {
        var buffer: VkCommandBuffer? = handle
        vkFreeCommandBuffers(device.handle, device.commandPool, 1, &buffer)
    }

    /// Starts recording (discarding anything recorded before).
    public func begin() throws {
        retained.removeAll()
        boundPipeline = nil
        dispatchCount = 0
        var info = VkCommandBufferBeginInfo()
        info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        try check(vkBeginCommandBuffer(handle, &info), "vkBeginCommandBuffer")
    }

    /// Finishes recording.
    public func end() throws {
        try check(vkEndCommandBuffer(handle), "vkEndCommandBuffer")
    }

    /// Records a dispatch of `set.pipeline` over `groups` workgroups with the given push constants.
    ///
    /// `pushConstants` must be a plain struct whose layout matches the shader's push-constant block.
    public func dispatch<Push: BitwiseCopyable>(
        _ set: DescriptorSet, pushConstants: Push, groups: (x: Int, y: Int, z: Int)
    ) throws {
        try withUnsafeBytes(of: pushConstants) { try dispatch(set, pushConstantBytes: $0, groups: groups) }
    }

    /// Records a dispatch with push constants given as raw bytes (exactly the pipeline's push-constant size).
    public func dispatch(
        _ set: DescriptorSet, pushConstantBytes: UnsafeRawBufferPointer, groups: (x: Int, y: Int, z: Int)
    ) throws {
        let pipeline = set.pipeline
        guard pushConstantBytes.count == pipeline.pushConstantSize else {
            throw VulkanSetupError.kernelInterfaceMismatch(
                kernel: pipeline.name,
                .pushConstantSize(shader: pipeline.pushConstantSize, given: pushConstantBytes.count))
        }
        let maxGroups = device.limits.maxComputeWorkGroupCount
        guard groups.x >= 1, groups.y >= 1, groups.z >= 1, groups.x <= maxGroups[0], groups.y <= maxGroups[1],
            groups.z <= maxGroups[2]
        else {
            throw VulkanSetupError.workgroupCountOutOfRange(
                kernel: pipeline.name, groups: [groups.x, groups.y, groups.z], limits: maxGroups)
        }
        if boundPipeline !== pipeline {
            vkCmdBindPipeline(handle, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.handle)
            boundPipeline = pipeline
            retained.append(pipeline)
        }
        var descriptorSet: VkDescriptorSet? = set.handle
        vkCmdBindDescriptorSets(handle, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, 1, &descriptorSet, 0, nil)
        if pipeline.pushConstantSize > 0 {
            vkCmdPushConstants(
                handle, pipeline.layout, VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue),
                0, UInt32(pushConstantBytes.count), pushConstantBytes.baseAddress)
        }
        vkCmdDispatch(handle, UInt32(groups.x), UInt32(groups.y), UInt32(groups.z))
        retained.append(set)
        dispatchCount += 1
    }

    /// Makes the `source` accesses to `buffers` visible to, and finished before, the `destination` accesses.
    public func barrier(_ source: Access, before destination: Access, buffers: [VulkanBuffer]) {
        let barriers = buffers.map { buffer in
            var barrier = VkBufferMemoryBarrier()
            barrier.sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER
            barrier.srcAccessMask = source.mask
            barrier.dstAccessMask = destination.mask
            barrier.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED
            barrier.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED
            barrier.buffer = buffer.handle
            barrier.offset = 0
            barrier.size = VkDeviceSize(VK_WHOLE_SIZE)
            return barrier
        }
        vkCmdPipelineBarrier(
            handle, source.stage, destination.stage, 0, 0, nil, UInt32(barriers.count), barriers, 0, nil)
        retained.append(contentsOf: buffers)
    }

    /// A memory barrier over all buffers: cheaper to record than many buffer barriers when a plan's step depends on
    /// the steps before it.
    public func barrier(_ source: Access, before destination: Access) {
        var barrier = VkMemoryBarrier()
        barrier.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        barrier.srcAccessMask = source.mask
        barrier.dstAccessMask = destination.mask
        vkCmdPipelineBarrier(handle, source.stage, destination.stage, 0, 1, &barrier, 0, nil, 0, nil)
    }

    /// Copies `size` bytes between buffers.
    public func copy(
        from source: VulkanBuffer, to destination: VulkanBuffer, size: Int, sourceOffset: Int = 0,
        destinationOffset: Int = 0
    ) {
        var region = VkBufferCopy(
            srcOffset: VkDeviceSize(sourceOffset), dstOffset: VkDeviceSize(destinationOffset),
            size: VkDeviceSize(size))
        vkCmdCopyBuffer(handle, source.handle, destination.handle, 1, &region)
        retained.append(source)
        retained.append(destination)
    }

    /// Fills `buffer` with a repeated 32-bit pattern (for example the bits of a NaN, to poison outputs in tests).
    public func fill(_ buffer: VulkanBuffer, with pattern: UInt32) {
        vkCmdFillBuffer(handle, buffer.handle, 0, VkDeviceSize(VK_WHOLE_SIZE), pattern)
        retained.append(buffer)
    }

    /// Resets a range of timestamp queries; must be recorded before they are written in this submission.
    public func resetQueries(_ queries: TimestampQueries, first: Int = 0, count: Int? = nil) {
        vkCmdResetQueryPool(handle, queries.handle, UInt32(first), UInt32(count ?? queries.count))
        retained.append(queries)
    }

    /// Writes a timestamp into query `index` once all earlier commands have finished.
    public func writeTimestamp(_ queries: TimestampQueries, index: Int) {
        vkCmdWriteTimestamp(handle, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries.handle, UInt32(index))
        retained.append(queries)
    }
}
