import Foundation
import VulkanCompute

/// One dispatch of an embedded kernel, fully described: which kernel, how it is specialized, its push constants and
/// its grid. An operation turns its shape into a launch; the executor (or a test) binds buffers and records it.
public struct KernelLaunch: Sendable {
    /// The embedded kernel's name (Shaders/<name>.comp).
    public let kernel: String
    /// Specialization constants by constant_id; constant 0 is always the workgroup size in x.
    public let specialization: [UInt32: SpecializationValue]
    /// The push-constant bytes, exactly the shader's block.
    public let pushConstants: [UInt8]
    public let groups: (x: Int, y: Int, z: Int)

    /// Makes a launch from a push-constant struct that mirrors the shader's block.
    public init<Push: BitwiseCopyable>(
        kernel: String, specialization: [UInt32: SpecializationValue], pushConstants: Push, groups: (x: Int, y: Int, z: Int)
    ) {
        self.kernel = kernel
        self.specialization = specialization
        self.pushConstants = withUnsafeBytes(of: pushConstants) { Array($0) }
        self.groups = groups
    }

    /// The key under which its pipeline is cached: kernel and specialization.
    public var pipelineKey: PipelineKey { PipelineKey(kernel: kernel, specialization: specialization) }

    /// Records the launch with `set`, whose pipeline must be the one for ``pipelineKey``.
    public func record(_ commands: CommandBuffer, set: DescriptorSet) throws {
        try pushConstants.withUnsafeBytes { try commands.dispatch(set, pushConstantBytes: $0, groups: groups) }
    }
}

/// One binding of a dispatch: a resource, named however the caller names buffers, and how it is bound.
public struct KernelBinding<Resource> {
    public let resource: Resource
    /// The texel format the kernel reads it as, or `nil` for a storage buffer it writes.
    public let format: TexelFormat?

    /// Read through a uniform texel buffer view.
    public static func read(_ resource: Resource, _ format: TexelFormat = .r32Float) -> KernelBinding {
        KernelBinding(resource: resource, format: format)
    }

    /// Written as a storage buffer.
    public static func write(_ resource: Resource) -> KernelBinding { KernelBinding(resource: resource, format: nil) }

    /// The descriptor kind this binding takes.
    public var kind: BindingKind { format == nil ? .storageBuffer : .uniformTexelBuffer }
}

extension KernelBinding: Sendable where Resource: Sendable {}

/// A dispatch with its bindings in binding order. Each operation builds its steps in one place (its `steps`
/// function), and both the executor and the kernel checks bind through them.
public struct KernelStep<Resource> {
    public let launch: KernelLaunch
    public let bindings: [KernelBinding<Resource>]

    public init(_ launch: KernelLaunch, _ bindings: [KernelBinding<Resource>]) {
        self.launch = launch
        self.bindings = bindings
    }
}

extension KernelStep: Sendable where Resource: Sendable {}

/// Identifies one compute pipeline: the kernel and its specialization constants.
public struct PipelineKey: Hashable, Sendable, CustomStringConvertible {
    public let kernel: String
    public let specialization: [UInt32: SpecializationValue]
    public var description: String {
        kernel + "(" + specialization.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + ")"
    }
}

/// Grid arithmetic shared by the kernels.
public enum Grid {
    /// Workgroups for `items` independent work items at `localSize` per workgroup, spread over x and y so no dimension
    /// passes 65535 (the least every device allows). Kernels rebuild the flat index with `flat_invocation()`.
    public static func flat(items: Int, localSize: Int) -> (x: Int, y: Int, z: Int) {
        let groups = max(1, (items + localSize - 1) / localSize)
        if groups <= 65535 { return (groups, 1, 1) }
        let y = (groups + 65534) / 65535
        return ((groups + y - 1) / y, y, 1)
    }

    /// `value` rounded up to a multiple of `multiple`.
    public static func roundUp(_ value: Int, to multiple: Int) -> Int { (value + multiple - 1) / multiple * multiple }
}

/// The compute pipelines of one device, made once per ``PipelineKey`` and reused.
public final class PipelineCache {
    public let device: VulkanDevice
    private var pipelines: [PipelineKey: ComputePipeline] = [:]

    /// An empty cache for `device`.
    public init(device: VulkanDevice) { self.device = device }

    /// The pipeline for `launch`, made on first use.
    public func pipeline(for launch: KernelLaunch) throws -> ComputePipeline {
        let key = launch.pipelineKey
        if let pipeline = pipelines[key] { return pipeline }
        let pipeline = try ComputePipeline(
            device: device, name: launch.kernel, spirv: ShaderLibrary.spirv(named: launch.kernel),
            pushConstantSize: launch.pushConstants.count, specialization: launch.specialization)
        pipelines[key] = pipeline
        return pipeline
    }

    /// The number of distinct pipelines made so far.
    public var count: Int { pipelines.count }
}
