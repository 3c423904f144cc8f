import Foundation

/// The one place that says how close a kernel's output must be to the CPU reference.
///
/// The reference accumulates in Double; a float32 kernel differs by rounding only, so its relative L2 error stays
/// far below 1e-5. Half-precision kernels, when they come, get their own, documented bound here.
public enum Tolerance {
    /// Relative L2 error allowed for float32 kernels.
    public static let float32RelativeL2 = 1e-5
}

/// How far `actual` is from `expected`.
public struct Comparison: CustomStringConvertible {
    /// ||actual - expected|| / ||expected|| (the absolute L2 error when `expected` is all zeros).
    public let relativeL2: Double
    /// The largest |actual - expected|.
    public let maxAbsolute: Double
    /// Indices where `actual` is NaN or infinite (the first few).
    public let nonFinite: [Int]
    public let countMismatch: Bool

    public init(_ actual: [Float], _ expected: [Float]) {
        countMismatch = actual.count != expected.count
        var difference = 0.0, norm = 0.0, worst = 0.0
        var bad: [Int] = []
        for (index, (a, e)) in zip(actual, expected).enumerated() {
            if !a.isFinite {
                if bad.count < 8 { bad.append(index) }
                continue
            }
            let d = Double(a) - Double(e)
            difference += d * d
            norm += Double(e) * Double(e)
            worst = max(worst, abs(d))
        }
        nonFinite = bad
        maxAbsolute = worst
        relativeL2 = norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot()
    }

    /// Whether the output passes at float32 precision: same length, no NaN or infinity, relative L2 error in bound.
    public var passesFloat32: Bool {
        !countMismatch && nonFinite.isEmpty && relativeL2 <= Tolerance.float32RelativeL2
    }

    public var description: String {
        "relative L2 error \(relativeL2), max abs error \(maxAbsolute)"
            + (nonFinite.isEmpty ? "" : ", non-finite at \(nonFinite)")
            + (countMismatch ? ", lengths differ" : "")
    }
}

/// A small, fast, seedable generator (SplitMix64), so a failing test can print its seed and be rerun exactly.
public struct SeededGenerator: RandomNumberGenerator {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A fresh seed for each test run.
    public static func freshSeed() -> UInt64 { UInt64.random(in: 0...UInt64.max) }

    /// `count` floats uniform in `range`.
    public mutating func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &self) }
    }
}

/// The bits of a quiet NaN, written over outputs before a dispatch so any element a kernel fails to write shows up.
public let poisonBits: UInt32 = 0x7FC0_0000
