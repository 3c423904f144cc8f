import Foundation
import Kernels
import NetworkGraph

// The HyTra space (BossNet-T), following retraining_hytra/boss_models.py and boss_candidates/ of the authors'
// repository: module names, and so state-dict names, are theirs.

extension HyTraArchitecture: ModelFamily {
    public static let prefix = "hytra"

    public static let published: [String: HyTraArchitecture] = [
        "bossnet_T0": HyTraArchitecture(
            stages: bossNetTEncoding, activation: .silu, squeezeExcite: true, lastStride: 2),
        "bossnet_T0_nose": HyTraArchitecture(
            stages: bossNetTEncoding, activation: .relu, squeezeExcite: false, lastStride: 2),
        "bossnet_T1": HyTraArchitecture(
            stages: bossNetTEncoding, activation: .silu, squeezeExcite: true, lastStride: 1),
    ]

    public static func parse(_ text: String) throws -> HyTraArchitecture {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let stageTexts = parts[0].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard stageTexts.count == 4 else {
            throw ArchitectureError(
                "A hytra encoding has 4 stages separated by '-', like 1-1-11101-000100000; got '\(parts[0])'.")
        }
        let stages = try stageTexts.map { stage -> [Block] in
            if stage == "_" { return [] }
            guard !stage.isEmpty else { throw ArchitectureError("An empty stage is written '_'.") }
            guard stage.count <= maximumBlocksPerStage else {
                throw ArchitectureError(
                    "A stage has \(stage.count) blocks; at most \(maximumBlocksPerStage) are accepted (BossNet-T has 9 at most)."
                )
            }
            return try stage.map { character -> Block in
                switch character {
                case "1": return .convolution
                case "0": return .attention
                default:
                    throw ArchitectureError(
                        "Stage '\(stage)': blocks are 1 (ResConv) or 0 (ResAtt), not '\(character)'.")
                }
            }
        }
        var architecture = HyTraArchitecture(stages: stages, activation: .silu, squeezeExcite: true, lastStride: 2)
        for option in parts.dropFirst() {
            let pair = option.split(separator: "=", maxSplits: 1).map {
                String($0).trimmingCharacters(in: .whitespaces)
            }
            guard pair.count == 2 else { throw ArchitectureError("Option '\(option)' must look like name=value.") }
            switch (pair[0], pair[1]) {
            case ("act", "relu"): architecture.activation = .relu
            case ("act", "silu"): architecture.activation = .silu
            case ("se", "yes"), ("se", "on"), ("se", "1"): architecture.squeezeExcite = true
            case ("se", "no"), ("se", "off"), ("se", "0"): architecture.squeezeExcite = false
            case ("last-stride", "1"): architecture.lastStride = 1
            case ("last-stride", "2"): architecture.lastStride = 2
            default:
                throw ArchitectureError(
                    "Unknown option '\(option)'. Options: act=relu|silu, se=yes|no, last-stride=1|2.")
            }
        }
        return architecture
    }

    public var text: String {
        let stages = stages.map { $0.isEmpty ? "_" : $0.map { String($0.rawValue) }.joined() }.joined(separator: "-")
        return "\(stages),act=\(activation),se=\(squeezeExcite ? "yes" : "no"),last-stride=\(lastStride)"
    }

    public func graph(batch: Int, inputSize: Int) throws -> Graph {
        var builder = GraphBuilder(inputChannels: 3, inputSize: inputSize, batch: batch)
        try builder.buildHyTra(self)
        return builder.graph
    }

    /// `layer1` to `layer4`; `head` for the pooling and classifier; `stem` before the stages.
    public func stage(of name: String) -> String {
        let first = name.split(separator: ".").first.map(String.init) ?? ""
        if first.hasPrefix("layer") { return first }
        return ["fc", "global_pool"].contains(first) ? "head" : "stem"
    }

    /// The authors' rule (retraining_hytra/boss_models.py): block i of the 16 blocks of the stages (ResConv and ResAtt
    /// counted alike, an empty stage's conv not at all) gets `rate * i / 15`, and only ResConv blocks drop their
    /// branch (after squeeze-excite, before the residual add). The divisor stays 15 whatever the block count, as theirs.
    public func dropPathRates(_ rate: Double) throws -> [String: Double] {
        guard rate > 0 else { return [:] }
        var rates: [String: Double] = [:]
        var index = 0
        for (stage, blocks) in stages.enumerated() {
            for (position, block) in blocks.enumerated() {
                let blockRate = rate * Double(index) / 15
                if block == .convolution && blockRate > 0 {
                    rates["layer\(stage + 1).\(position).\(squeezeExcite ? "se" : "conv3")"] = blockRate
                }
                index += 1
            }
        }
        return rates
    }

    /// The last BatchNorm of a ResConv (`bn3`, 0.1) and of a ResAtt (`net.5`, 0.05) branch; attention's `to_qkv` (12).
    public var syntheticGains: SyntheticGains {
        SyntheticGains(batchNorm: ["bn3": 0.1, "net.5": 0.05], weight: ["to_qkv": 12])
    }

