import CVulkan
import Foundation

/// Where a buffer's memory lives.
public enum BufferMemory: Sendable {
    /// Fastest for the device. On unified-memory devices (integrated GPUs, lavapipe) this memory is also mapped for
    /// the host, and uploads and downloads copy directly; elsewhere they go through a staging buffer.
    case deviceLocal
    /// Host-visible, coherent memory for moving data in and out (cached where the device offers it, for readback).
    case staging
}

/// A Vulkan buffer and the memory bound to it, freed when the last reference goes.
///
/// Buffers are shared by descriptor sets and command buffers that keep them alive while recorded work may use them,
/// so this is a class rather than a single-owner type.
public final class VulkanBuffer {
    public let device: VulkanDevice
    let handle: VkBuffer
    let memory: VkDeviceMemory
    /// Size in bytes.
    public let size: Int
    /// The host address of the buffer's memory when it is host-visible (mapped once, for the buffer's life).
    let mapped: UnsafeMutableRawPointer?
    /// Bytes of the buffer's memory allocation (its size rounded up as the driver requires).
    let allocationBytes: Int
    /// A name for error messages and debugging.
    public let label: String

    /// Creates a buffer usable as a storage buffer, a uniform or storage texel buffer and a transfer source and destination.
    public init(device: VulkanDevice, size: Int, memory kind: BufferMemory = .deviceLocal, label: String = "buffer")
        throws
    {
        guard size > 0 else { throw VulkanSetupError.emptyBuffer(label: label) }
        guard size <= device.limits.maxSingleBuffer else {
            throw VulkanSetupError.bufferTooLarge(label: label, bytes: size, limit: device.limits.maxSingleBuffer)
        }
        self.device = device
        self.size = size
        self.label = label
        var info = VkBufferCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
        info.size = VkDeviceSize(size)
        info.usage = VkBufferUsageFlags(
            VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT.rawValue
                | VK_BUFFER_USAGE_STORAGE_TEXEL_BUFFER_BIT.rawValue
                | VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue)
        info.sharingMode = VK_SHARING_MODE_EXCLUSIVE
        var buffer: VkBuffer?
        try check(vkCreateBuffer(device.handle, &info, nil, &buffer), "vkCreateBuffer(\(label), \(size) bytes)")
        guard let buffer else { throw VulkanError(call: "vkCreateBuffer", result: VK_ERROR_INITIALIZATION_FAILED) }

        var requirements = VkMemoryRequirements()
        vkGetBufferMemoryRequirements(device.handle, buffer, &requirements)
        let local = VkMemoryPropertyFlags(VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue)
        let visible = VkMemoryPropertyFlags(VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue)
        let coherent = VkMemoryPropertyFlags(VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue)
        let cached = VkMemoryPropertyFlags(VK_MEMORY_PROPERTY_HOST_CACHED_BIT.rawValue)
        let typeIndex: UInt32?
        switch kind {
        case .deviceLocal:
            // On unified memory take the device-local type that the host can also see, so no staging is needed.
            typeIndex =
                device.info.unifiedMemory
                ? device.memoryType(typeBits: requirements.memoryTypeBits, required: local | visible | coherent)
                    ?? device.memoryType(typeBits: requirements.memoryTypeBits, required: local)
                : device.memoryType(typeBits: requirements.memoryTypeBits, required: local)
        case .staging:
            typeIndex = device.memoryType(
                typeBits: requirements.memoryTypeBits, required: visible | coherent, preferred: cached)
        }
        guard let typeIndex else {
            vkDestroyBuffer(device.handle, buffer, nil)
            throw VulkanSetupError.noSuitableMemoryType("buffer '\(label)' (\(kind))")
        }
        var allocation = VkMemoryAllocateInfo()
        allocation.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO
        allocation.allocationSize = requirements.size
        allocation.memoryTypeIndex = typeIndex
        var memory: VkDeviceMemory?
        let allocated = vkAllocateMemory(device.handle, &allocation, nil, &memory)
        guard allocated == VK_SUCCESS, let memory else {
            vkDestroyBuffer(device.handle, buffer, nil)
            throw VulkanError(call: "vkAllocateMemory(\(label), \(requirements.size) bytes)", result: allocated)
        }
        let bound = vkBindBufferMemory(device.handle, buffer, memory, 0)
        guard bound == VK_SUCCESS else {
            vkFreeMemory(device.handle, memory, nil)
            vkDestroyBuffer(device.handle, buffer, nil)
            throw VulkanError(call: "vkBindBufferMemory(\(label))", result: bound)
        }
        var mapped: UnsafeMutableRawPointer?
        let flags = device.memoryFlags(ofType: typeIndex)
        if flags & visible != 0 && flags & coherent != 0 {
            let mapResult = vkMapMemory(device.handle, memory, 0, VkDeviceSize(VK_WHOLE_SIZE), 0, &mapped)
            guard mapResult == VK_SUCCESS else {
                vkFreeMemory(device.handle, memory, nil)
                vkDestroyBuffer(device.handle, buffer, nil)
                throw VulkanError(call: "vkMapMemory(\(label))", result: mapResult)
            }
        }
        self.handle = buffer
        self.memory = memory
        self.mapped = mapped
        allocationBytes = Int(requirements.size)
        device.countAllocation(allocationBytes)
    }

