import CVulkan
import Foundation

/// What one binding of a descriptor set points at.
public enum DescriptorResource {
    /// A range of a buffer as a storage buffer (the rest of the buffer when `range` is `nil`).
    case buffer(VulkanBuffer, offset: Int = 0, range: Int? = nil)
    /// A texel view, as a uniform or a storage texel buffer (whichever the binding is).
    case texels(TexelBufferView)

    /// "storage buffer" or "texel view", for error messages.
    var description: String {
        if case .buffer = self { return "storage buffer" }
        return "texel view"
    }

    /// Whether this resource can be bound where a shader declares `kind`.
    func fits(_ kind: BindingKind) -> Bool {
        if case .buffer = self { return kind == .storageBuffer }
        return kind.takesTexelView
    }

}

/// A pool that descriptor sets are allocated from; freeing the pool frees its sets.
///
/// The planner counts the sets and descriptors a plan needs first, then makes one pool of exactly that size.
public final class DescriptorPool {
    public let device: VulkanDevice
    let handle: VkDescriptorPool

    /// Makes a pool for `maxSets` sets holding at most `storageBuffers`, `texelBuffers` (uniform) and
    /// `storageTexelBuffers` descriptors in all.
    public init(
        device: VulkanDevice, maxSets: Int, storageBuffers: Int, texelBuffers: Int, storageTexelBuffers: Int = 0
    )
        throws
    {
        self.device = device
        var sizes: [VkDescriptorPoolSize] = []
        if storageBuffers > 0 {
            sizes.append(
                VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: UInt32(storageBuffers)))
        }
        if texelBuffers > 0 {
            sizes.append(
                VkDescriptorPoolSize(
                    type: VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, descriptorCount: UInt32(texelBuffers)))
        }
        if storageTexelBuffers > 0 {
            sizes.append(
                VkDescriptorPoolSize(
                    type: VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER, descriptorCount: UInt32(storageTexelBuffers)))
        }
        var pool: VkDescriptorPool?
        try sizes.withUnsafeBufferPointer { list in
            var info = VkDescriptorPoolCreateInfo()
            info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO
            info.maxSets = UInt32(max(maxSets, 1))
            info.poolSizeCount = UInt32(list.count)
            info.pPoolSizes = list.baseAddress
            try check(vkCreateDescriptorPool(device.handle, &info, nil, &pool), "vkCreateDescriptorPool")
        }
        guard let pool else {
            throw VulkanError(call: "vkCreateDescriptorPool", result: VK_ERROR_INITIALIZATION_FAILED)
        }
        handle = pool
    }

    /// Makes a pool with room for one set of each pipeline in `pipelines` (a pipeline may appear many times).
    public convenience init(device: VulkanDevice, forSetsOf pipelines: [ComputePipeline]) throws {
        let kinds = pipelines.flatMap(\.bindings)
        try self.init(
            device: device, maxSets: pipelines.count,
            storageBuffers: kinds.filter { $0 == .storageBuffer }.count,
            texelBuffers: kinds.filter { $0 == .uniformTexelBuffer }.count,
            storageTexelBuffers: kinds.filter { $0 == .storageTexelBuffer }.count)
    }

    deinit { vkDestroyDescriptorPool(device.handle, handle, nil) }

    /// Allocates a set laid out for `pipeline` and points its bindings at `resources`, in binding order.
    public func makeSet(for pipeline: ComputePipeline, _ resources: [DescriptorResource]) throws -> DescriptorSet {
        try DescriptorSet(pool: self, pipeline: pipeline, resources: resources)
    }
}

/// A descriptor set written for one pipeline. It keeps its pool and every resource it points at alive.
public final class DescriptorSet {
    let pool: DescriptorPool
    let handle: VkDescriptorSet
    public let pipeline: ComputePipeline
    let resources: [DescriptorResource]

    init(pool: DescriptorPool, pipeline: ComputePipeline, resources: [DescriptorResource]) throws {
        let device = pool.device
        guard resources.count == pipeline.bindings.count,
            zip(resources, pipeline.bindings).allSatisfy({ $0.fits($1) })
        else {
            throw VulkanSetupError.kernelInterfaceMismatch(
                kernel: pipeline.name, .bindings(shader: pipeline.bindings, given: resources.map(\.description)))
        }
        let limits = device.limits
        var bufferInfos: [VkDescriptorBufferInfo] = []
        var views: [VkBufferView?] = []
        for resource in resources {
            switch resource {
            case let .buffer(buffer, offset, range):
                let length = range ?? (buffer.size - offset)
                let alignment = limits.minStorageBufferOffsetAlignment
                guard length <= limits.maxStorageBufferRange else {
                    throw VulkanSetupError.limitExceeded(
                        limit: "maxStorageBufferRange", requested: length, allowed: limits.maxStorageBufferRange,
                        by: "kernel '\(pipeline.name)' binding buffer '\(buffer.label)'")
                }
                guard offset >= 0, length > 0, offset + length <= buffer.size, offset % max(alignment, 1) == 0 else {
                    throw VulkanSetupError.badRange(
                        buffer: buffer.label, offset: offset, bytes: length, bufferBytes: buffer.size,
                        alignment: alignment)
                }
                bufferInfos.append(
                    VkDescriptorBufferInfo(
                        buffer: buffer.handle, offset: VkDeviceSize(offset), range: VkDeviceSize(length)))
            case let .texels(view):
                guard view.buffer.device === device else {
                    throw VulkanSetupError.kernelInterfaceMismatch(kernel: pipeline.name, .foreignView)
                }
                views.append(view.handle)
            }
        }

        var set: VkDescriptorSet?
        var layouts: [VkDescriptorSetLayout?] = [pipeline.setLayout]
        let allocated: VkResult = layouts.withUnsafeMutableBufferPointer { layoutList in
            var info = VkDescriptorSetAllocateInfo()
            info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO
            info.descriptorPool = pool.handle
            info.descriptorSetCount = 1
            info.pSetLayouts = UnsafePointer(layoutList.baseAddress)
            return vkAllocateDescriptorSets(device.handle, &info, &set)
        }
        try check(allocated, "vkAllocateDescriptorSets(\(pipeline.name))")
        guard let set else {
            throw VulkanError(call: "vkAllocateDescriptorSets", result: VK_ERROR_INITIALIZATION_FAILED)
        }

        bufferInfos.withUnsafeBufferPointer { bufferList in
            views.withUnsafeBufferPointer { viewList in
                var bufferIndex = 0
                var viewIndex = 0
                var writes: [VkWriteDescriptorSet] = []
                for binding in resources.indices {
                    var write = VkWriteDescriptorSet()
                    write.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
                    write.dstSet = set
                    write.dstBinding = UInt32(binding)
                    write.descriptorCount = 1
                    write.descriptorType = pipeline.bindings[binding].descriptorType
                    if pipeline.bindings[binding] == .storageBuffer {
                        write.pBufferInfo = bufferList.baseAddress.map { $0 + bufferIndex }
                        bufferIndex += 1
                    } else {
                        write.pTexelBufferView = viewList.baseAddress.map { $0 + viewIndex }
                        viewIndex += 1
                    }
                    writes.append(write)
                }
                vkUpdateDescriptorSets(device.handle, UInt32(writes.count), writes, 0, nil)
            }
        }
        self.pool = pool
        self.handle = set
        self.pipeline = pipeline
        self.resources = resources
    }
}
