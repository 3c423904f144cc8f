import Foundation
import VulkanCompute

/// The one place that says how close a kernel's output must be to its CPU reference.
///
/// The references accumulate in Double; a float32 kernel differs by rounding only, so its relative L2 error stays far
/// below this bound. The 16-bit families store every input, weight and output as a half (11 significant bits: a
/// rounding error of up to 2^-12 relative, 2.4e-4, on each), so their bound is set by that, not by the arithmetic.
public enum Tolerance {
    /// Relative L2 error allowed for float32 kernels.
    public static let float32RelativeL2 = 1e-5
    /// Relative L2 error allowed for kernels with 16-bit storage (float32 arithmetic). The checks give the reference
    /// the half-rounded inputs and weights the kernel reads, so what remains is the rounding of outputs and of
    /// intermediate values kept in 16 bits (squeeze-excite's means and gates): measured at most 3.0e-4 (median 2.1e-4)
    /// over BossNet-T's layer shapes on lavapipe (`bossnet validate --kernels fp16`).
    public static let float16StorageRelativeL2 = 1e-3
    /// Relative L2 error allowed with 16-bit products inside each 16-long slice of a GEMM's reduction as well:
    /// measured at most 6.5e-4 (median 5.1e-4).
    public static let float16ArithmeticRelativeL2 = 2e-3

    /// Relative L2 error allowed between a whole network's logits on the device and on the CPU reference: 1e-4 for
    /// the float32 families; for the 16-bit ones, where every activation is rounded to 11 significant bits at each
    /// of some 120 layers, 2e-2 (measured 2e-3 to 6e-3 for T0 and T1 at 64 px on lavapipe).
    public static func networkRelativeL2(for kernels: KernelChoice) -> Double {
        switch kernels {
        case .family(.fp16), .family(.fp16math): 2e-2
        case .automatic, .family: 1e-4
        }
    }

    /// The bound for kernels of `family`.
    public static func relativeL2(for family: KernelFamily) -> Double {
        switch family {
        case .texel, .direct, .storage, .tiled: float32RelativeL2
        case .fp16: float16StorageRelativeL2
        case .fp16math: float16ArithmeticRelativeL2
        }
    }
}

/// How far a kernel's output is from its reference.
public struct Comparison: CustomStringConvertible, Sendable {
    /// ||actual - expected|| / ||expected|| (the absolute L2 error when `expected` is all zeros).
    public let relativeL2: Double
    /// The largest |actual - expected| over finite outputs.
    public let maxAbsolute: Double
    /// The first few indices where the output is NaN or infinite (unwritten outputs stay NaN).
    public let nonFinite: [Int]
    public let countMismatch: Bool
    /// The relative L2 error allowed (``Tolerance``).
    public var tolerance = Tolerance.float32RelativeL2
    /// The embedded kernels that ran, in order.
    public var kernels: [String] = []
    /// Which of a check's outputs this is, where it has several (``worst(_:)``).
    public var output: String?

    public init(_ actual: [Float], _ expected: [Float]) {
        countMismatch = actual.count != expected.count
        var difference = 0.0, norm = 0.0, worst = 0.0
        var bad: [Int] = []
        for (index, (a, e)) in zip(actual, expected).enumerated() {
            guard a.isFinite == e.isFinite else {
                if bad.count < 8 { bad.append(index) }
                continue
            }
            guard a.isFinite else { continue }
            let d = Double(a) - Double(e)
            difference += d * d
            norm += Double(e) * Double(e)
            worst = max(worst, abs(d))
        }
        nonFinite = bad
        maxAbsolute = worst
        relativeL2 = norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot()
    }

    /// Same length, no unexpected NaN or infinity, relative L2 error within ``tolerance``.
    public var passes: Bool { !countMismatch && nonFinite.isEmpty && relativeL2 <= tolerance }

    /// A check with several outputs (a backward's input, weight and bias gradients), each compared with its own
    /// reference so that a small one is not hidden by a large one: the comparison furthest from passing, named.
    public static func worst(_ outputs: KeyValuePairs<String, Comparison>) -> Comparison {
        let named = outputs.map { name, comparison in
            var comparison = comparison
            comparison.output = name
            return comparison
        }
        let broken = named.first { $0.countMismatch || !$0.nonFinite.isEmpty }
        return broken ?? named.max { $0.relativeL2 < $1.relativeL2 } ?? Comparison([], [])
    }

    public var description: String {
        (output.map { "\($0): " } ?? "") + "relative L2 error \(relativeL2), max abs error \(maxAbsolute)"
            + (nonFinite.isEmpty ? "" : ", non-finite at \(nonFinite)") + (countMismatch ? ", lengths differ" : "")
    }
}

