import Foundation
import VulkanCompute

/// The specialization constants of Shaders/conv2d_tiled.comp, by name.
private typealias TiledSpec = ShaderConstants.conv2d_tiled

/// The specialization constants of Shaders/conv2d_splitk_reduce.comp, by name.
private typealias ReduceSpec = ShaderConstants.conv2d_splitk_reduce

/// The tile a workgroup of Shaders/conv2d_tiled.comp computes: `bm` output channels by `bn` columns (output pixels of
/// the batch), stepping through the reduction `bk` at a time through shared memory; each invocation holds a `tm` by
/// `tn` block of accumulators. Three sizes, as ggml-vulkan has, chosen per layer shape and device.
public struct GEMMTile: Hashable, Sendable, Codable, CustomStringConvertible {
    public let name: String
    public let bm, bn, bk, tm, tn: Int

    public static let small = GEMMTile(name: "small", bm: 32, bn: 32, bk: 16, tm: 4, tn: 4)
    public static let medium = GEMMTile(name: "medium", bm: 64, bn: 64, bk: 16, tm: 8, tn: 4)
    public static let large = GEMMTile(name: "large", bm: 128, bn: 64, bk: 16, tm: 8, tn: 8)
    public static let all = [small, medium, large]

    /// Invocations per workgroup.
    public var lanes: Int { (bm / tm) * (bn / tn) }
    /// Shared memory per workgroup: one `bk` slice of each operand, float32.
    public var sharedBytes: Int { bk * (bm + bn) * 4 }

    /// Whether a device with `limits` can run this tile.
    public func fits(_ limits: DeviceLimits) -> Bool {
        lanes <= limits.maxWorkgroupX && sharedBytes <= limits.maxComputeSharedMemorySize
    }

    /// The tile for an `m` by `columns` output on a device with `limits`: small when either side is at most 32,
    /// medium when at most 64, else large (ggml-vulkan's rule); at least a whole subgroup of lanes where subgroups are
    /// wider than the tile's workgroup; never one the device cannot run.
    public static func choose(m: Int, columns: Int, limits: DeviceLimits) -> GEMMTile {
        var wanted: GEMMTile = m <= 32 || columns <= 32 ? .small : m <= 64 || columns <= 64 ? .medium : .large
        if wanted.lanes < limits.subgroupSize, let wider = all.first(where: { $0.lanes >= limits.subgroupSize }) {
            wanted = wider
        }
        let usable = all.filter { $0.fits(limits) }
        return usable.last { $0.lanes <= wanted.lanes && $0.bm <= wanted.bm } ?? usable.first ?? .small
    }

    public var description: String { name }
}

/// How Shaders/conv2d_tiled.comp runs one convolution (pointwise layers are its 1x1 case): the tile, and how many
/// slices the reduction is split into (split-K: each slice writes partial sums, Shaders/conv2d_splitk_reduce.comp
/// adds them and applies the epilogue) so that long reductions on small grids still fill a large GPU.
public struct TiledConvolution: Hashable, Sendable {
    public let conv: Conv2D
    public let tile: GEMMTile
    /// Reduction values each slice covers (a multiple of the tile's `bk`).
    public let kPerSplit: Int
    public let splits: Int
    /// 16-bit products inside each `bk` slice (the fp16math family).
    public let halfProducts: Bool

    /// Workgroups below which a long reduction is split.
    static let smallGrid = 64
    /// The shortest reduction worth splitting.
    static let longReduction = 1024

    public init(_ conv: Conv2D, config: KernelConfig) {
        self.conv = conv
        let columns = conv.batch * conv.outHeight * conv.outWidth
        let tile = GEMMTile.choose(m: conv.outChannels, columns: columns, limits: config.limits)
        self.tile = tile
        halfProducts = config.precision == .float16Products
        let k = conv.reduction
        let tiles = ((columns + tile.bn - 1) / tile.bn) * ((conv.outChannels + tile.bm - 1) / tile.bm)
        var splits = 1
        if tiles < Self.smallGrid && k >= Self.longReduction {
            splits = min(8, max(2, Self.smallGrid / tiles), k / 256)
        }
        let kPerSplit = Grid.roundUp((k + splits - 1) / splits, to: tile.bk)
        self.kPerSplit = kPerSplit
        self.splits = (k + kPerSplit - 1) / kPerSplit
    }