    /// ResConv's `bn3` and ResAtt's `net.5` (retraining_hytra's `zero_init_last_bn`).
    public var zeroInitializedBatchNorms: Set<String>? { ["bn3", "net.5"] }
}

extension GraphBuilder {
    mutating func buildHyTra(_ architecture: HyTraArchitecture) throws {
        let act = architecture.activation
        var x = try conv(graph.input, "conv1", out: 64, kernel: 7, stride: 2, padding: 3, norm: "bn1", activation: act)
        x = maxPool(x, "maxpool")
        var inplanes = 64
        for (index, blocks) in architecture.stages.enumerated() {
            let planes = HyTraArchitecture.planes[index], out = planes * 4
            let stride = index == 3 ? architecture.lastStride : (index == 0 ? 1 : 2)
            let stage = "layer\(index + 1)"
            if blocks.isEmpty {
                // The search space's empty stage: one plain conv 3x3 s2 . BN . act.
                x = try conv(
                    x, "\(stage).0.0", out: out, kernel: 3, stride: 2, padding: 1, norm: "\(stage).0.1", activation: act
                )
                inplanes = out
                continue
            }
            for (position, block) in blocks.enumerated() {
                let prefix = "\(stage).\(position)"
                let blockStride = position == 0 ? stride : 1
                switch block {
                case .convolution:
                    x = try resConv(
                        x, prefix, inplanes: inplanes, planes: planes, stride: blockStride, architecture: architecture)
                case .attention:
                    x = try resAtt(
                        x, prefix, inplanes: inplanes, out: out, heads: HyTraArchitecture.heads[index],
                        stride: blockStride, activation: act)
                }
                inplanes = out
            }
        }
        x = globalAvgPool(x, "global_pool")
        _ = try linear(x, "fc", out: architecture.classes)
    }

    /// The avg_down shortcut: AvgPool 2x2 (when strided) . conv 1x1 . BN, or the identity.
    private mutating func shortcut(_ x: TensorID, _ prefix: String, inplanes: Int, out: Int, stride: Int) throws
        -> TensorID
    {
        guard stride == 2 || inplanes != out else { return x }
        let pooled = stride == 2 ? avgPool(x, "\(prefix).0") : x
        return try conv(pooled, "\(prefix).1", out: out, kernel: 1, norm: "\(prefix).2")
    }

    /// ResConv: conv1 1x1 . peg (depthwise 3x3 with bias, the block's stride) . bn1 . act . conv2 3x3 . bn2 . act .
    /// conv3 1x1 . bn3 [. SE] + shortcut . act.
    private mutating func resConv(
        _ x: TensorID, _ prefix: String, inplanes: Int, planes: Int, stride: Int, architecture: HyTraArchitecture
    ) throws -> TensorID {
        let out = planes * 4, act = architecture.activation
        let residual = try shortcut(x, "\(prefix).downsample", inplanes: inplanes, out: out, stride: stride)
        var y = try conv(x, "\(prefix).conv1", out: planes, kernel: 1)
        y = try conv(
            y, "\(prefix).peg.conv", out: planes, kernel: 3, stride: stride, padding: 1, depthwise: true, bias: true,
            norm: "\(prefix).bn1", activation: act)
        y = try conv(y, "\(prefix).conv2", out: planes, kernel: 3, padding: 1, norm: "\(prefix).bn2", activation: act)
        if architecture.squeezeExcite {
            y = try conv(y, "\(prefix).conv3", out: out, kernel: 1, norm: "\(prefix).bn3")
            return try squeezeExcite(
                y, "\(prefix).se", reduced: out / 16, inner: .relu, residual: residual, activation: act)
        }
        return try conv(
            y, "\(prefix).conv3", out: out, kernel: 1, norm: "\(prefix).bn3", activation: act, residual: residual)
    }

    /// ResAtt: proj (conv 1x1 . PEG depthwise 3x3 with the block's stride . BN) . act . attention . BN . act .
    /// conv 1x1 . BN + shortcut . act.
    private mutating func resAtt(
        _ x: TensorID, _ prefix: String, inplanes: Int, out: Int, heads: Int, stride: Int, activation act: Activation
    ) throws -> TensorID {
        let channels = heads * Attention.headChannels
        let residual = try shortcut(x, "\(prefix).shortcut", inplanes: inplanes, out: out, stride: stride)
        var y = try conv(x, "\(prefix).proj.0", out: channels, kernel: 1)
        y = try conv(
            y, "\(prefix).proj.1.conv", out: channels, kernel: 3, stride: stride, padding: 1, depthwise: true,
            bias: true, norm: "\(prefix).proj.2", activation: act)
        let qkv = try conv(y, "\(prefix).net.1.to_qkv", out: 3 * channels, kernel: 1)
        y = try attention(qkv, "\(prefix).net.1", heads: heads, norm: "\(prefix).net.2", activation: act)
        return try conv(
            y, "\(prefix).net.4", out: out, kernel: 1, norm: "\(prefix).net.5", activation: act, residual: residual)
    }
}
