import Foundation
import Synchronization
import VulkanCompute

/// Runs a few kernel launches on buffers of their own, outside any plan: what the per-kernel tests and
/// `bossnet validate` use to compare each kernel with its CPU reference.
///
/// Outputs are poisoned with NaN before the run and followed by guard values, so an element a kernel fails to write,
/// or one it writes past its end, is caught. Values go in and come out as Float; on the fp16 data path the runner
/// stores them as 16-bit floats wherever the kernels read or write 16-bit values.
public final class KernelRunner {
    public let device: VulkanDevice
    /// The family and limits every operation's steps are made for (``KernelConfig``).
    public let config: KernelConfig
    private let pipelines: KernelPipelines
    /// Where ``reference(reading:_:)`` keeps and finds results, and the check they belong to.
    private let references: (memo: ReferenceMemo, check: String)?
    private var steps: [KernelStep<VulkanBuffer>] = []
    /// What each buffer made by ``input(_:)`` or ``output(_:)`` holds, by identity.
    private var contents: [ObjectIdentifier: (values: [Float], isOutput: Bool)] = [:]

    /// The guard value written after every output.
    public static let guardValue: Float = 31337
    static let guardCount = 4

    /// A runner on `device`, making pipelines through `pipelines` (a new cache when `nil`), for `config` (the texel
    /// family within the device's limits when `nil`); `references` keeps the CPU references of the check named
    /// `check` for runs that read the same values (none kept when `nil`).
    public init(
        device: VulkanDevice, pipelines: KernelPipelines? = nil, config: KernelConfig? = nil,
        references: ReferenceMemo? = nil, check: String = ""
    ) {
        self.device = device
        self.pipelines = pipelines ?? KernelPipelines(device: device)
        self.config = config ?? KernelConfig(family: .texel, limits: device.limits)
        self.references = references.map { ($0, check) }
    }

    /// The CPU reference `compute` gives for `inputs` (every value it reads, `nil` for an input the check lacks):
    /// computed once per check and set of input bits while this runner shares a ``ReferenceMemo``, so the families
    /// that read the same values (every float32 family; both 16-bit ones) share one computation.
    public func reference(reading inputs: [[Float]?], _ compute: () -> [Float]) -> [Float] {
        guard let (memo, check) = references else { return compute() }
        let key = ReferenceMemo.Key(check: check, inputs: inputs)
        if let known = memo[key] { return known }
        let result = compute()
        memo[key] = result
        return result
    }

    /// `values` as the kernels see them: rounded to 16-bit floats on the fp16 data path, unchanged otherwise. A
    /// check gives its reference the values the kernel really reads, so that it measures the kernel, not the format.
    public func stored(_ values: [Float]) -> [Float] {
        config.dataPath == .fp16 ? values.map(Half.rounded) : values
    }

    /// A buffer that will hold `values` (room for whole vec4s of float32, so any view of it fits).
    public func input(_ values: [Float]) throws -> VulkanBuffer {
        let buffer = try VulkanBuffer(
            device: device, size: Grid.roundUp(max(values.count, 1), to: 4) * 4, label: "input")
        contents[ObjectIdentifier(buffer)] = (values, false)
        return buffer
    }

    /// A buffer for `count` outputs: NaN, then guard values.
    public func output(_ count: Int) throws -> VulkanBuffer {
        try inputOutput([Float](repeating: .nan, count: count))
    }

    /// A buffer the kernels update in place: `values`, then guard values; ``read(_:)`` gives what it holds after the
    /// run.
    public func inputOutput(_ values: [Float]) throws -> VulkanBuffer {
        let total = Grid.roundUp(values.count + Self.guardCount, to: 4)
        let buffer = try VulkanBuffer(device: device, size: total * 4, label: "output")
        contents[ObjectIdentifier(buffer)] = (values, true)
        return buffer
    }

