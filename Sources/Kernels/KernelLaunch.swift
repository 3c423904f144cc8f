import Foundation
import VulkanCompute

/// How a kernel reads and writes its buffers: each kernel is built once per data path (see Shaders/common.glsl).
public enum DataPath: String, Sendable, Codable, CaseIterable {
    /// Reads through uniform texel buffers: fastest on lavapipe, but a view holds at most
    /// ``DeviceLimits/maxTexelBufferElements`` texels (65,536 on the smallest devices).
    case texel
    /// Reads through storage buffers, limited only by ``DeviceLimits/maxStorageBufferRange``.
    case storage
    /// Storage buffers of 16-bit floats for activations and weights, float32 arithmetic (needs 16-bit storage).
    case fp16

    /// What the embedded kernel's name gets for this path: `conv2d`, `conv2d_storage`, `conv2d_fp16`.
    public var kernelSuffix: String {
        switch self {
        case .texel: ""
        case .storage: "_storage"
        case .fp16: "_fp16"
        }
    }

    /// Bytes of one activation or weight value.
    public var elementBytes: Int { self == .fp16 ? 2 : 4 }
}

/// One dispatch of an embedded kernel, fully described: which kernel, how it is specialized, its push constants and
/// its grid. An operation turns its shape into a launch; the executor (or a test) binds buffers and records it.
public struct KernelLaunch: Sendable {
    /// The kernel's name (Shaders/<name>.comp, or a variant declared there).
    public let kernel: String
    /// The data path it is built for; the embedded SPIR-V is ``spirvName``.
    public var dataPath: DataPath = .texel
    /// Specialization constants by constant_id; constant 0 is always the workgroup size in x.
    public let specialization: [UInt32: SpecializationValue]
    /// The push-constant bytes, exactly the shader's block.
    public let pushConstants: [UInt8]
    public let groups: (x: Int, y: Int, z: Int)

    /// Makes a launch from a push-constant struct that mirrors the shader's block.
    public init<Push: BitwiseCopyable>(
        kernel: String, specialization: [UInt32: SpecializationValue], pushConstants: Push,
        groups: (x: Int, y: Int, z: Int)
    ) {
        self.kernel = kernel
        self.specialization = specialization
        self.pushConstants = withUnsafeBytes(of: pushConstants) { Array($0) }
        self.groups = groups
    }

    /// The embedded kernel that runs: the kernel's name with its data path's suffix.
    public var spirvName: String { kernel + dataPath.kernelSuffix }

    /// The key under which its pipeline is cached: kernel, data path and specialization.
    public var pipelineKey: PipelineKey { PipelineKey(kernel: spirvName, specialization: specialization) }

    /// Records the launch with `set`, whose pipeline must be the one for ``pipelineKey``.
    public func record(_ commands: CommandBuffer, set: DescriptorSet) throws {
        try pushConstants.withUnsafeBytes { try commands.dispatch(set, pushConstantBytes: $0, groups: groups) }
    }
}

/// One binding of a dispatch: a resource, named however the caller names buffers, and how the kernel uses it.
public struct KernelBinding<Resource> {
    /// Whether a kernel reads a binding, writes it, or updates it in place (reads, then writes the same elements).
    public enum Access: Sendable { case read, write, readWrite }

    /// Whether the kernel reads the binding's values (``Access/read`` or ``Access/readWrite``).
    public var reads: Bool { access != .write }
    /// Whether the kernel writes the binding (``Access/write`` or ``Access/readWrite``).
    public var writes: Bool { access != .read }

    public let resource: Resource
    public let access: Access
    /// How wide the kernel reads it: R32F (LOAD1) or RGBA32F (LOAD4); on the texel path, the view's format.
    public let format: TexelFormat
    /// Always float32, whatever the data path (INPUT_F32 / OUTPUT_F32 in the shader: softmax statistics).
    public let alwaysFloat32: Bool
    /// Read through a texel buffer on every path (INPUT_SMALL: per-channel scales, shifts and biases), so that no
    /// kernel needs more than the 4 storage buffers per stage every device allows.
    public var alwaysTexel = false
    /// Read through a storage texel buffer (`imageBuffer`, imageLoad) on the texel path: lavapipe inlines imageLoad
    /// where each texelFetch is a call (the GEMM kernels' weights).
    public var image = false

    /// Read (through a texel view of `format` on the texel path).
    public static func read(_ resource: Resource, _ format: TexelFormat = .r32Float) -> KernelBinding {
        KernelBinding(resource: resource, access: .read, format: format, alwaysFloat32: false)
    }

    /// A small per-channel array (at most a few thousand values), read as float32 through a texel view on every
    /// data path.
    public static func readSmall(_ resource: Resource) -> KernelBinding {
        var binding = KernelBinding(resource: resource, access: .read, format: .r32Float, alwaysFloat32: true)
        binding.alwaysTexel = true
        return binding
    }

