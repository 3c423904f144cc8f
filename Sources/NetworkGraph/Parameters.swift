import Foundation
import Kernels

/// A parameter or buffer of the PyTorch model, by its state-dict name.
public struct ParameterDeclaration: Hashable, Sendable, Codable {
    public let name: String
    /// PyTorch shape (`[]` for a scalar such as `num_batches_tracked`).
    public let shape: [Int]
    /// Whether it is a learned parameter (counted in the parameter count) or a buffer (BatchNorm statistics).
    public let trainable: Bool

    public init(name: String, shape: [Int], trainable: Bool) {
        self.name = name
        self.shape = shape
        self.trainable = trainable
    }

    public var count: Int { shape.reduce(1, *) }
}

/// Where a model's weights come from: a checkpoint, or synthetic values.
public protocol ParameterSource {
    /// The values of the parameter `name` (a PyTorch state-dict name), which must have `shape`, in PyTorch's
    /// (row-major) order.
    func values(for name: String, shape: [Int]) throws -> [Float]
}

/// A BatchNorm in inference or training form, by its module name: its four arrays are the state-dict entries
/// `<name>.weight` (gamma), `.bias` (beta), `.running_mean` and `.running_var`.
public struct BatchNorm: Sendable, Hashable {
    public let name: String
    /// PyTorch's default epsilon.
    public static let epsilon = 1e-5

    public init(_ name: String) { self.name = name }

    public var gamma: String { "\(name).weight" }
    public var beta: String { "\(name).bias" }
    public var runningMean: String { "\(name).running_mean" }
    public var runningVariance: String { "\(name).running_var" }
    /// The arrays, in state-dict order.
    public var arrays: [String] { [gamma, beta, runningMean, runningVariance] }
}

/// The parameters of a convolution or linear layer, by name: its weight (OIHW; `[C][1][k][k]` depthwise; `[M][K]`
/// linear), its bias if it has one, and the BatchNorm after it, if any.
public struct ConvWeights: Sendable, Hashable {
    public let weight: String
    public let bias: String?
    public let norm: BatchNorm?

    public init(weight: String, bias: String? = nil, norm: BatchNorm? = nil) {
        self.weight = weight
        self.bias = bias
        self.norm = norm
    }

    /// Every array the layer reads.
    public var arrays: [String] { [weight] + (bias.map { [$0] } ?? []) + (norm?.arrays ?? []) }
}

/// The parameters of squeeze-excite, by the module names of its two 1x1 convolutions (each with weight and bias).
public struct SqueezeExciteWeights: Sendable, Hashable {
    public let reduce: String
    public let expand: String

    public init(reduce: String, expand: String) {
        self.reduce = reduce
        self.expand = expand
    }

    public var arrays: [String] { ["\(reduce).weight", "\(reduce).bias", "\(expand).weight", "\(expand).bias"] }
}

/// Parameter values by state-dict name: what a graph's operations read through their names, apart from the graph so
/// that they can change (a checkpoint loaded, a training step taken) while the graph stays.
public struct ParameterStore: Sendable {
    private var values: [String: [Float]] = [:]

    /// An empty store.
    public init() {}

    /// The values `source` gives for every declaration, checked against its shape.
    public init(_ declarations: [ParameterDeclaration], source: any ParameterSource) throws {
        for declaration in declarations where !declaration.name.hasSuffix("num_batches_tracked") {
            try set(declaration.name, source.values(for: declaration.name, shape: declaration.shape), declaration.count)
        }
    }

    /// The values of `name`, if the store has them.
    public subscript(name: String) -> [Float]? { values[name] }

    /// Whether the store holds no values at all (a graph built for shapes only).
    public var isEmpty: Bool { values.isEmpty }

    /// Stores `newValues` under `name`, which must hold `count` values.
    public mutating func set(_ name: String, _ newValues: [Float], _ count: Int) throws {
        guard newValues.count == count else {
            throw ParameterError("Parameter \(name) has \(newValues.count) values; the model needs \(count).")
        }
        values[name] = newValues
    }

