import Foundation
import Kernels
import VulkanCompute

/// Where a training step's planned buffers live (see ``TrainingBuffer``): each lives from the first step that binds it
/// to the last, and buffers whose lifetimes do not overlap share arena memory, placed as the forward's
/// ``MemoryPlan`` places tensors. What the backward reads of the forward lives until the backward reads it; scratch
/// and most gradients live a few steps. The step recorder's barriers cover the reuse: a step that overwrites what an
/// earlier step read waits for it.
///
/// Where the step would not fit the device's memory, the backward can make the outputs of nodes that add no residual
/// again instead of keeping them (``Recomputation``).
struct TrainingMemory {
    /// The arenas (each at most the device's largest buffer), once allocated.
    private(set) var arenas: [VulkanBuffer] = []
    /// Each planned buffer's region, by identity; the buffers are kept, so that no identity is reused.
    private let regions: [ObjectIdentifier: MemoryPlan.Region]
    private let buffers: [TrainingBuffer]
    private let sizes: [Int]
    /// Bytes of the arenas, and what the planned buffers would take apart.
    var bytes: Int { sizes.reduce(0, +) }
    let unsharedBytes: Int

    /// Places every planned buffer `steps` bind, in arenas of at most `capacity` bytes; with `share` false each gets
    /// memory of its own. Allocates nothing (``allocate(on:)`` does).
    init(steps: [KernelStep<TrainingBuffer>], capacity: Int, share: Bool) {
        var buffers: [TrainingBuffer] = []
        var lifetimes: [ObjectIdentifier: MemoryPlan.Lifetime] = [:]
        for (index, step) in steps.enumerated() {
            for binding in step.bindings where binding.resource.owned == nil {
                let key = ObjectIdentifier(binding.resource)
                if let lifetime = lifetimes[key] {
                    lifetimes[key]?.last = max(lifetime.last, index)
                } else {
                    lifetimes[key] = MemoryPlan.Lifetime(
                        bytes: MemoryPlan.padded(binding.resource.size), first: index, last: index)
                    buffers.append(binding.resource)
                }
            }
        }
        let items = buffers.compactMap { lifetimes[ObjectIdentifier($0)] }
        let (placed, sizes) = MemoryPlan.place(items, share: share, capacity: capacity)
        regions = Dictionary(uniqueKeysWithValues: zip(buffers.map(ObjectIdentifier.init), placed))
        self.buffers = buffers
        self.sizes = sizes
        unsharedBytes = items.reduce(0) { $0 + MemoryPlan.aligned($1.bytes) }
    }

    /// The largest arena `device` allows: its largest buffer, in whole blocks of the plan's alignment.
    static func capacity(of device: VulkanDevice) -> Int {
        device.limits.maxSingleBuffer / MemoryPlan.alignment * MemoryPlan.alignment
    }

    /// Makes the arenas on `device`.
    mutating func allocate(on device: VulkanDevice) throws {
        arenas = try sizes.enumerated().map { index, size in
            try VulkanBuffer(device: device, size: size, label: "training arena \(index)")
        }
    }

    /// Where `buffer` lives: its owned buffer, or its region of an arena.
    func locate(_ buffer: TrainingBuffer) -> BufferRegion {
        if let owned = buffer.owned { return BufferRegion(owned) }
        guard let region = regions[ObjectIdentifier(buffer)] else {
            preconditionFailure("\(buffer.label): a planned buffer no step binds has no memory")
        }
        return BufferRegion(arenas[region.arena], offset: region.offset, bytes: region.bytes)
    }
}

/// When a training step's backward makes the outputs of nodes that add no residual again (their BatchNorm and
/// activation, one elementwise pass each, from the raw output and statistics the backward keeps anyway) instead of
/// keeping them from the forward: about a third less memory for a few percent more time.
public enum Recomputation: Sendable {
    case never
    case always
    /// Where the step, its parameters and AdamW's state would not fit the device's memory budget otherwise.
    case whereMemoryIsShort
}