    /// Adds an operation's steps; steps run in the order added, each seeing the writes of those before it. As the
    /// planner does, an operation whose texel views would pass the device's texel limit reads storage buffers instead,
    /// and texel steps read storage buffers where the runner's family does (the training kernels build texel steps).
    public func add(_ steps: [KernelStep<VulkanBuffer>]) {
        let limit = device.limits.maxTexelBufferElements
        self.steps += steps.fittingTexelViews(limit: limit, bytes: \.size)
            .reading(through: config.dataPath, limit: limit, bytes: \.size)
    }

    /// The embedded kernels the steps added so far run, in order.
    public var kernels: [String] { steps.map(\.launch.spirvName) }

    /// Bytes per value of `buffer` as the kernels bound to it use it.
    private func elementBytes(_ buffer: VulkanBuffer) -> Int {
        let uses = Set(
            steps.flatMap { step in
                step.bindings.filter { $0.resource === buffer }.map { $0.elementBytes(on: step.dataPath) }
            })
        precondition(uses.count <= 1, "a buffer bound both as float32 and as 16-bit values")
        return uses.first ?? 4
    }

    /// Writes every input's values and every output's poison and guards in the type its kernels use, records every
    /// step with the barriers its data dependencies need (``StepRecorder``), runs them, and waits.
    public func run() throws {
        let buffers = Dictionary(
            steps.flatMap(\.bindings).map { (ObjectIdentifier($0.resource), $0.resource) },
            uniquingKeysWith: { a, _ in a })
        for (id, buffer) in buffers {
            guard let (values, isOutput) = contents[id] else { continue }
            let padded = Grid.roundUp(values.count + (isOutput ? Self.guardCount : 0), to: 4)
            let filler = isOutput ? Self.guardValue : 0
            let all = values + [Float](repeating: filler, count: padded - values.count)
            if elementBytes(buffer) == 2 {
                try buffer.upload(all.map(Half.bits))
            } else {
                try buffer.upload(all)
            }
        }
        let recorder = try StepRecorder(steps, pipelines: pipelines) { BufferRegion($0) }
        try device.run { commands in
            try recorder.record(into: commands)
            commands.barrier(.computeWrite, before: .hostRead)
        }
    }

    /// The first `count` values of an output made by ``output(_:)``, after checking that its guard values survived.
    public func read(_ buffer: VulkanBuffer) throws -> [Float] {
        guard let (values, isOutput) = contents[ObjectIdentifier(buffer)], isOutput else {
            throw KernelCheckFailure("read() takes a buffer made by output() or inputOutput()")
        }
        let count = values.count
        let read: [Float] =
            elementBytes(buffer) == 2
            ? try buffer.download(UInt16.self, count: count + Self.guardCount).map(Half.float)
            : try buffer.download(Float.self, count: count + Self.guardCount)
        let guardValue = elementBytes(buffer) == 2 ? Half.rounded(Self.guardValue) : Self.guardValue
        if read.suffix(Self.guardCount).contains(where: { $0 != guardValue }) {
            throw KernelCheckFailure("a kernel wrote past the end of its output (\(count) values)")
        }
        return Array(read.prefix(count))
    }
}

/// A kernel that misbehaved in a way a tolerance cannot describe.
public struct KernelCheckFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// CPU references kept across ``KernelCheck`` runs, by check and by the exact bits of every input the reference reads.
/// Safe to share between threads.
public final class ReferenceMemo: Sendable {
    struct Key: Hashable {
        let check: String
        /// Each input's length, then a digest of its bit patterns (`nil` inputs count as length -1).
        let lengths: [Int]
        let digest: Int

        init(check: String, inputs: [[Float]?]) {
            self.check = check
            lengths = inputs.map { $0?.count ?? -1 }
            var hasher = Hasher()
            for input in inputs { input?.withUnsafeBytes { hasher.combine(bytes: $0) } }
            digest = hasher.finalize()
        }
    }
    private let results = Mutex<[Key: [Float]]>([:])

    public init() {}

    subscript(key: Key) -> [Float]? {
        get { results.withLock { $0[key] } }
        set { results.withLock { $0[key] = newValue } }
    }
}
