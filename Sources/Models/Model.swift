import Foundation
import Kernels
import NetworkGraph

/// A network of the BossNet-T family or the MBConv space, ready to be built into a ``Graph`` for any batch size and
/// input size.
///
/// ```swift
/// let model = try Model(name: "bossnet_T0")
/// let graph = try model.graph(batch: 8, inputSize: 224, weights: SyntheticWeights(calibratedFor: model))
/// let session = try InferenceSession(graph: graph, device: device)
/// ```
public struct Model: Sendable {
    public let architecture: Architecture
    /// The registry name, or the architecture's text form.
    public let name: String

    public init(_ architecture: Architecture, name: String? = nil) {
        self.architecture = architecture
        self.name = name ?? Architecture.named.first { $0.value == architecture }?.key ?? architecture.text
    }

    /// A published model by its registry name (bossnet_T0, bossnet_T0_nose, bossnet_T1).
    public init(name: String) throws {
        self.init(try Architecture.named(name), name: name)
    }

    /// The smallest input side accepted.
    public static let minimumInputSize = 32
    /// The largest input side accepted (stage-1 attention at 1024 already has 65536 tokens).
    public static let maximumInputSize = 1024

    /// Builds the graph for `batch` images of `inputSize` x `inputSize` pixels, with activations and residual adds
    /// fused, and its parameters' values from `weights` (each BatchNorm kept whole; inference folds it when it lowers
    /// the graph).
    public func graph(batch: Int, inputSize: Int, weights: any ParameterSource) throws -> Graph {
        var graph = try graph(batch: batch, inputSize: inputSize)
        graph.parameters = try ParameterStore(graph.declarations, source: weights)
        return graph
    }

    /// Builds the graph for shapes only: every operation and parameter declaration, no values (for counting, listing
    /// and planning).
    public func graph(batch: Int, inputSize: Int) throws -> Graph {
        guard batch >= 1 else { throw ArchitectureError("The batch size must be at least 1; got \(batch).") }
        guard inputSize >= Self.minimumInputSize && inputSize <= Self.maximumInputSize else {
            throw ArchitectureError(
                "The input size must be between \(Self.minimumInputSize) and \(Self.maximumInputSize) pixels; got \(inputSize)."
            )
        }
        return try architecture.family.graph(batch: batch, inputSize: inputSize)
    }

    /// Stochastic depth over `graph` (this model's) at `--drop-path rate`, by the family's rule
    /// (``ModelFamily/dropPathRates(_:)``); ``StochasticDepth/none`` at rate 0.
    public func stochasticDepth(rate: Double, graph: Graph) throws -> StochasticDepth {
        guard rate.isFinite && (0..<1).contains(rate) else {
            throw ArchitectureError("The drop-path rate must be in [0, 1); got \(rate).")
        }
        return try StochasticDepth(graph: graph, rates: architecture.family.dropPathRates(rate))
    }

    /// Every state-dict entry of the PyTorch model, in module order (BatchNorm statistics and
    /// `num_batches_tracked` included).
    public func stateDictEntries() throws -> [ParameterDeclaration] {
        try graph(batch: 1, inputSize: Self.minimumInputSize).declarations
    }

    /// The number of learned parameters (what PyTorch's `sum(p.numel() for p in model.parameters())` gives).
    public func parameterCount() throws -> Int {
        try stateDictEntries().filter(\.trainable).reduce(0) { $0 + $1.count }
    }
}
