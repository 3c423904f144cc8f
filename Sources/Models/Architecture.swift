import Foundation
import Kernels

/// A BossNet network in the HyTra search space: four stages of ResConv (bottleneck convolution) and ResAtt
/// (BoTNet-style self-attention) blocks.
public struct HyTraArchitecture: Hashable, Sendable, Codable {
    /// The most blocks a stage of `--arch` may have: every block of stage 4 holds millions of parameters, so an
    /// unbounded encoding could ask for any amount of memory (found by fuzzing the parser).
    public static let maximumBlocksPerStage = 32

    /// Block kinds per stage, in block order.
    public enum Block: Int, Hashable, Sendable, Codable {
        case attention = 0  // ResAtt
        case convolution = 1  // ResConv
    }

    /// One list per stage (4 stages); an empty stage is one plain conv 3x3 s2 . BN . act.
    public var stages: [[Block]]
    /// The activation everywhere but inside SE (which is always ReLU).
    public var activation: Activation
    /// Whether ResConv blocks have squeeze-excite.
    public var squeezeExcite: Bool
    /// Stride of the last stage (2 for T0, 1 for T1).
    public var lastStride: Int
    public var classes: Int

    public init(stages: [[Block]], activation: Activation, squeezeExcite: Bool, lastStride: Int, classes: Int = 1000) {
        self.stages = stages
        self.activation = activation
        self.squeezeExcite = squeezeExcite
        self.lastStride = lastStride
        self.classes = classes
    }

    /// The searched encoding of BossNet-T0 and T1.
    public static let bossNetTEncoding: [[Block]] = [
        [.convolution], [.convolution],
        [.convolution, .convolution, .convolution, .attention, .convolution],
        [.attention, .attention, .attention, .convolution, .attention, .attention, .attention, .attention, .attention],
    ]

    /// Bottleneck widths of the four stages (outputs are 4x).
    public static let planes = [64, 128, 256, 512]
    /// Attention heads of the four stages (64 channels each).
    public static let heads = [1, 2, 4, 8]
}

/// A network in the MBConv search space (EfficientNet-shaped): one choice per layer.
public struct MBConvArchitecture: Hashable, Sendable, Codable {
    /// An inverted-residual block choice: expansion ratio and depthwise kernel.
    public enum Choice: String, Hashable, Sendable, Codable, CaseIterable {
        case mb6k3 = "6x3", mb6k5 = "6x5", mb3k3 = "3x3", mb3k5 = "3x5"

        public var expansion: Int { self == .mb6k3 || self == .mb6k5 ? 6 : 3 }
        public var kernel: Int { self == .mb6k3 || self == .mb3k3 ? 3 : 5 }
        /// The paper's name: MB6_3x3 and so on.
        public var paperName: String { "MB\(expansion)_\(kernel)x\(kernel)" }
    }

    /// Stages after the depthwise-separable block: (output channels, stride of the first layer, layers).
    public static let stages: [(channels: Int, stride: Int, layers: Int)] =
        [(24, 2, 2), (40, 2, 4), (80, 2, 4), (112, 1, 4), (192, 2, 4), (320, 1, 1)]
    /// Number of layer choices (19).
    public static var layerCount: Int { stages.reduce(0) { $0 + $1.layers } }

    public var choices: [Choice]
    public var classes: Int

    public init(choices: [Choice], classes: Int = 1000) {
        precondition(choices.count == Self.layerCount, "the MBConv space has \(Self.layerCount) layers")
        self.choices = choices
        self.classes = classes
    }
}

/// Any network this engine builds.
public enum Architecture: Hashable, Sendable {
    case hytra(HyTraArchitecture)
    case mbconv(MBConvArchitecture)

    /// The published models, by the authors' registry names.
    public static let named: [String: Architecture] = [
        "bossnet_T0": .hytra(
            HyTraArchitecture(
                stages: HyTraArchitecture.bossNetTEncoding, activation: .silu, squeezeExcite: true, lastStride: 2)),
        "bossnet_T0_nose": .hytra(
            HyTraArchitecture(
                stages: HyTraArchitecture.bossNetTEncoding, activation: .relu, squeezeExcite: false, lastStride: 2)),
        "bossnet_T1": .hytra(
            HyTraArchitecture(
                stages: HyTraArchitecture.bossNetTEncoding, activation: .silu, squeezeExcite: true, lastStride: 1)),
    ]

