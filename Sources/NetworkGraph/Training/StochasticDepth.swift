import Foundation
import Kernels

/// Stochastic depth (timm's `DropPath`) over a graph's residual branches: in training, each image's branch of a
/// listed node is dropped with the node's rate, and kept ones are scaled by `1 / (1 - rate)`, so that the branch's
/// expectation is unchanged. The branch is everything the node adds to its residual (its operation and BatchNorm);
/// the residual and the activation after the add are not scaled.
///
/// ```swift
/// let depth = try StochasticDepth(graph: graph, rates: ["layer3.0.se": 0.1])
/// var random = SeededRandom(seed: 1)
/// let masks = depth.masks(batch: graph.batch, using: &random)   // ["layer3.0.se": [1.111, 0, 1.111, 1.111]]
/// ```
public struct StochasticDepth: Sendable, Equatable {
    /// One node's branch and the chance that it is dropped for an image.
    public struct Branch: Sendable, Equatable {
        /// The node's name: one whose epilogue adds a residual.
        public var node: String
        public var rate: Double

        public init(node: String, rate: Double) { (self.node, self.rate) = (node, rate) }
    }

    /// The branches in the graph's order (the order masks are drawn in).
    public private(set) var branches: [Branch]

    /// No stochastic depth.
    public static let none = StochasticDepth(checked: [])

    private init(checked branches: [Branch]) { self.branches = branches }

    /// The branches of `graph`'s nodes named in `rates`, with their drop rates; refuses a name that is not a node
    /// adding a residual, and a rate outside [0, 1). Nodes with rate 0 are left out.
    public init(graph: Graph, rates: [String: Double]) throws {
        for (node, rate) in rates {
            guard let found = graph.nodes.first(where: { $0.name == node }) else {
                throw ParameterError("Stochastic depth names \(node), which is not a node of the graph.")
            }
            guard found.op.epilogue.hasResidual else {
                throw ParameterError(
                    "Stochastic depth names \(node), which adds no residual: it has no branch to drop.")
            }
            guard (0..<1).contains(rate) else {
                throw ParameterError("The drop rate of \(node) must be in [0, 1); got \(rate).")
            }
        }
        branches = graph.nodes.compactMap { node in
            rates[node.name].flatMap { $0 > 0 ? Branch(node: node.name, rate: $0) : nil }
        }
    }

    /// The nodes whose branch is scaled.
    public var nodes: Set<String> { Set(branches.map(\.node)) }

    /// One step's scales, `[batch]` per branch's node: 0 where the image's branch is dropped (probability `rate`),
    /// else `1 / (1 - rate)`. Drawn branch by branch, image by image, from `generator`.
    public func masks(batch: Int, using generator: inout some RandomNumberGenerator) -> [String: [Double]] {
        var masks: [String: [Double]] = [:]
        for branch in branches {
            let keep = 1 - branch.rate
            masks[branch.node] = (0..<batch).map { _ in
                Double.random(in: 0..<1, using: &generator) < keep ? 1 / keep : 0
            }
        }
        return masks
    }

    /// Checks that `masks` holds `batch` finite scales for each branch and nothing else.
    public func check(_ masks: [String: [Double]], batch: Int) throws {
        guard Set(masks.keys) == nodes else {
            throw ParameterError(
                "The masks are for \(masks.keys.sorted().joined(separator: ", ")); stochastic depth needs one for each of "
                    + "\(nodes.sorted().joined(separator: ", ")).")
        }
        for (node, mask) in masks where mask.count != batch || !mask.allSatisfy({ $0.isFinite && $0 >= 0 }) {
            throw ParameterError("The mask of \(node) must hold \(batch) finite scales of at least 0; got \(mask).")
        }
    }
}
