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
        let graph = try model.graph(batch: 1, inputSize: inputSize)
        let declarations = graph.declarations
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
            let stage = model.architecture.family.stage(of: node.name)
            if stageMAdds[stage] == nil { order.append(stage) }
            stageMAdds[stage, default: 0] += node.op.madds
            lastOutput[stage] = node.output
        }
        var stageParameters: [String: Int] = [:]
        for declaration in declarations where declaration.trainable {
            stageParameters[model.architecture.family.stage(of: declaration.name), default: 0] += declaration.count
        }
        for name in order {
            stages.append(
                Stage(
                    name: name, output: lastOutput[name].map(shape) ?? "", parameters: stageParameters[name] ?? 0,
                    madds: stageMAdds[name] ?? 0))
        }
        self.stages = stages
    }
}
