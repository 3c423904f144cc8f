import Foundation
import VulkanCompute

/// What a producing kernel does to each output after accumulating it: `act(acc * scale[c] + shift[c])`, or with a
/// residual `act(acc * scale[c] + shift[c] + residual)`. Scale and shift are a folded BatchNorm, or 1 and a bias.
/// Mirrors `epilogue()` in Shaders/common.glsl.
public struct Epilogue: Hashable, Sendable, Codable {
    public var activation: Activation
    public var hasResidual: Bool

    public init(activation: Activation = .identity, hasResidual: Bool = false) {
        self.activation = activation
        self.hasResidual = hasResidual
    }

    /// The reference definition, in Double.
    @inlinable
    public func apply(_ accumulator: Double, scale: Double, shift: Double, residual: Double) -> Double {
        let value = accumulator * scale + shift
        return activation.apply(hasResidual ? value + residual : value)
    }

    /// Scale and shift as the kernels read them: all scales, then all shifts.
    public static func packAffine(scale: [Float], shift: [Float]) -> [Float] {
        precondition(scale.count == shift.count, "scale and shift differ in length")
        return scale + shift
    }

    /// Applies the epilogue to a whole NCHW tensor of accumulators, the reference way.
    public static func referenceApply(
        _ accumulators: [Double], channels: Int, pixels: Int, scale: [Float], shift: [Float], residual: [Float]?,
        epilogue: Epilogue
    ) -> [Float] {
        precondition(
            !epilogue.hasResidual || residual?.count == accumulators.count, "residual shape differs from the output")
        return accumulators.indices.map { index in
            let channel = (index / pixels) % channels
            return Float(
                epilogue.apply(
                    accumulators[index], scale: Double(scale[channel]), shift: Double(shift[channel]),
                    residual: residual.map { Double($0[index]) } ?? 0))
        }
    }
}

/// How the GEMM kernels find their weights: a weight matrix `[M][K]` (output channels by reduction; OIHW
/// convolution weights are this with K = C * kh * kw) packed in blocks of ``rows`` output channels,
/// `[Mpad / rows][K][rows]`, Mpad = M rounded up to a whole block, zeros in the padding. One vec4 fetch brings four
/// output channels.
///
/// The register-tiled kernels (Shaders/pointwise.comp, Shaders/conv2d.comp) read blocks of
/// ``RegisterTiles/weightBlock`` channels (`WEIGHT_BLOCK` in Shaders/common.glsl), so that a workgroup's weights (its up
/// to 32 channels over the whole reduction) are one contiguous range. Packed as one block of all M, they were K
/// slices of 128 bytes, Mpad * 4 bytes apart: 8 KB apart for M = 2048, which maps them onto a few cache sets, and
/// each group of lanes fetched them again from memory (BENCHMARKS.md, "Weights in blocks"). The tiled kernels'
/// workgroups read rows of every channel, so they keep one block of all M rounded up to 8, `[K][Mpad]`.
public struct GEMMWeights: Sendable, Equatable {
    /// Output channels per block (a multiple of 8).
    public let rows: Int
    /// M rounded up to a whole block.
    public let paddedOutputs: Int
    public let outputs: Int
    public let reduction: Int

    /// The layout the kernels of `config` read.
    public init(outputs: Int, reduction: Int, config: KernelConfig) {
        self =
            config.strategy == .sharedMemoryTiled
            ? .oneBlock(outputs: outputs, reduction: reduction) : .registerTiled(outputs: outputs, reduction: reduction)
    }

    /// Blocks of ``RegisterTiles/weightBlock`` channels: the register-tiled kernels' layout (pointwise and conv2d,
    /// Winograd's products).
    public static func registerTiled(outputs: Int, reduction: Int) -> GEMMWeights {
        GEMMWeights(outputs: outputs, reduction: reduction, rows: RegisterTiles.weightBlock)
    }