    deinit {
        if mapped != nil { vkUnmapMemory(device.handle, memory) }
        vkDestroyBuffer(device.handle, handle, nil)
        vkFreeMemory(device.handle, memory, nil)
        device.countAllocation(-allocationBytes)
    }

    /// Whether the host can read and write this buffer directly.
    public var isHostVisible: Bool { mapped != nil }

    /// Copies `bytes` into the buffer at `offset`, through a staging buffer when the buffer is not host-visible.
    ///
    /// Call between submissions only: it does not synchronize with work in flight.
    public func upload(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) throws {
        try checkRange(offset: offset, count: bytes.count, operation: "upload")
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        try write(offset: offset, count: bytes.count) { $0.baseAddress?.copyMemory(from: base, byteCount: bytes.count) }
    }

    /// Lets `body` fill `count` bytes of the buffer from `offset` in place: the buffer's own memory when it is
    /// host-visible, else a staging buffer copied over in one submission. Saves building the contents elsewhere first.
    ///
    /// Call between submissions only: it does not synchronize with work in flight.
    public func write(offset: Int = 0, count: Int? = nil, _ body: (UnsafeMutableRawBufferPointer) throws -> Void) throws
    {
        let count = count ?? size - offset
        try checkRange(offset: offset, count: count, operation: "write")
        guard count > 0 else { return }
        if let mapped {
            try body(UnsafeMutableRawBufferPointer(start: mapped + offset, count: count))
            return
        }
        let staging = try VulkanBuffer(device: device, size: count, memory: .staging, label: "\(label) upload")
        try staging.write(body)
        try device.run { commands in
            // Earlier work on this buffer (in earlier submissions too) finishes before the copy overwrites it.
            commands.barrier(.computeReadWrite, before: .transferWrite, buffers: [self])
            commands.barrier(.transferWrite, before: .transferWrite, buffers: [self])
            commands.copy(from: staging, to: self, size: count, destinationOffset: offset)
            commands.barrier(.transferWrite, before: .computeRead, buffers: [self])
        }
    }

    /// Copies `count` bytes from `offset` out of the buffer, through a staging buffer when it is not host-visible.
    ///
    /// The work that wrote the buffer must have finished and made its writes visible to the host
    /// (``CommandBuffer/barrier(_:before:buffers:)`` with ``Access/hostRead``).
    public func download(into bytes: UnsafeMutableRawBufferPointer, from offset: Int = 0) throws {
        try checkRange(offset: offset, count: bytes.count, operation: "download")
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        if let mapped {
            base.copyMemory(from: mapped + offset, byteCount: bytes.count)
            return
        }
        let staging = try VulkanBuffer(device: device, size: bytes.count, memory: .staging, label: "\(label) download")
        try device.run { commands in
            // Shader and transfer writes to this buffer, in earlier submissions too, are visible to the copy.
            commands.barrier(.computeWrite, before: .transferRead, buffers: [self])
            commands.barrier(.transferWrite, before: .transferRead, buffers: [self])
            commands.copy(from: self, to: staging, size: bytes.count, sourceOffset: offset)
            commands.barrier(.transferWrite, before: .hostRead, buffers: [staging])
        }
        try staging.download(into: bytes)
    }

