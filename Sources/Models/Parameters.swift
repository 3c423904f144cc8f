import Foundation

/// A parameter or buffer of the PyTorch model, by its state-dict name.
public struct ParameterDeclaration: Hashable, Sendable, Codable {
    public let name: String
    /// PyTorch shape (`[]` for a scalar such as `num_batches_tracked`).
    public let shape: [Int]
    /// Whether it is a learned parameter (counted in the parameter count) or a buffer (BatchNorm statistics).
    public let trainable: Bool

    public var count: Int { shape.reduce(1, *) }
}

/// Where a model's weights come from: a checkpoint, or synthetic values.
public protocol ParameterSource {
    /// The values of the parameter `name` (a PyTorch state-dict name), which must have `shape`, in PyTorch's
    /// (row-major) order.
    func values(for name: String, shape: [Int]) throws -> [Float]
}

/// Deterministic synthetic weights, the same on every machine and reproducible outside Swift, for running and
/// testing the networks without a checkpoint. BatchNorm statistics are not the identity, so every fold is exercised.
///
/// For a parameter named `name` with `count` elements, let `h` be the 32-bit FNV-1a hash of the UTF-8 bytes of
/// `name` (offset basis 2166136261, prime 16777619), and for k = 0 ..< count, computed in double precision:
///
///     phase = Double(h % 6283) / 1000
///     freq  = 0.1 + Double((h >> 13) % 997) / 1000
///     u[k]  = sin(freq * k + phase)
///
/// The value (rounded to float32) is, by the name's suffix and the shape's rank:
///
/// | parameter | value |
/// |---|---|
/// | `running_mean` | 0.1 u |
/// | `running_var` | 1 + 0.5 u^2 |
/// | `weight`, rank 1 (BatchNorm) | 1 + 0.25 u |
/// | `weight`, rank >= 2 (convolution, linear) | u sqrt(3 / fanIn), fanIn = product of all dimensions but the first |
/// | `bias` | 0.1 u |
public struct SyntheticWeights: ParameterSource, Sendable {
    public init() {}

    public func values(for name: String, shape: [Int]) throws -> [Float] {
        let count = shape.reduce(1, *)
        let h = Self.fnv1a(name)
        let phase = Double(h % 6283) / 1000
        let frequency = 0.1 + Double((h >> 13) % 997) / 1000
        let (multiplier, offset, squared): (Double, Double, Bool)
        if name.hasSuffix("running_mean") {
            (multiplier, offset, squared) = (0.1, 0, false)
        } else if name.hasSuffix("running_var") {
            (multiplier, offset, squared) = (0.5, 1, true)
        } else if name.hasSuffix("weight") && shape.count == 1 {
            (multiplier, offset, squared) = (0.25, 1, false)
        } else if name.hasSuffix("weight") {
            let fanIn = shape.dropFirst().reduce(1, *)
            (multiplier, offset, squared) = ((3 / Double(max(fanIn, 1))).squareRoot(), 0, false)
        } else {
            (multiplier, offset, squared) = (0.1, 0, false)
        }
        return (0..<count).map { k in
            let u = sin(frequency * Double(k) + phase)
            return Float(offset + multiplier * (squared ? u * u : u))
        }
    }

    /// 32-bit FNV-1a of the UTF-8 bytes.
    public static func fnv1a(_ text: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash
    }
}

/// Zeros of the right shape: for building a graph only to count or plan it.
public struct ZeroWeights: ParameterSource, Sendable {
    public init() {}
    public func values(for name: String, shape: [Int]) throws -> [Float] { [Float](repeating: 0, count: shape.reduce(1, *)) }
}
