import Foundation
import VulkanCompute

/// Runs a few kernel launches on buffers of their own, outside any plan: what the per-kernel tests and
/// `bossnet validate` use to compare each kernel with its CPU reference.
///
/// Outputs are poisoned with NaN before the run and followed by guard values, so an element a kernel fails to write,
/// or one it writes past its end, is caught.
public final class KernelRunner {
    public let device: VulkanDevice
    private let pipelines: PipelineCache
    private var steps: [KernelStep<VulkanBuffer>] = []
    private var outputs: [(buffer: VulkanBuffer, count: Int)] = []

    /// The guard value written after every output.
    public static let guardValue: Float = 31337
    static let guardCount = 4

    /// A runner on `device`, making pipelines through `pipelines` (a new cache when `nil`).
    public init(device: VulkanDevice, pipelines: PipelineCache? = nil) {
        self.device = device
        self.pipelines = pipelines ?? PipelineCache(device: device)
    }

    /// A buffer holding `values`, padded with zeros to whole vec4s so it can be viewed as RGBA32F.
    public func input(_ values: [Float]) throws -> VulkanBuffer {
        let padded = Grid.roundUp(max(values.count, 1), to: 4)
        let buffer = try VulkanBuffer(device: device, size: padded * 4, label: "input")
        try buffer.upload(values + [Float](repeating: 0, count: padded - values.count))
        return buffer
    }

    /// A buffer for `count` outputs: NaN, then guard values.
    public func output(_ count: Int) throws -> VulkanBuffer {
        let total = Grid.roundUp(count + Self.guardCount, to: 4)
        let buffer = try VulkanBuffer(device: device, size: total * 4, label: "output")
        try buffer.upload([Float](repeating: .nan, count: count) + [Float](repeating: Self.guardValue, count: total - count))
        outputs.append((buffer, count))
        return buffer
    }

    /// Adds an operation's steps; steps run in the order added, each seeing the writes of those before it.
    public func add(_ steps: [KernelStep<VulkanBuffer>]) {
        self.steps += steps
    }

    /// Records every step with barriers between them, runs them, and waits.
    public func run() throws {
        let pipelines = try steps.map { try self.pipelines.pipeline(for: $0.launch) }
        let pool = try DescriptorPool(device: device, forSetsOf: pipelines)
        let sets = try zip(steps, pipelines).map { step, pipeline in
            try pool.makeSet(for: pipeline, step.bindings.map { binding -> DescriptorResource in
                guard let format = binding.format else { return .buffer(binding.resource) }
                return .texels(try TexelBufferView(buffer: binding.resource, format: format))
            })
        }
        try device.run { commands in
            for (index, step) in steps.enumerated() {
                if index > 0 { commands.barrier(.computeReadWrite, before: .computeReadWrite) }
                try step.launch.record(commands, set: sets[index])
            }
            commands.barrier(.computeWrite, before: .hostRead)
        }
    }

    /// The first `count` values of an output made by ``output(_:)``, after checking that its guard values survived.
    public func read(_ buffer: VulkanBuffer) throws -> [Float] {
        guard let entry = outputs.first(where: { $0.buffer === buffer }) else {
            throw KernelCheckFailure("read() takes a buffer made by output()")
        }
        let values = try buffer.download(Float.self, count: entry.count + Self.guardCount)
        if values.suffix(Self.guardCount).contains(where: { $0 != Self.guardValue }) {
            throw KernelCheckFailure("a kernel wrote past the end of its output (\(entry.count) values)")
        }
        return Array(values.prefix(entry.count))
    }
}

/// A kernel that misbehaved in a way a tolerance cannot describe.
public struct KernelCheckFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