    /// A model by registry name or by the text syntax of ``parse(_:)``.
    public static func named(_ name: String) throws -> Architecture {
        if let architecture = named[name] { return architecture }
        throw ArchitectureError(
            "Unknown model '\(name)'. Known models: \(named.keys.sorted().joined(separator: ", ")); "
                + "or describe one with --arch (see `bossnet info --help`).")
    }

    /// Parses the text syntax:
    ///
    /// - `hytra:<stage1>-<stage2>-<stage3>-<stage4>[,act=relu|silu][,se=yes|no][,last-stride=1|2]`, each stage a string
    ///   of block digits (1 = ResConv, 0 = ResAtt) or `_` for an empty stage. Defaults: act=silu, se=yes,
    ///   last-stride=2. BossNet-T0 is `hytra:1-1-11101-000100000`, T1 adds `,last-stride=1`, and T0 without SE is
    ///   `hytra:1-1-11101-000100000,act=relu,se=no`.
    /// - `mbconv:<choice>,<choice>,...` with 19 choices, each `6x3`, `6x5`, `3x3` or `3x5` (expansion x kernel), e.g.
    ///   `mbconv:6x3,6x3,6x5,...`.
    public static func parse(_ text: String) throws -> Architecture {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("hytra:") { return try parseHyTra(String(trimmed.dropFirst(6))) }
        if trimmed.hasPrefix("mbconv:") { return try parseMBConv(String(trimmed.dropFirst(7))) }
        if let architecture = named[trimmed] { return architecture }
        throw ArchitectureError(
            "Cannot read architecture '\(text)': it must start with 'hytra:' or 'mbconv:', or be a model name "
                + "(\(named.keys.sorted().joined(separator: ", "))).")
    }

    private static func parseHyTra(_ text: String) throws -> Architecture {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let stageTexts = parts[0].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard stageTexts.count == 4 else {
            throw ArchitectureError(
                "A hytra encoding has 4 stages separated by '-', like 1-1-11101-000100000; got '\(parts[0])'.")
        }
        let stages = try stageTexts.map { stage -> [HyTraArchitecture.Block] in
            if stage == "_" { return [] }
            guard !stage.isEmpty else { throw ArchitectureError("An empty stage is written '_'.") }
            guard stage.count <= HyTraArchitecture.maximumBlocksPerStage else {
                throw ArchitectureError(
                    "A stage has \(stage.count) blocks; at most \(HyTraArchitecture.maximumBlocksPerStage) are accepted (BossNet-T has 9 at most)."
                )
            }
            return try stage.map { character -> HyTraArchitecture.Block in
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
        return .hytra(architecture)
    }

    private static func parseMBConv(_ text: String) throws -> Architecture {
        let tokens = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard tokens.count == MBConvArchitecture.layerCount else {
            throw ArchitectureError(
                "The MBConv space has \(MBConvArchitecture.layerCount) layers; got \(tokens.count) choices.")
        }
        let choices = try tokens.map { token in
            guard let choice = MBConvArchitecture.Choice(rawValue: token) else {
                throw ArchitectureError(
                    "MBConv choice '\(token)' must be one of 6x3, 6x5, 3x3, 3x5 (expansion x kernel).")
            }
            return choice
        }
        return .mbconv(MBConvArchitecture(choices: choices))
    }

    /// The text form that ``parse(_:)`` reads back.
    public var text: String {
        switch self {
        case let .hytra(a):
            let stages = a.stages.map { $0.isEmpty ? "_" : $0.map { String($0.rawValue) }.joined() }.joined(
                separator: "-")
            return
                "hytra:\(stages),act=\(a.activation),se=\(a.squeezeExcite ? "yes" : "no"),last-stride=\(a.lastStride)"
        case let .mbconv(a):
            return "mbconv:" + a.choices.map(\.rawValue).joined(separator: ",")
        }
    }

    /// The smallest input side the network takes and the multiple input sides must be of to keep every stage exact.
    public var inputMultiple: Int { 32 }
}

/// An architecture that cannot be read or built.
public struct ArchitectureError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
