import Foundation

/// The median of a set of measurements, with their minimum and maximum.
public struct Statistic: Sendable, Codable, Equatable {
    public let median: Double
    public let min: Double
    public let max: Double

    /// Summarises `samples` (at least one).
    public init(_ samples: [Double]) {
        precondition(!samples.isEmpty, "a statistic needs at least one sample")
        let sorted = samples.sorted()
        let middle = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        min = sorted[0]
        max = sorted[sorted.count - 1]
    }

    init(median: Double, min: Double, max: Double) {
        self.median = median
        self.min = min
        self.max = max
    }

    /// Each figure transformed by `f`; when `f` decreases (as rates of times do), min and max swap.
    public func map(_ f: (Double) -> Double) -> Statistic {
        let (a, b) = (f(min), f(max))
        return Statistic(median: f(median), min: Swift.min(a, b), max: Swift.max(a, b))
    }
}

/// A figure the authors published, beside which this machine's measurement is shown, never in its place.
public struct PublishedFigures: Sendable, Codable, Equatable {
    /// ImageNet top-1 accuracy, percent.
    public let top1: Double
    /// The README's steptime in milliseconds.
    public let steptime_ms: Double
    /// How that steptime was measured, as far as is known.
    public let steptime_protocol: String

    public static let steptimeProtocol =
        "authors' figure; most likely BoTNet's protocol (training step, batch 32, TPU-v3): not comparable"

    public init(top1: Double, steptimeMilliseconds: Double) {
        self.top1 = top1
        steptime_ms = steptimeMilliseconds
        steptime_protocol = Self.steptimeProtocol
    }
}
