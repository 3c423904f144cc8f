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

/// Any network this engine builds: a member of one of the registered ``families``.
public struct Architecture: Hashable, Sendable {
    public let family: any ModelFamily

    public init(_ family: any ModelFamily) { self.family = family }

    /// Every family this engine builds, in one place: their text prefixes, published models and builds.
    public static let families: [any ModelFamily.Type] = [HyTraArchitecture.self, MBConvArchitecture.self]

    /// The published models, by the authors' registry names.
    public static let named: [String: Architecture] = Dictionary(
        uniqueKeysWithValues: families.flatMap { family in
            family.published.map { ($0.key, Architecture($0.value)) }
        })

    /// A model by registry name.
    public static func named(_ name: String) throws -> Architecture {
        if let architecture = named[name] { return architecture }
        throw ArchitectureError(
            "Unknown model '\(name)'. Known models: \(named.keys.sorted().joined(separator: ", ")); "
                + "or describe one with --arch (see `bossnet info --help`).")
    }

    /// Parses the text syntax `<prefix>:<family's text>` (a registry name is accepted too):
    ///
    /// - `hytra:<stage1>-<stage2>-<stage3>-<stage4>[,act=relu|silu][,se=yes|no][,last-stride=1|2]`, each stage a string
    ///   of block digits (1 = ResConv, 0 = ResAtt) or `_` for an empty stage. Defaults: act=silu, se=yes,
    ///   last-stride=2. BossNet-T0 is `hytra:1-1-11101-000100000`, T1 adds `,last-stride=1`, and T0 without SE is
    ///   `hytra:1-1-11101-000100000,act=relu,se=no`.
    /// - `mbconv:<choice>,<choice>,...` with 19 choices, each `6x3`, `6x5`, `3x3` or `3x5` (expansion x kernel), e.g.
    ///   `mbconv:6x3,6x3,6x5,...`.
    public static func parse(_ text: String) throws -> Architecture {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for family in families where trimmed.hasPrefix(family.prefix + ":") {
            return Architecture(try family.parse(String(trimmed.dropFirst(family.prefix.count + 1))))
        }
        if let architecture = named[trimmed] { return architecture }
        let prefixes = families.map { "'\($0.prefix):'" }.joined(separator: " or ")
        throw ArchitectureError(
            "Cannot read architecture '\(text)': it must start with \(prefixes), or be a model name "
                + "(\(named.keys.sorted().joined(separator: ", "))).")
    }

    /// The text form that ``parse(_:)`` reads back.
    public var text: String { "\(type(of: family).prefix):\(family.text)" }

    /// The smallest input side the network takes and the multiple input sides must be of to keep every stage exact.
    public var inputMultiple: Int { 32 }

    /// The classifier's outputs (1000 for ImageNet).
    public var classes: Int { family.classes }

    /// The same network with a classifier of `classes` outputs (a new head, as timm's `num_classes`).
    public func with(classes: Int) -> Architecture {
        var family = self.family
        family.classes = classes
        return Architecture(family)
    }

    public static func == (a: Architecture, b: Architecture) -> Bool { a.text == b.text && a.classes == b.classes }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(text)
        hasher.combine(classes)
    }
}

/// An architecture that cannot be read or built.
public struct ArchitectureError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