    public var columns: Int { conv.batch * conv.outHeight * conv.outWidth }
    /// Floats of scratch for the partial sums (0 without split-K).
    public var partialCount: Int { splits > 1 ? splits * conv.outChannels * columns : 0 }

    struct PushConstants: BitwiseCopyable {
        var batch, inChannels, inHeight, inWidth: UInt32
        var outChannels, outHeight, outWidth, padding: UInt32
        var mVec4, kSplit: UInt32
    }

    struct ReducePushConstants: BitwiseCopyable {
        var outChannels, columns, pixels, splits: UInt32
    }

    /// The dispatches and their bindings, as ``Conv2D/steps(input:weights:affine:residual:output:scratch:config:)``.
    func steps<Resource>(
        input: Resource, weights: Resource, affine: Resource, residual: Resource?, output: Resource,
        partials: Resource?,
        dataPath: DataPath
    ) -> [KernelStep<Resource>] {
        let c = conv
        let push = PushConstants(
            batch: UInt32(c.batch), inChannels: UInt32(c.inChannels), inHeight: UInt32(c.height),
            inWidth: UInt32(c.width),
            outChannels: UInt32(c.outChannels), outHeight: UInt32(c.outHeight), outWidth: UInt32(c.outWidth),
            padding: UInt32(c.padding),
            mVec4: UInt32(GEMMWeights.oneBlock(outputs: c.outChannels, reduction: c.reduction).paddedOutputs / 4),
            kSplit: UInt32(kPerSplit)
        )
        let specialization: [UInt32: SpecializationValue] = [
            TiledSpec.LOCAL_SIZE_X: .uint(UInt32(tile.lanes)), TiledSpec.KSIZE: .uint(UInt32(c.kernelSize)),
            TiledSpec.STRIDE: .uint(UInt32(c.stride)), TiledSpec.ACTIVATION: .uint(c.epilogue.activation.rawValue),
            TiledSpec.HAS_RESIDUAL: .bool(c.epilogue.hasResidual), TiledSpec.BM: .uint(UInt32(tile.bm)),
            TiledSpec.BN: .uint(UInt32(tile.bn)),
            TiledSpec.BK: .uint(UInt32(tile.bk)), TiledSpec.TM: .uint(UInt32(tile.tm)),
            TiledSpec.TN: .uint(UInt32(tile.tn)),
        ]
        let groups = ((columns + tile.bn - 1) / tile.bn, (c.outChannels + tile.bm - 1) / tile.bm, splits)
        precondition(
            splits == 1 || partials != nil, "split-K needs scratch for its partial sums (see scratchCounts(_:))")
        guard splits > 1, let partials else {
            let launch = KernelLaunch(
                kernel: halfProducts ? KernelName.conv2d_tiled_fp16math : KernelName.conv2d_tiled,
                specialization: specialization, pushConstants: push, groups: groups)
            return [
                KernelStep(
                    launch,
                    [
                        .read(input), .read(weights, .rgba32Float), .readSmall(affine), .read(residual ?? input),
                        .write(output),
                    ]
                ).on(dataPath)
            ]
        }
        let partial = KernelLaunch(
            kernel: halfProducts ? KernelName.conv2d_tiled_fp16math_splitk : KernelName.conv2d_tiled_splitk,
            specialization: specialization, pushConstants: push, groups: groups)
        let reduce = KernelLaunch(
            kernel: KernelName.conv2d_splitk_reduce,
            specialization: [
                ReduceSpec.LOCAL_SIZE_X: .uint(64), ReduceSpec.ACTIVATION: .uint(c.epilogue.activation.rawValue),
                ReduceSpec.HAS_RESIDUAL: .bool(c.epilogue.hasResidual),
            ],
            pushConstants: ReducePushConstants(
                outChannels: UInt32(c.outChannels), columns: UInt32(columns),
                pixels: UInt32(c.outHeight * c.outWidth), splits: UInt32(splits)),
            groups: Grid.flat(items: c.outChannels * columns, localSize: 64))
        return [
            KernelStep(
                partial,
                [
                    .read(input), .read(weights, .rgba32Float), .readSmall(affine), .read(residual ?? input),
                    .writeFloat32(partials),
                ]
            ).on(dataPath),
            KernelStep(reduce, [.readFloat32(partials), .readSmall(affine), .read(residual ?? output), .write(output)])
                .on(dataPath),
        ]
    }

    /// "tiled medium", "tiled large split 4".
    public var summary: String { "tiled \(tile)" + (splits > 1 ? " split \(splits)" : "") }
}