    /// Uploads an array of plain values (Float, UInt32, ...) at a byte offset.
    public func upload<T: BitwiseCopyable>(_ values: [T], at offset: Int = 0) throws {
        try values.withUnsafeBytes { try upload($0, at: offset) }
    }

    /// Downloads `count` plain values from a byte offset.
    public func download<T: BitwiseCopyable>(_ type: T.Type = T.self, count: Int, from offset: Int = 0) throws -> [T] {
        try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            try download(into: UnsafeMutableRawBufferPointer(buffer), from: offset)
            initialized = count
        }
    }

    private func checkRange(offset: Int, count: Int, operation: String) throws {
        guard offset >= 0, count >= 0, offset + count <= size else {
            throw VulkanSetupError.badRange(
                buffer: label, offset: offset, bytes: count, bufferBytes: size, alignment: 1)
        }
    }
}

/// The formats a ``TexelBufferView`` can read a buffer as.
public enum TexelFormat: Sendable {
    /// One float per texel.
    case r32Float
    /// Four floats per texel (read as a vec4: the fast path on lavapipe).
    case rgba32Float

    var vkFormat: VkFormat { self == .r32Float ? VK_FORMAT_R32_SFLOAT : VK_FORMAT_R32G32B32A32_SFLOAT }
    /// Bytes per texel.
    public var bytes: Int { self == .r32Float ? 4 : 16 }
}

/// A view of a buffer as a uniform texel buffer (`samplerBuffer` / `texelFetch` in GLSL).
///
/// The texel family reads inputs and weights through these (the measurements behind that: shared/LAVAPIPE.md and
/// BENCHMARKS.md).
public final class TexelBufferView {
    public let buffer: VulkanBuffer
    let handle: VkBufferView
    public let format: TexelFormat
    public let offset: Int
    /// The view's size in bytes.
    public let range: Int

    /// Makes a view of `range` bytes (the rest of the buffer when `nil`) from `offset`, which must be a multiple of
    /// the device's `minTexelBufferOffsetAlignment`.
    public init(buffer: VulkanBuffer, format: TexelFormat, offset: Int = 0, range: Int? = nil) throws {
        let device = buffer.device
        let range = range ?? (buffer.size - offset) / format.bytes * format.bytes
        let limits = device.limits
        let alignment = limits.minTexelBufferOffsetAlignment
        guard offset >= 0, range > 0, offset + range <= buffer.size, offset % max(alignment, 1) == 0,
            range % format.bytes == 0
        else {
            throw VulkanSetupError.badRange(
                buffer: buffer.label, offset: offset, bytes: range, bufferBytes: buffer.size, alignment: alignment)
        }
        guard range / format.bytes <= limits.maxTexelBufferElements else {
            throw VulkanSetupError.limitExceeded(
                limit: "maxTexelBufferElements", requested: range / format.bytes,
                allowed: limits.maxTexelBufferElements, by: "a texel view of buffer '\(buffer.label)'")
        }
        self.buffer = buffer
        self.format = format
        self.offset = offset
        self.range = range
        var info = VkBufferViewCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO
        info.buffer = buffer.handle
        info.format = format.vkFormat
        info.offset = VkDeviceSize(offset)
        info.range = VkDeviceSize(range)
        var view: VkBufferView?
        try check(vkCreateBufferView(device.handle, &info, nil, &view), "vkCreateBufferView(\(buffer.label))")
        guard let view else { throw VulkanError(call: "vkCreateBufferView", result: VK_ERROR_INITIALIZATION_FAILED) }
        handle = view
    }

    deinit { vkDestroyBufferView(buffer.device.handle, handle, nil) }
}