    /// The values of `name`; a graph run without its values is a programming error.
    func required(_ name: String) -> [Float] {
        guard let found = values[name] else {
            preconditionFailure("no values for parameter \(name): build the graph with weights")
        }
        return found
    }
}

/// Parameter values that do not fit their declaration.
public struct ParameterError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Weights of a convolution as the kernels take them: OIHW (or `[C][k][k]` depthwise, `[M][K]` pointwise) weights, and
/// the per-output-channel scale and shift of the folded BatchNorm and bias (``ParameterStore/folded(_:channels:)``).
public struct ConvParameters: Sendable {
    public var weights: [Float]
    public var scale: [Float]
    public var shift: [Float]

    public init(weights: [Float], scale: [Float], shift: [Float]) {
        self.weights = weights
        self.scale = scale
        self.shift = shift
    }
}

/// Weights of squeeze-excite as the kernels take them: fc1 `[R][C]` with bias, fc2 `[C][R]` with bias.
public struct SqueezeExciteParameters: Sendable {
    public var w1: [Float], b1: [Float], w2: [Float], b2: [Float]

    public init(w1: [Float], b1: [Float], w2: [Float], b2: [Float]) {
        self.w1 = w1
        self.b1 = b1
        self.w2 = w2
        self.b2 = b2
    }
}

/// A per-channel scale and shift (a folded BatchNorm).
public struct AffineParameters: Sendable {
    public var scale: [Float], shift: [Float]

    public init(scale: [Float], shift: [Float]) {
        self.scale = scale
        self.shift = shift
    }
}

// Folding: inference runs each BatchNorm as the per-channel scale and shift of the operation before it.
extension ParameterStore {
    /// The BatchNorm `norm` as a per-channel scale and shift: scale = gamma / sqrt(var + eps), shift = beta -
    /// mean * scale, in Double, rounded to float32.
    public func folded(_ norm: BatchNorm, channels: Int) -> AffineParameters {
        let gamma = required(norm.gamma), beta = required(norm.beta)
        let mean = required(norm.runningMean), variance = required(norm.runningVariance)
        var scale = [Float](repeating: 0, count: channels), shift = scale
        for c in 0..<channels {
            let s = Double(gamma[c]) / (Double(variance[c]) + BatchNorm.epsilon).squareRoot()
            scale[c] = Float(s)
            shift[c] = Float(Double(beta[c]) - Double(mean[c]) * s)
        }
        return AffineParameters(scale: scale, shift: shift)
    }

    /// A layer's weights with its bias and BatchNorm folded into one per-channel scale and shift: scale 1 and shift
    /// the bias without a BatchNorm; the BatchNorm's scale, and its shift plus the bias times that scale, with one.
    public func folded(_ weights: ConvWeights, channels: Int) -> ConvParameters {
        let bias = weights.bias.map(required) ?? [Float](repeating: 0, count: channels)
        guard let norm = weights.norm else {
            return ConvParameters(
                weights: required(weights.weight), scale: [Float](repeating: 1, count: channels), shift: bias)
        }
        let bn = folded(norm, channels: channels)
        let shift = (0..<channels).map { Float(Double(bias[$0]) * Double(bn.scale[$0]) + Double(bn.shift[$0])) }
        return ConvParameters(weights: required(weights.weight), scale: bn.scale, shift: shift)
    }

    /// Squeeze-excite's two layers as the kernels take them: fc1 `[R][C]` with bias, fc2 `[C][R]` with bias.
    public func squeezeExcite(_ weights: SqueezeExciteWeights) -> SqueezeExciteParameters {
        SqueezeExciteParameters(
            w1: required("\(weights.reduce).weight"), b1: required("\(weights.reduce).bias"),
            w2: required("\(weights.expand).weight"), b2: required("\(weights.expand).bias"))
    }

    /// Attention's BatchNorm as a scale and shift (scale 1, shift 0 without one).
    public func attentionAffine(_ norm: BatchNorm?, channels: Int) -> AffineParameters {
        norm.map { folded($0, channels: channels) }
            ?? AffineParameters(
                scale: [Float](repeating: 1, count: channels), shift: [Float](repeating: 0, count: channels))
    }
}
