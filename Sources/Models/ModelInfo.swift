import Foundation
import NetworkGraph

/// Shapes, parameters and multiply-adds of a model at one input size, per stage and per layer.
public struct ModelInfo: Sendable, Codable {
    public struct Stage: Sendable, Codable {
        public let name: String
        /// Output shape of the stage for one image, C x H x W.
        public let output: String
        public let parameters: Int
        public let madds: Int
    }

    public struct Layer: Sendable, Codable {
        public let name: String
        public let op: String
        public let output: String
        public let madds: Int
    }

    public let model: String
    public let architecture: String
    public let input_size: Int
    public let parameters: Int
    public let state_dict_entries: Int
    public let madds: Int
    public let stages: [Stage]
    public let layers: [Layer]

    /// Counts `model` at `inputSize` (batch 1).
    public init(model: Model, inputSize: Int) throws {
        let builder = try model.build(batch: 1, inputSize: inputSize, weights: ZeroWeights())
        let graph = builder.graph
        let declarations = builder.declarations
        self.model = model.name
        architecture = model.architecture.text
        input_size = inputSize
        parameters = declarations.filter(\.trainable).reduce(0) { $0 + $1.count }
        state_dict_entries = declarations.count
        madds = graph.madds
        func shape(_ tensor: TensorID) -> String {
            let s = graph.shapes[tensor]
            return "\(s.channels)x\(s.height)x\(s.width)"
        }
        layers = graph.nodes.map { Layer(name: $0.name, op: $0.op.name, output: shape($0.output), madds: $0.op.madds) }
        var stages: [Stage] = []
        var order: [String] = []
        var lastOutput: [String: TensorID] = [:]
        var stageMAdds: [String: Int] = [:]
        for node in graph.nodes {
            let stage = Self.stage(of: node.name)
            if stageMAdds[stage] == nil { order.append(stage) }
            stageMAdds[stage, default: 0] += node.op.madds
            lastOutput[stage] = node.output
        }
        var stageParameters: [String: Int] = [:]
        for declaration in declarations where declaration.trainable {
            stageParameters[Self.stage(of: declaration.name), default: 0] += declaration.count
        }
        for name in order {
            stages.append(
                Stage(
                    name: name, output: lastOutput[name].map(shape) ?? "", parameters: stageParameters[name] ?? 0,
                    madds: stageMAdds[name] ?? 0))
        }
        self.stages = stages
    }

    /// The stage a module belongs to: layerN or blocks.N, else stem (before the stages) or head (after).
    static func stage(of name: String) -> String {
        let parts = name.split(separator: ".")
        guard let first = parts.first else { return "stem" }
        if first.hasPrefix("layer") { return String(first) }
        if first == "blocks", parts.count > 1 { return "blocks.\(parts[1])" }
        if ["fc", "classifier", "global_pool", "conv_head"].contains(first) || (first == "bn2" && parts.count == 2) {
            return "head"
        }
        return "stem"
    }
}