/// A small, fast, seedable generator (SplitMix64): a failing check prints its seed, and the same seed reproduces it.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed that differs on every call, for fresh inputs on every run.
    public static func freshSeed() -> UInt64 { UInt64.random(in: 0...UInt64.max) }

    /// A standard normal draw (Box-Muller, from two uniform draws).
    public mutating func normal() -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let v = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }

    /// `count` floats uniform in `range`.
    public mutating func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &self) }
    }

    /// Weights for a layer that sums `fanIn` products, scaled so outputs stay of order one.
    public mutating func weights(_ count: Int, fanIn: Int) -> [Float] {
        let bound = Float(1 / Double(max(fanIn, 1)).squareRoot()) * 1.7
        return floats(count, in: -bound...bound)
    }
}

/// One kernel, at one shape, compared with its CPU reference on random inputs.
public struct KernelCheck: Sendable {
    /// The operation's name (the kernel's name, as in Shaders/).
    public let op: String
    /// The shape, for people: "n2 c64 56x56 -> 256".
    public let shape: String
    let body: @Sendable (KernelRunner, inout SeededRandom) throws -> Comparison

    public init(
        op: String, shape: String, _ body: @escaping @Sendable (KernelRunner, inout SeededRandom) throws -> Comparison
    ) {
        self.op = op
        self.shape = shape
        self.body = body
    }

    /// Runs the kernel on `device` (as `family` builds it, within the device's limits) and its reference on the CPU,
    /// with inputs drawn from `seed`; the comparison carries the family's tolerance. With `references`, a reference
    /// already computed for the same inputs (another family's run) is reused.
    public func run(
        on device: VulkanDevice, pipelines: KernelPipelines? = nil, seed: UInt64, family: KernelFamily = .texel,
        references: ReferenceMemo? = nil
    ) throws -> Comparison {
        var random = SeededRandom(seed: seed)
        let config = KernelConfig(family: family, limits: device.limits)
        let runner = KernelRunner(
            device: device, pipelines: pipelines, config: config, references: references, check: "\(op) \(shape)")
        var result = try body(runner, &random)
        result.tolerance = Tolerance.relativeL2(for: family)
        result.kernels = runner.kernels
        return result
    }
}

// The pieces several operations' checks share (each op's own check is in its file, beside its launch and reference).

/// Random scale and shift of order one, as a folded BatchNorm gives.
func randomAffine(_ channels: Int, _ random: inout SeededRandom, _ runner: KernelRunner) -> (
    scale: [Float], shift: [Float]
) {
    (runner.stored(random.floats(channels, in: 0.5...1.5)), runner.stored(random.floats(channels, in: -0.5...0.5)))
}

/// The check the three convolution kernels share: they differ in shapes, weight packing, steps and reference.
func convolutionCheck(
    op: String, shape: String, inputCount: Int, outputCount: Int, channels: Int, weightCount: Int, fanIn: Int,
    epilogue: Epilogue, pack: @escaping @Sendable (_ weights: [Float], _ config: KernelConfig) -> [Float],
    scratchCounts: @escaping @Sendable (KernelConfig) -> [Int] = { _ in [] },
    steps:
        @escaping @Sendable (
            _ input: VulkanBuffer, _ weights: VulkanBuffer, _ affine: VulkanBuffer, _ residual: VulkanBuffer?,
            _ output: VulkanBuffer, _ scratch: [VulkanBuffer], _ config: KernelConfig
        ) -> [KernelStep<VulkanBuffer>],
    reference:
        @escaping @Sendable (
            _ input: [Float], _ weights: [Float], _ scale: [Float], _ shift: [Float], _ residual: [Float]?
        ) -> [Float]
) -> KernelCheck {
    KernelCheck(op: op, shape: shape) { runner, random in
        let input = runner.stored(random.floats(inputCount))
        let weights = runner.stored(random.weights(weightCount, fanIn: fanIn))
        let (scale, shift) = randomAffine(channels, &random, runner)
        let residual = epilogue.hasResidual ? runner.stored(random.floats(outputCount)) : nil
        let y = try runner.output(outputCount)
        let scratch = try scratchCounts(runner.config).map(runner.output)
        runner.add(
            steps(
                try runner.input(input), try runner.input(pack(weights, runner.config)),
                try runner.input(Epilogue.packAffine(scale: scale, shift: shift)), try residual.map(runner.input), y,
                scratch, runner.config))
        try runner.run()
        let expected = runner.reference(reading: [input, weights, scale, shift, residual]) {
            reference(input, weights, scale, shift, residual)
        }
        return Comparison(try runner.read(y), expected)
    }
}

/// The check the pooling kernels share: one input of random values in `range`, one output.
func singleInputCheck(
    op: String, shape: String, inputCount: Int, outputCount: Int, range: ClosedRange<Float>,
    steps:
        @escaping @Sendable (_ input: VulkanBuffer, _ output: VulkanBuffer, _ config: KernelConfig) ->
        [KernelStep<VulkanBuffer>],
    reference: @escaping @Sendable (_ input: [Float]) -> [Float]
) -> KernelCheck {
    KernelCheck(op: op, shape: shape) { runner, random in
        let input = runner.stored(random.floats(inputCount, in: range))
        let y = try runner.output(outputCount)
        runner.add(steps(try runner.input(input), y, runner.config))
        try runner.run()
        return Comparison(try runner.read(y), runner.reference(reading: [input]) { reference(input) })
    }
}
