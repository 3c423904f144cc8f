import Foundation
import NetworkGraph

/// A family of networks: everything the engine knows of one lives in its type, and the families are registered in
/// one place, ``Architecture/families``. A new family is its type (conforming here), its build, and one line there.
public protocol ModelFamily: Sendable {
    /// The prefix of its text syntax: `hytra` for `hytra:1-1-11101-000100000`.
    static var prefix: String { get }
    /// Reads the text after `<prefix>:`.
    static func parse(_ text: String) throws -> Self
    /// The published models of the family, by the authors' registry names.
    static var published: [String: Self] { get }
    /// The text after `<prefix>:` that ``parse(_:)`` reads back.
    var text: String { get }
    /// The classifier's outputs (1000 for ImageNet).
    var classes: Int { get set }
    /// The network for `batch` images of `inputSize` pixels: operations with their shapes, and every state-dict entry
    /// declared by name in the model's order; no values.
    func graph(batch: Int, inputSize: Int) throws -> Graph
    /// The stage a module or parameter belongs to (by its state-dict name), for counts per stage: `stem`, the
    /// family's stage names, `head`.
    func stage(of name: String) -> String
    /// Gains of ``SyntheticWeights`` where the family's residual branches and attention need them.
    var syntheticGains: SyntheticGains { get }
    /// Stochastic depth's drop rate of each residual branch when training with `--drop-path rate`, by the name of the
    /// node that adds the branch to its residual (see ``StochasticDepth``); empty at rate 0. Throws where the family
    /// has no such rule.
    func dropPathRates(_ rate: Double) throws -> [String: Double]
    /// The BatchNorms the authors' model initialises to zero gamma (each residual branch's last, timm's
    /// `zero_init_last_bn`), by the last part of their module name; nil where the authors publish no training code
    /// for the family, so it has no initialisation to start from (``InitialWeights``).
    var zeroInitializedBatchNorms: Set<String>? { get }
}

/// Gains that make synthetic weights behave like trained ones in a family (see ``SyntheticWeights``): by the suffix of
/// a parameter's name.
public struct SyntheticGains: Sendable, Equatable {
    /// The BatchNorm gain f of a `<suffix>.weight` of rank 1 (a residual branch's last BatchNorm): 1 elsewhere.
    public var batchNorm: [String: Double]
    /// The gain g of a `<suffix>.weight` of rank 2 or more: 1 for other rank-2 weights, 2 elsewhere.
    public var weight: [String: Double]

    public init(batchNorm: [String: Double] = [:], weight: [String: Double] = [:]) {
        self.batchNorm = batchNorm
        self.weight = weight
    }

    /// The gain for `name` from `table`, by the longest matching `<suffix>.weight`.
    func gain(_ name: String, in table: [String: Double]) -> Double? {
        table.filter { name.hasSuffix("\($0.key).weight") }.max { $0.key.count < $1.key.count }?.value
    }
}
