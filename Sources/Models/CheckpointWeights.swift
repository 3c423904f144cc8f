import Checkpoint
import Foundation
import NetworkGraph

/// A checkpoint bound to a model: every parameter the model declares must be in the checkpoint with the model's
/// shape, and the checkpoint must hold nothing else (`num_batches_tracked` aside, which inference ignores).
public struct CheckpointWeights: ParameterSource, Sendable {
    public let state: StateDict
    /// The SHA-256 of the values bound, which identifies these weights in reports and predictions files.
    public let digest: WeightsDigest

    /// Binds `state` to `model`, or throws a ``BindingError`` listing every missing, unexpected and misshapen entry.
    /// It does not look at the model the file names (see ``bind(_:requested:allowOtherModel:)``).
    public init(state: StateDict, model: Model) throws {
        let declared = try model.boundEntries()
        let expected = Dictionary(uniqueKeysWithValues: declared.map { ($0.name, $0.shape) })
        let present = state.tensors.filter { !$0.name.hasSuffix("num_batches_tracked") }
        let missing = declared.filter { state[$0.name] == nil }.map { "\($0.name) \($0.shape)" }
        let unexpected = present.filter { expected[$0.name] == nil }.map { "\($0.name) \($0.shape)" }
        let misshapen = present.compactMap { tensor -> String? in
            guard let shape = expected[tensor.name], shape != tensor.shape else { return nil }
            return "\(tensor.name): checkpoint \(tensor.shape), model \(shape)"
        }
        if !missing.isEmpty || !unexpected.isEmpty || !misshapen.isEmpty {
            throw BindingError(model: model.name, missing: missing, unexpected: unexpected, misshapen: misshapen)
        }
        self.state = state
        digest = try WeightsDigest(declared.compactMap { state[$0.name] })
    }

    public func values(for name: String, shape: [Int]) throws -> [Float] {
        guard let tensor = state[name], tensor.shape == shape else {
            throw BindingError(model: "?", missing: ["\(name) \(shape)"], unexpected: [], misshapen: [])
        }
        return tensor.values
    }
}

/// A checkpoint that does not fit the model.
public struct BindingError: Error, CustomStringConvertible {
    public let model: String
    public let missing: [String]
    public let unexpected: [String]
    public let misshapen: [String]

    public var description: String {
        func list(_ title: String, _ items: [String]) -> String? {
            guard !items.isEmpty else { return nil }
            let shown = items.prefix(20).map { "  \($0)" }.joined(separator: "\n")
            return "\(title) (\(items.count)):\n\(shown)"
                + (items.count > 20 ? "\n  ... and \(items.count - 20) more" : "")
        }
        let parts = [
            list("missing from the checkpoint", missing), list("in the checkpoint but not in the model", unexpected),
            list("wrong shape", misshapen),
        ].compactMap { $0 }
        return "The checkpoint does not fit model \(model):\n" + parts.joined(separator: "\n")
            + "\nIs it a checkpoint of another model? Choose it with --model or --arch."
    }
}

extension Model {
    /// The state-dict entries a checkpoint must hold for this model (`num_batches_tracked` aside).
    func boundEntries() throws -> [ParameterDeclaration] {
        try stateDictEntries().filter { !$0.name.hasSuffix("num_batches_tracked") }
    }
}

extension StateDict {
    /// The state dict of `model` with the values `weights` gives, under the authors' names: what a checkpoint of
    /// these weights holds (to write with ``SafeTensors/write(_:to:)``), naming the model in its metadata.
    public init(model: Model, weights: any ParameterSource) throws {
        try self.init(
            model.boundEntries().map {
                NamedTensor(name: $0.name, shape: $0.shape, values: try weights.values(for: $0.name, shape: $0.shape))
            }, metadata: [StateDict.modelKey: model.name])
    }
}