    /// One block of every channel, `[K][Mpad]` with Mpad = M rounded up to 8: the tiled kernels' layout.
    public static func oneBlock(outputs: Int, reduction: Int) -> GEMMWeights {
        GEMMWeights(outputs: outputs, reduction: reduction, rows: Grid.roundUp(outputs, to: 8))
    }

    /// Blocks of `rows` channels (a multiple of 8).
    public init(outputs: Int, reduction: Int, rows: Int) {
        precondition(rows > 0 && rows % 8 == 0, "a block of weights is a multiple of 8 channels")
        self.outputs = outputs
        self.reduction = reduction
        self.rows = rows
        paddedOutputs = Grid.roundUp(outputs, to: rows)
    }

    /// Floats of the packed matrix.
    public var count: Int { paddedOutputs * reduction }

    /// Packs `weights`, `[M][K]`.
    public func pack(_ weights: [Float]) -> [Float] {
        precondition(
            weights.count == outputs * reduction,
            "weights hold \(weights.count) values, expected \(outputs) x \(reduction)")
        var packed = [Float](repeating: 0, count: count)
        for row in 0..<outputs {
            let start = row / rows * reduction * rows + row % rows
            for column in 0..<reduction { packed[start + column * rows] = weights[row * reduction + column] }
        }
        return packed
    }
}

/// How the register-tiled GEMMs (Shaders/conv2d.comp, Shaders/pointwise.comp) cover an `outputs` x `columns` result:
/// each invocation a tile of `rows` output channels by 4 columns, a workgroup's `local` invocations sharing their
/// channels over consecutive columns.
public struct RegisterTiles: Sendable {
    /// Output channels per invocation: 16 where they divide M, else 8; 32 where they divide M, the kernel allows it
    /// and the weights are shared by shuffles (each gathered input then feeds more multiply-adds; why 32 is kept to
    /// shared weights: BENCHMARKS.md, "32 output channels per invocation").
    public let rows: Int
    /// Invocations per workgroup (local size x).
    public let local: Int
    /// Workgroups: groups of ``rows`` output channels on x, groups of columns on y. Row groups first, so that the
    /// workgroups reading one block of input columns run one after another and find it in cache on devices that run
    /// them in order, x fastest (BENCHMARKS.md, "Weights in blocks, row groups first").
    public let groups: (x: Int, y: Int, z: Int)

    /// Output channels per block of the packed weights (``GEMMWeights``): the largest tile's, so that every tile's
    /// weights lie in one block.
    public static let weightBlock = 32

    /// `maxRows` (16 or 32) caps ``rows``.
    public init(outputs: Int, columns: Int, limits: DeviceLimits, maxRows: Int = 16) {
        let columnTiles = (columns + 3) / 4
        rows =
            limits.sharesFetchesAcrossSubgroup && maxRows >= 32 && outputs % 32 == 0
            ? 32 : outputs % 16 == 0 && maxRows >= 16 ? 16 : 8
        // As few workgroups of columns as 64 lanes allow, the tiles spread evenly over them (to whole groups of 8
        // lanes): 98 tiles (stage 4 at batch 8) take two workgroups of 56 lanes, not 64 and 34 idle.
        let columnGroups = (columnTiles + 63) / 64
        local = Grid.roundUp((columnTiles + columnGroups - 1) / columnGroups, to: 8)
        groups = ((outputs + rows - 1) / rows, (columnTiles + local - 1) / local, 1)
    }
}

/// The output side of a convolution or pooling window: floor((size + 2 padding - kernel) / stride) + 1.
public func windowOutputSize(_ size: Int, kernel: Int, stride: Int, padding: Int) -> Int {
    (size + 2 * padding - kernel) / stride + 1
}

extension Epilogue {
    /// "relu", "silu+res", ... for shape descriptions.
    public var summary: String { "\(activation)" + (hasResidual ? "+res" : "") }
}
