import Checkpoint
import Foundation
import NetworkGraph

extension CheckpointWeights {
    /// Binds `state` to the model it is for, so that weights never run as another network whose shapes they happen
    /// to fit (BossNet-T0 and T1 have the same parameters; they differ in a stride):
    ///
    /// - with `requested`: that model; refused with ``ModelChoiceError/otherModel(named:requested:)`` when the file
    ///   names another one, unless `allowOtherModel`;
    /// - else the model the file names (``StateDict/model``: the authors' `args.model`, or our safetensors metadata);
    /// - else the one published model whose parameters the file fits; refused with
    ///   ``ModelChoiceError/ambiguous(_:)`` when several fit.
    public static func bind(_ state: StateDict, requested: Model?, allowOtherModel: Bool = false) throws -> (
        model: Model, weights: CheckpointWeights
    ) {
        if let requested {
            if !allowOtherModel { try checkModel(of: state, is: requested) }
            let model = requested.withClassifier(of: state)
            return (model, try CheckpointWeights(state: state, model: model))
        }
        if let named = try namedModel(state)?.withClassifier(of: state) {
            return (named, try CheckpointWeights(state: state, model: named))
        }
        var fits: [(Model, CheckpointWeights)] = []
        var firstError: (any Error)?
        for name in Architecture.named.keys.sorted() {
            let model = try Model(name: name).withClassifier(of: state)
            do { fits.append((model, try CheckpointWeights(state: state, model: model))) } catch {
                if name == "bossnet_T0" { firstError = error }
            }
        }
        guard fits.count <= 1 else { throw ModelChoiceError.ambiguous(fits.map(\.0.name)) }
        guard let only = fits.first else { throw firstError ?? ModelChoiceError.ambiguous([]) }
        return only
    }

    /// Throws ``ModelChoiceError/otherModel(named:requested:)`` where `state` names a model other than `requested`.
    public static func checkModel(of state: StateDict, is requested: Model) throws {
        guard let name = state.model else { return }
        let named = try? namedModel(state)
        if named?.architecture.text != requested.architecture.text {
            throw ModelChoiceError.otherModel(named: named?.name ?? name, requested: requested.name)
        }
    }

    /// The model `state` names, if it names one.
    static func namedModel(_ state: StateDict) throws -> Model? {
        try state.model.map { name in
            do { return Model(try Architecture.parse(name)) } catch { throw ModelChoiceError.unknownModel(name) }
        }
    }
}

/// Weights that cannot be bound without a word from the user about which model they are for.
public enum ModelChoiceError: Error, CustomStringConvertible, Equatable {
    /// The file names the model `named`; the user asked for `requested`.
    case otherModel(named: String, requested: String)
    /// The file names a model this engine does not know.
    case unknownModel(String)
    /// The file names no model and fits several (or none) of the published ones.
    case ambiguous([String])

    public var description: String {
        switch self {
        case let .otherModel(named, requested):
            "the weights are for \(named) (the model the checkpoint names), not \(requested): run them as \(named) "
                + "by leaving out --model/--arch, or pass --force-model to run them as \(requested) anyway."
        case let .unknownModel(name):
            "the checkpoint names the model '\(name)', which this engine does not know; say which network the "
                + "weights are for with --model or --arch."
        case let .ambiguous(names):
            "the checkpoint names no model and fits \(names.joined(separator: " and ")) alike (the same parameter "
                + "names and shapes, another network): say which with --model."
        }
    }
}

extension Model {
    /// This model with as many classes as `state`'s classifier scores (a checkpoint fine-tuned on another label set,
    /// its head `[classes, features]` of the model's features); itself where the classifier matches or is absent.
    public func withClassifier(of state: StateDict) -> Model {
        guard let head = (try? stateDictEntries())?.last(where: { $0.trainable && $0.shape.count == 2 }),
            let tensor = state[head.name], tensor.shape.count == 2, tensor.shape[1] == head.shape[1],
            tensor.shape[0] != head.shape[0], tensor.shape[0] >= 1
        else { return self }
        return Model(architecture.with(classes: tensor.shape[0]), name: name)
    }
}
