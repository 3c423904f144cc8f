import Foundation
import VulkanCompute

/// Elementwise add with a fused activation: `y[i] = act(a[i] + b[i])`. Kernel: Shaders/add.comp.
public enum Add {
    /// The kernel's push constants; mirrors `Push` in Shaders/add.comp.
    public struct PushConstants: BitwiseCopyable, Equatable {
        public var count: UInt32
    }

    /// Invocations per workgroup (a multiple of 8: lavapipe runs 8 invocations per SIMD register).
    public static let localSize: UInt32 = 64
    /// vec4s each invocation handles.
    public static let vec4PerInvocation: UInt32 = 4

    /// The CPU reference: plain, in Double.
    public static func reference(_ a: [Float], _ b: [Float], activation: Activation) -> [Float] {
        precondition(a.count == b.count, "add: inputs differ in length")
        return zip(a, b).map { Float(activation.apply(Double($0) + Double($1))) }
    }

    /// Makes the pipeline for one activation.
    public static func pipeline(device: VulkanDevice, activation: Activation) throws -> ComputePipeline {
        try ComputePipeline(
            device: device, name: "add", spirv: ShaderLibrary.spirv(named: "add"),
            pushConstantSize: MemoryLayout<PushConstants>.size,
            specialization: [0: .uint(localSize), 1: .uint(activation.rawValue), 2: .uint(vec4PerInvocation)])
    }

    /// Workgroups needed for `count` floats.
    public static func groups(count: Int) -> Int {
        let vec4s = (count + 3) / 4
        let perGroup = Int(localSize * vec4PerInvocation)
        return max(1, (vec4s + perGroup - 1) / perGroup)
    }

    /// Records `y = act(a + b)` over `count` floats. `a` and `b` are RGBA32F views covering `count` floats rounded
    /// up to whole vec4s; `y` holds at least `count` floats.
    public static func record(
        _ commands: CommandBuffer, set: DescriptorSet, count: Int
    ) throws {
        try commands.dispatch(set, pushConstants: PushConstants(count: UInt32(count)), groups: (groups(count: count), 1, 1))
    }
}