    /// Read as an `imageBuffer` of `format` on the texel path (a storage buffer on the others).
    public static func readImage(_ resource: Resource, _ format: TexelFormat) -> KernelBinding {
        var binding = KernelBinding(resource: resource, access: .read, format: format, alwaysFloat32: false)
        binding.image = true
        return binding
    }

    /// Read, float32 on every data path (through a texel view of `format` on the texel path).
    public static func readFloat32(_ resource: Resource, _ format: TexelFormat = .r32Float) -> KernelBinding {
        KernelBinding(resource: resource, access: .read, format: format, alwaysFloat32: true)
    }

    /// Written as a storage buffer.
    public static func write(_ resource: Resource) -> KernelBinding {
        KernelBinding(resource: resource, access: .write, format: .r32Float, alwaysFloat32: false)
    }

    /// Read and written in place as a float32 storage buffer on every data path (optimizer state, parameters under
    /// update, gradients that several kernels add to).
    public static func readWrite(_ resource: Resource) -> KernelBinding {
        KernelBinding(resource: resource, access: .readWrite, format: .r32Float, alwaysFloat32: true)
    }

    /// Written as a storage buffer, float32 on every data path.
    public static func writeFloat32(_ resource: Resource) -> KernelBinding {
        KernelBinding(resource: resource, access: .write, format: .r32Float, alwaysFloat32: true)
    }

    /// The descriptor kind this binding takes on `path`: texel reads are uniform texel buffers (storage texel
    /// buffers where ``image``), all else storage buffers.
    public func kind(on path: DataPath) -> BindingKind {
        guard access == .read else { return .storageBuffer }
        if alwaysTexel { return .uniformTexelBuffer }
        guard path == .texel else { return .storageBuffer }
        return image ? .storageTexelBuffer : .uniformTexelBuffer
    }

    /// Bytes of one value on `path`.
    public func elementBytes(on path: DataPath) -> Int { alwaysFloat32 ? 4 : path.elementBytes }
}

extension KernelBinding: Sendable where Resource: Sendable {}

/// A dispatch with its bindings in binding order. Each operation builds its steps in one place (its `steps`
/// function), and both the executor and the kernel checks bind through them.
public struct KernelStep<Resource> {
    public var launch: KernelLaunch
    public let bindings: [KernelBinding<Resource>]

    public init(_ launch: KernelLaunch, _ bindings: [KernelBinding<Resource>]) {
        self.launch = launch
        self.bindings = bindings
    }

    /// The data path this step runs on.
    public var dataPath: DataPath { launch.dataPath }

    /// The same step on another data path.
    public func on(_ path: DataPath) -> KernelStep {
        var step = self
        step.launch.dataPath = path
        return step
    }
}

extension KernelStep: Sendable where Resource: Sendable {}

/// Identifies one compute pipeline: the kernel and its specialization constants.
public struct PipelineKey: Hashable, Sendable, CustomStringConvertible {
    public let kernel: String
    public let specialization: [UInt32: SpecializationValue]
    public var description: String {
        kernel + "(" + specialization.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            + ")"
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

    /// Lanes of a workgroup that reduces `values` values (one workgroup per channel: BatchNorm statistics, sums): a
    /// power of two from 8 to 64, about one lane per 16 values, so that a small channel (a 1x1 stage's, one value
    /// per image) does not pay for a wide workgroup's shared-memory steps.
    public static func reductionLanes(values: Int) -> Int {
        var lanes = 8
        while lanes < 64 && lanes * 16 < values { lanes *= 2 }
        return lanes
    }

    /// `value` rounded up to a multiple of `multiple`.
    public static func roundUp(_ value: Int, to multiple: Int) -> Int { (value + multiple - 1) / multiple * multiple }
}

/// The compute pipelines of one device, made once per ``PipelineKey`` and reused (in memory; not to be confused with
/// the driver's pipeline cache that ``VulkanDevice`` keeps on disk).
public final class KernelPipelines {
    public let device: VulkanDevice
    private var pipelines: [PipelineKey: ComputePipeline] = [:]

    /// An empty cache for `device`.
    public init(device: VulkanDevice) { self.device = device }

    /// The pipeline for `launch`, made on first use.
    public func pipeline(for launch: KernelLaunch) throws -> ComputePipeline {
        let key = launch.pipelineKey
        if let pipeline = pipelines[key] { return pipeline }
        let pipeline = try ComputePipeline(
            device: device, name: launch.spirvName, spirv: ShaderLibrary.spirv(named: launch.spirvName),
            pushConstantSize: launch.pushConstants.count, specialization: launch.specialization)
        pipelines[key] = pipeline
        return pipeline
    }

    /// The number of distinct pipelines made so far.
    public var count: Int { pipelines.count }
}
