import Foundation

/// The activation functions the kernels fuse into their output; raw values match `ACT_*` in Shaders/common.glsl.
public enum Activation: UInt32, Sendable, CaseIterable, Codable {
    case identity = 0
    case relu = 1
    case silu = 2
    case sigmoid = 3

    /// The reference definition, in Double.
    @inlinable
    public func apply(_ x: Double) -> Double {
        switch self {
        case .identity: x
        case .relu: max(x, 0)
        case .silu: x / (1 + exp(-x))
        case .sigmoid: 1 / (1 + exp(-x))
        }
    }

    /// d apply(x) / dx, in Double (ReLU's at 0 is 0, as PyTorch's).
    public func derivative(_ x: Double) -> Double {
        let sigmoid = 1 / (1 + exp(-x))
        return switch self {
        case .identity: 1
        case .relu: x > 0 ? 1 : 0
        case .silu: sigmoid * (1 + x * (1 - sigmoid))
        case .sigmoid: sigmoid * (1 - sigmoid)
        }
    }
}
