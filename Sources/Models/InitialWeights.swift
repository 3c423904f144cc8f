import Foundation
import Kernels
import NetworkGraph

/// The weights a model starts training from, drawn as the authors' model initialises itself
/// (retraining_hytra/boss_models.py, then PyTorch's layer defaults for what it leaves alone):
///
/// | parameter | value |
/// |---|---|
/// | convolution weight `[out, in / groups, kh, kw]` | normal, mean 0, std sqrt(2 / (out kh kw)) (`kaiming_normal_`, fan_out, relu) |
/// | convolution or linear bias | uniform in +-1 / sqrt(fan_in), fan_in = the weight's size over its first dimension |
/// | linear weight `[out, in]` | uniform in +-1 / sqrt(in) (`kaiming_uniform_` with a = sqrt(5)) |
/// | BatchNorm weight | 1; 0 for each residual branch's last (``ModelFamily/zeroInitializedBatchNorms``) |
/// | BatchNorm bias, running mean, `num_batches_tracked` | 0 |
/// | BatchNorm running variance | 1 |
///
/// The draws come from a generator seeded by `seed` and the parameter's name, so each parameter's values do not
/// depend on which others exist. They are not PyTorch's numbers (its generator is its own); the distributions are.
public struct InitialWeights: ParameterSource, Sendable {
    private let shapes: [String: [Int]]
    private let zeroed: Set<String>
    public let seed: UInt64

    /// The initial weights of `model`; throws for a family whose authors publish no training code.
    public init(model: Model, seed: UInt64) throws {
        guard let zeroed = model.architecture.family.zeroInitializedBatchNorms else {
            throw ArchitectureError(
                "\(model.name) has no initialisation to train from scratch with (the authors publish no training code for its family); start from --weights."
            )
        }
        self.zeroed = zeroed
        self.seed = seed
        shapes = Dictionary(try model.stateDictEntries().map { ($0.name, $0.shape) }) { first, _ in first }
    }

    public func values(for name: String, shape: [Int]) throws -> [Float] {
        let count = shape.reduce(1, *)
        let module = name.split(separator: ".").dropLast().joined(separator: ".")
        let field = name.split(separator: ".").last.map(String.init) ?? name
        if shapes["\(module).running_mean"] != nil {
            switch field {
            case "running_var": return [Float](repeating: 1, count: count)
            case "weight":
                let last = zeroed.contains { module == $0 || module.hasSuffix(".\($0)") }
                return [Float](repeating: last ? 0 : 1, count: count)
            default: return [Float](repeating: 0, count: count)
            }
        }
        var random = SeededRandom(seed: seed ^ (UInt64(SyntheticWeights.fnv1a(name)) << 32))
        switch (field, shape.count) {
        case ("weight", 4):
            let std = (2 / Double(shape[0] * shape[2] * shape[3])).squareRoot()
            return (0..<count).map { _ in Float(std * random.normal()) }
        case ("weight", _):
            return Self.uniform(count, fanIn: shape.dropFirst().reduce(1, *), using: &random)
        case ("bias", _):
            let fanIn = shapes["\(module).weight"]?.dropFirst().reduce(1, *) ?? 1
            return Self.uniform(count, fanIn: fanIn, using: &random)
        default:
            throw ParameterError("\(name) \(shape): no initialisation rule for it.")
        }
    }

    private static func uniform(_ count: Int, fanIn: Int, using random: inout SeededRandom) -> [Float] {
        let bound = 1 / Double(max(fanIn, 1)).squareRoot()
        return (0..<count).map { _ in Float(Double.random(in: -bound..<bound, using: &random)) }
    }
}
