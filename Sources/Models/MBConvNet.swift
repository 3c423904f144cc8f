import Foundation
import Kernels
import NetworkGraph

// The MBConv space (shared/BOSSNET.md): EfficientNet's shape with a residual on every layer. No published
// checkpoint exists for it here, so its state-dict names follow timm's EfficientNet (conv_stem, blocks.S.L.conv_pw,
// ...), with the residual's pooling and projection under blocks.S.L.shortcut.{0,1,2}.

extension MBConvArchitecture: ModelFamily {
    public static let prefix = "mbconv"
    /// None: no checkpoint of the space is published.
    public static let published: [String: MBConvArchitecture] = [:]

    public static func parse(_ text: String) throws -> MBConvArchitecture {
        let tokens = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard tokens.count == layerCount else {
            throw ArchitectureError(
                "The MBConv space has \(layerCount) layers; got \(tokens.count) choices.")
        }
        let choices = try tokens.map { token in
            guard let choice = Choice(rawValue: token) else {
                throw ArchitectureError(
                    "MBConv choice '\(token)' must be one of 6x3, 6x5, 3x3, 3x5 (expansion x kernel).")
            }
            return choice
        }
        return MBConvArchitecture(choices: choices)
    }

    public var text: String { choices.map(\.rawValue).joined(separator: ",") }

    public func graph(batch: Int, inputSize: Int) throws -> Graph {
        var builder = GraphBuilder(inputChannels: 3, inputSize: inputSize, batch: batch)
        try builder.buildMBConv(self)
        return builder.graph
    }

    /// Refuses a rate above 0: the authors' code retrains only the HyTra family, so the space has no rule of theirs.
    public func dropPathRates(_ rate: Double) throws -> [String: Double] {
        guard rate > 0 else { return [:] }
        throw ArchitectureError(
            "Stochastic depth (--drop-path) follows the authors' retraining code, which has it for BossNet-T (hytra) "
                + "only; train an MBConv network with --drop-path 0.")
    }

    /// `blocks.0` to `blocks.6`; `head` for conv_head, its BatchNorm (`bn2`), the pooling and the classifier; `stem`
    /// before the blocks.
    public func stage(of name: String) -> String {
        let parts = name.split(separator: ".").map(String.init)
        guard let first = parts.first else { return "stem" }
        if first == "blocks", parts.count > 1 { return "blocks.\(parts[1])" }
        if ["classifier", "global_pool", "conv_head"].contains(first) || (first == "bn2" && parts.count == 2) {
            return "head"
        }
        return "stem"
    }

    /// The last BatchNorm of each inverted residual (`bn3`, 0.1).
    public var syntheticGains: SyntheticGains { SyntheticGains(batchNorm: ["bn3": 0.1]) }

    /// None: the authors publish no training code for the MBConv space (train it from given weights).
    public var zeroInitializedBatchNorms: Set<String>? { nil }
}

extension GraphBuilder {
    mutating func buildMBConv(_ architecture: MBConvArchitecture) throws {
        var x = try conv(
            graph.input, "conv_stem", out: 32, kernel: 3, stride: 2, padding: 1, norm: "bn1", activation: .silu)
        // Depthwise-separable block: dw 3x3 . BN . SiLU . SE 0.25 . pw 32 -> 16 . BN.
        var y = try conv(
            x, "blocks.0.0.conv_dw", out: 32, kernel: 3, padding: 1, depthwise: true, norm: "blocks.0.0.bn1",
            activation: .silu)
        y = try squeezeExcite(
            y, "blocks.0.0.se", reduced: 8, inner: .silu, names: ("conv_reduce", "conv_expand"),
            residual: nil, activation: .identity)
        x = try conv(y, "blocks.0.0.conv_pw", out: 16, kernel: 1, norm: "blocks.0.0.bn2")
        var inChannels = 16
        var layer = 0
        for (stageIndex, stage) in MBConvArchitecture.stages.enumerated() {
            for position in 0..<stage.layers {
                let choice = architecture.choices[layer]
                let prefix = "blocks.\(stageIndex + 1).\(position)"
                let stride = position == 0 ? stage.stride : 1
                let mid = inChannels * choice.expansion
                var residual = x
                if stride == 2 { residual = avgPool(residual, "\(prefix).shortcut.0") }
                if inChannels != stage.channels {
                    residual = try conv(
                        residual, "\(prefix).shortcut.1", out: stage.channels, kernel: 1, norm: "\(prefix).shortcut.2")
                }
                var y = try conv(x, "\(prefix).conv_pw", out: mid, kernel: 1, norm: "\(prefix).bn1", activation: .silu)
                y = try conv(
                    y, "\(prefix).conv_dw", out: mid, kernel: choice.kernel, stride: stride, padding: choice.kernel / 2,
                    depthwise: true, norm: "\(prefix).bn2", activation: .silu)
                y = try squeezeExcite(
                    y, "\(prefix).se", reduced: max(1, inChannels / 4), inner: .silu,
                    names: ("conv_reduce", "conv_expand"), residual: nil, activation: .identity)
                x = try conv(
                    y, "\(prefix).conv_pwl", out: stage.channels, kernel: 1, norm: "\(prefix).bn3", residual: residual)
                inChannels = stage.channels
                layer += 1
            }
        }
        x = try conv(x, "conv_head", out: 1280, kernel: 1, norm: "bn2", activation: .silu)
        x = globalAvgPool(x, "global_pool")
        _ = try linear(x, "classifier", out: architecture.classes)
    }
}
