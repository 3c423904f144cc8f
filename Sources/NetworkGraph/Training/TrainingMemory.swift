import Foundation
import Kernels
import VulkanCompute

/// Where a training step's planned buffers live (see ``TrainingBuffer``): each lives from the first step that binds it
/// to the last, and buffers whose lifetimes do not overlap share arena memory, placed as the forward's
/// ``MemoryPlan`` places tensors. What the backward reads of the forward lives until the backward reads it; scratch
/// and most gradients live a few steps. The step recorder's barriers cover the reuse: a step that overwrites what an
/// earlier step read waits for it.
struct TrainingMemory {
    /// The arenas, each at most the device's largest buffer.
    let arenas: [VulkanBuffer]
    /// Each planned buffer's region, by identity.
    private let regions: [ObjectIdentifier: MemoryPlan.Region]
    /// Bytes of the arenas, and what the planned buffers would take apart.
    let bytes: Int
    let unsharedBytes: Int

    /// Places every planned buffer `steps` bind; with `share` false each gets memory of its own.
    init(steps: [KernelStep<TrainingBuffer>], device: VulkanDevice, share: Bool) throws {
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
        let capacity = device.limits.maxSingleBuffer / MemoryPlan.alignment * MemoryPlan.alignment
        let (placed, sizes) = MemoryPlan.place(items, share: share, capacity: capacity)
        regions = Dictionary(uniqueKeysWithValues: zip(buffers.map(ObjectIdentifier.init), placed))
        arenas = try sizes.enumerated().map { index, size in
            try VulkanBuffer(device: device, size: size, label: "training arena \(index)")
        }
        bytes = sizes.reduce(0, +)
        unsharedBytes = items.reduce(0) { $0 + MemoryPlan.aligned($1.bytes) }
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
