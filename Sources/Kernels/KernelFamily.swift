import Foundation
import VulkanCompute

/// The families of kernels a plan can run: what `--kernels` chooses between, so one benchmark run can compare them
/// side by side on one device.
public enum KernelFamily: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Register-tiled kernels reading through texel buffers: the fastest on lavapipe, within the device's texel limit.
    case texel
    /// The texel family with every convolution on the direct kernel, none as ``Winograd``: what `bench --kernels texel
    /// direct` measures Winograd against, side by side.
    case direct
    /// The same kernels reading through storage buffers: any size up to the storage range.
    case storage
    /// Shared-memory tiled GEMM and implicit-GEMM convolution (tile sizes per layer shape and device, split-K for long
    /// reductions on small grids), subgroup reductions for pooling, flash-style attention; storage buffers.
    case tiled
    /// The tiled family with activations and weights stored as 16-bit floats (float32 arithmetic); needs 16-bit
    /// storage.
    case fp16
    /// The tiled family with 16-bit storage and 16-bit products inside each tile of the reduction (float32 across
    /// tiles); needs 16-bit storage and shaderFloat16.
    case fp16math

    /// The data path its kernels are built for.
    public var dataPath: DataPath {
        switch self {
        case .texel, .direct: .texel
        case .storage, .tiled: .storage
        case .fp16, .fp16math: .fp16
        }
    }

    /// How its GEMM-shaped operations, attention and global pooling run.
    public var strategy: KernelStrategy {
        self == .tiled || self == .fp16 || self == .fp16math ? .sharedMemoryTiled : .registerTiled
    }

    /// How its 3x3 stride-1 convolutions run.
    public var convolution: ConvolutionStrategy {
        strategy == .registerTiled && self != .direct ? .winograd : .implicitGEMM
    }

    /// Its arithmetic precision.
    public var precision: Precision {
        switch self {
        case .texel, .direct, .storage, .tiled: .float32
        case .fp16: .float16Storage
        case .fp16math: .float16Products
        }
    }

    /// Whether the device can run this family at all (the texel family falls back to storage where a view would pass
    /// the texel limit, so it always runs).
    public func isSupported(by features: OptionalFeatures) -> Bool {
        switch self {
        case .texel, .direct, .storage, .tiled: true
        case .fp16: features.float16Storage
        case .fp16math: features.float16Storage && features.float16Arithmetic
        }
    }

    public var description: String { rawValue }
}

/// How GEMM-shaped operations, attention and global pooling run.
public enum KernelStrategy: String, Sendable, Codable {
    /// Register tiles per invocation (``RegisterTiles``), two-pass attention, pooling per invocation.
    case registerTiled
    /// Shared-memory tiles with split-K (``TiledConvolution``), flash-style attention in one pass, subgroup pooling.
    case sharedMemoryTiled
}

/// How 3x3 stride-1 convolutions run (the others always run as an implicit GEMM).
public enum ConvolutionStrategy: String, Sendable, Codable {
    case implicitGEMM
    /// Winograd F(2x2, 3x3) or F(4x4, 3x3) (``Winograd``).
    case winograd
}

/// Where kernels round to 16 bits.
public enum Precision: String, Sendable, Codable {
    case float32
    /// Activations and weights stored as 16-bit floats, float32 arithmetic.
    case float16Storage
    /// 16-bit storage and 16-bit products inside each tile of a GEMM's reduction (float32 across tiles).
    case float16Products
}

/// What a kernel's launch depends on beyond its operation's shape: the orthogonal settings its family stands for
/// (data path, strategy, convolution strategy, precision) and the device's limits (workgroup sizes, shared memory,
/// subgroup operations). Kernels consult the setting they depend on, never the family's name.
public struct KernelConfig: Sendable, Equatable {
    /// The family the settings come from (for reports).
    public var family: KernelFamily
    public var limits: DeviceLimits

    public init(family: KernelFamily, limits: DeviceLimits) {
        self.family = family
        self.limits = limits
    }

    /// How GEMM-shaped operations, attention and global pooling run.
    public var strategy: KernelStrategy { family.strategy }
    /// How 3x3 stride-1 convolutions run.
    public var convolution: ConvolutionStrategy { family.convolution }
    /// Where kernels round to 16 bits.
    public var precision: Precision { family.precision }

    /// The texel family within the spec's minimum limits: what the kernels were first written for.
    public static let texel = KernelConfig(family: .texel, limits: .vulkanMinimum)

    /// The same limits, another family.
    public func with(_ family: KernelFamily) -> KernelConfig { KernelConfig(family: family, limits: limits) }

    /// The data path of the family.
    public var dataPath: DataPath { family.dataPath }

    /// Invocations per workgroup for the kernels whose lanes are free to choose: 64, or a whole subgroup where
    /// subgroups are wider (128 on some mobile GPUs), within the device's workgroup limit.
    public var lanes: Int { min(limits.maxWorkgroupX, max(64, limits.subgroupSize)) }
}

/// Which kernels a plan uses: one family throughout, or the planner's choice per node.
public enum KernelChoice: Sendable, Equatable, CustomStringConvertible {
    /// Per node, for the device: texel reads on CPU devices (lavapipe), where each view fits the texel limit, else
    /// storage reads; the tiled family on GPUs.
    case automatic
    /// One family for every node (texel still falls back to storage reads where a view would not fit).
    case family(KernelFamily)

    /// Parses `auto` or a family's name.
    public init?(_ text: String) {
        if text == "auto" { self = .automatic; return }
        guard let family = KernelFamily(rawValue: text) else { return nil }
        self = .family(family)
    }

    public var description: String {
        switch self {
        case .automatic: "auto"
        case let .family(family): family.rawValue
        }
    }

    /// The family this choice runs on a device of `type` (automatic: texel on CPU devices, tiled on GPUs; the
    /// planner may still choose other kernels for single nodes).
    public func family(on type: DeviceType) -> KernelFamily {
        switch self {
        case .automatic: type == .cpu ? .texel : .tiled
        case let .family(family): family
        }
    }

    /// Every name ``init(_:)`` accepts.
    public static var names: [String] { ["auto"] + KernelFamily.allCases.map(\.rawValue) }
}

/// An operation the engine has kernels for. Its name is its op's name in graphs and checks, and the stem of its
/// shaders' names (`Shaders/<name>.comp`, `<name>_tiled.comp`, ...): written once, in its own file.
public protocol KernelOperation {
    static var name: String { get }
}

extension DeviceLimits {
    /// Whether the `_shuffle` kernels can run here: their lanes fetch different values (weights, keys) and share them
    /// by subgroup shuffles from the first 8 lanes, so compute shaders need shuffles and subgroups of at least 8.
    /// On lavapipe, where every lane otherwise fetches the same value, they take a fraction of the time
    /// (BENCHMARKS.md).
    public var sharesFetchesAcrossSubgroup: Bool { subgroupShuffle && subgroupSize >= 8 }
}
