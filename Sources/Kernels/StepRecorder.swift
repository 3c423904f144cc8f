import Foundation
import VulkanCompute

/// Where a binding's resource lives: a byte range of one buffer.
public struct BufferRegion {
    public let buffer: VulkanBuffer
    public let offset: Int
    public let bytes: Int

    /// `bytes` of `buffer` from `offset` (the rest of the buffer when `nil`).
    public init(_ buffer: VulkanBuffer, offset: Int = 0, bytes: Int? = nil) {
        self.buffer = buffer
        self.offset = offset
        self.bytes = bytes ?? (buffer.size - offset)
    }

    /// Whether the two regions share a byte.
    func overlaps(_ other: BufferRegion) -> Bool {
        buffer === other.buffer && (offset..<(offset + bytes)).overlaps(other.offset..<(other.offset + other.bytes))
    }
}

extension Array {
    /// An operation's steps as the data path allows on a device whose texel views hold at most `limit` texels: on the
    /// texel path, if any view the steps would take is larger, all of them read storage buffers instead (one node, one
    /// data path). `bytes` gives the size of a resource.
    public func fittingTexelViews<Resource>(limit: Int, bytes: (Resource) -> Int) -> [KernelStep<Resource>]
    where Element == KernelStep<Resource> {
        let fits = allSatisfy { step in
            step.dataPath != .texel
                || step.bindings.allSatisfy { binding in
                    !binding.kind(on: .texel).takesTexelView || bytes(binding.resource) / binding.format.bytes <= limit
                }
        }
        return fits ? self : map { $0.on(.storage) }
    }
}

extension Array {
    /// Steps for a session or runner whose family reads through `path`: steps built for the texel path (the
    /// training kernels build theirs so, whatever the family) read storage buffers where `path` is another, and each
    /// step whose texel views would pass `limit` texels reads storage buffers too.
    public func reading<Resource>(through path: DataPath, limit: Int, bytes: (Resource) -> Int) -> [KernelStep<
        Resource
    >]
    where Element == KernelStep<Resource> {
        map { step in
            guard step.dataPath == .texel else { return step }
            return path == .texel ? [step].fittingTexelViews(limit: limit, bytes: bytes)[0] : step.on(.storage)
        }
    }
}

/// Steps bound and ready to record, for sessions and kernel checks alike: a pipeline per step (from a shared
/// ``KernelPipelines``), descriptor sets from one pool of exactly their size, and texel views shared between bindings
/// of the same range and format.
///
/// ``record(into:afterStep:)`` places a barrier only before a step that reads or overwrites what a step since the last
/// barrier wrote, or overwrites what one read: independent steps run side by side.
public final class StepRecorder {
    /// Each step's pipeline, in order.
    public let pipelines: [ComputePipeline]
    private let launches: [KernelLaunch]
    private let sets: [DescriptorSet]
    private let reads: [[BufferRegion]]
    private let writes: [[BufferRegion]]

    /// Binds `steps`, whose resources live where `locate` says.
    public init<Resource>(
        _ steps: [KernelStep<Resource>], pipelines cache: KernelPipelines, locate: (Resource) -> BufferRegion
    ) throws {
        let pipelines = try steps.map { try cache.pipeline(for: $0.launch) }
        let pool = try DescriptorPool(device: cache.device, forSetsOf: pipelines)
        var views: [ViewKey: TexelBufferView] = [:]
        sets = try zip(steps, pipelines).map { step, pipeline in
            try pool.makeSet(
                for: pipeline,
                step.bindings.map { binding -> DescriptorResource in
                    let region = locate(binding.resource)
                    guard binding.kind(on: step.dataPath).takesTexelView else {
                        return .buffer(region.buffer, offset: region.offset, range: region.bytes)
                    }
                    let key = ViewKey(region: region, format: binding.format)
                    if let view = views[key] { return .texels(view) }
                    let view = try TexelBufferView(
                        buffer: region.buffer, format: binding.format, offset: region.offset,
                        range: region.bytes / binding.format.bytes * binding.format.bytes)
                    views[key] = view
                    return .texels(view)
                })
        }
        reads = steps.map { $0.bindings.filter(\.reads).map { locate($0.resource) } }
        writes = steps.map { $0.bindings.filter(\.writes).map { locate($0.resource) } }
        launches = steps.map(\.launch)
        self.pipelines = pipelines
    }

    /// Records every step in order, with the barriers their data dependencies need; `afterStep` runs after each step
    /// is recorded (a timestamp, say). Returns the number of barriers placed.
    @discardableResult
    public func record(into commands: CommandBuffer, afterStep: (Int) -> Void = { _ in }) throws -> Int {
        var pendingReads: [BufferRegion] = []
        var pendingWrites: [BufferRegion] = []
        var barriers = 0
        for index in launches.indices {
            let hazard =
                reads[index].contains { read in pendingWrites.contains(where: read.overlaps) }
                || writes[index].contains { write in
                    pendingWrites.contains(where: write.overlaps) || pendingReads.contains(where: write.overlaps)
                }
            if hazard {
                commands.barrier(.computeReadWrite, before: .computeReadWrite)
                pendingReads.removeAll()
                pendingWrites.removeAll()
                barriers += 1
            }
            pendingReads += reads[index]
            pendingWrites += writes[index]
            try launches[index].record(commands, set: sets[index])
            afterStep(index)
        }
        return barriers
    }
}

/// A texel view's identity: its range and format.
private struct ViewKey: Hashable {
    let buffer: ObjectIdentifier
    let offset: Int
    let bytes: Int
    let format: TexelFormat

    init(region: BufferRegion, format: TexelFormat) {
        buffer = ObjectIdentifier(region.buffer)
        offset = region.offset
        bytes = region.bytes
        self.format = format
    }
}
