import Foundation
import VulkanCompute

/// The specialization constants of Shaders/winograd_output.comp, by name.
private typealias OutputSpec = ShaderConstants.winograd_output

/// How the register-tiled families run a 3x3, stride-1 convolution: Winograd's minimal filtering F(2x2, 3x3) or
/// F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each ``tile`` x ``tile``
/// tile of the output becomes ``positions`` products of transformed input patches (``tile`` + 2 on a side) and
/// transformed 3x3 filters, so the convolution is ``positions`` GEMMs with a reduction of C: per output and input
/// channel, 4 multiply-adds for F(2x2, 3x3) and 2.25 for F(4x4, 3x3), where the direct convolution does 9.
///
/// Three dispatches: the input transform (Shaders/winograd_input.comp), the GEMMs as one pointwise dispatch over
/// workgroup z (Shaders/pointwise.comp with PRODUCTS), the output transform with the fused epilogue
/// (Shaders/winograd_output.comp). The filters are transformed once, when the weights are packed.
///
/// F(4x4, 3x3) runs where an image has at least 16 output tiles of 4x4 (outputs of 13x13 and more: BossNet's stages
/// 1-3); on 7x7 (stage 4) its GEMMs would have 4 columns an image and their lanes would idle (at batch 1 it took twice
/// F(2x2, 3x3)'s time), so F(2x2, 3x3) runs. The choice depends on the image's size, not on the batch: an image's
/// outputs are the same bits whatever batch it runs in, however a session splits it into submissions.
/// The transforms' coefficients are small integers and fractions (1/4, 1/6, 1/12, 1/24 in G), so the result differs
/// from the direct sum by float32 rounding only; `bossnet validate` measures it against the CPU reference at every
/// layer shape.
public struct Winograd: Hashable, Sendable {
    public let conv: Conv2D
    /// Output tile side: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3).
    public let tile: Int

    /// The Winograd form of `conv`, or `nil` unless it is 3x3 with stride 1 (any padding): F(4x4, 3x3) where an image
    /// has at least ``minimumLargeTilesPerImage`` tiles of 4x4, else F(2x2, 3x3).
    public init?(_ conv: Conv2D) {
        guard conv.kernelSize == 3, conv.stride == 1 else { return nil }
        self.conv = conv
        let largeTiles = ((conv.outWidth + 3) / 4) * ((conv.outHeight + 3) / 4)
        tile = largeTiles >= Self.minimumLargeTilesPerImage ? 4 : 2
    }

    /// The fewest 4x4 tiles an image needs for F(4x4, 3x3) to run.
    public static let minimumLargeTilesPerImage = 16

    /// Side of the transformed patches: ``tile`` + 2.
    public var patch: Int { tile + 2 }
    /// Values of a transformed patch, and GEMMs: ``patch`` squared (16 or 36).
    public var positions: Int { patch * patch }
    /// Output tiles per row and per column: the output's sides over ``tile``, rounded up.
    public var tilesX: Int { (conv.outWidth + tile - 1) / tile }
    public var tilesY: Int { (conv.outHeight + tile - 1) / tile }
    /// Tiles per image.
    public var tiles: Int { tilesX * tilesY }
    /// The GEMMs' columns: every tile of the batch.
    public var columns: Int { conv.batch * tiles }
    /// Columns rounded up to 4, so that the GEMMs read four columns per fetch.
    public var paddedColumns: Int { Grid.roundUp(columns, to: 4) }
    /// Floats of the transformed input, `[positions][C][paddedColumns]`.
    public var transformedCount: Int { positions * conv.inChannels * paddedColumns }
    /// Floats of the GEMMs' products, `[positions][M][paddedColumns]`.
    public var productCount: Int { positions * conv.outChannels * paddedColumns }
    /// How each of the GEMMs' weight matrices is packed (as ``Pointwise`` reads them in the register-tiled
    /// families).
    var weightLayout: GEMMWeights { .registerTiled(outputs: conv.outChannels, reduction: conv.inChannels) }
    /// Floats of the packed, transformed weights: ``positions`` GEMM weight matrices.
    public var weightCount: Int { positions * weightLayout.count }

    /// G, ``patch`` x 3: the filter transform.
    private var g: [[Double]] { tile == 2 ? Self.g2 : Self.g4 }
    private static let g2: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
    private static let g4: [[Double]] = [
        [0.25, 0, 0], [-1 / 6.0, -1 / 6.0, -1 / 6.0], [-1 / 6.0, 1 / 6.0, -1 / 6.0],
        [1 / 24.0, 1 / 12.0, 1 / 6.0], [1 / 24.0, -1 / 12.0, 1 / 6.0], [0, 0, 1],
    ]

    /// The filters transformed, U = G g G^T for each (output, input) channel pair, and packed as the GEMMs read them:
    /// for each of the ``positions`` of U, its `[M][C]` matrix packed as ``GEMMWeights`` says. `weights` is OIHW.
    public func packWeights(_ weights: [Float]) -> [Float] {
        let (m, c) = (conv.outChannels, conv.inChannels)
        precondition(weights.count == m * c * 9, "weights hold \(weights.count) values, expected \(m) x \(c) x 3 x 3")
        let (g, patch) = (g, patch)
        var positions = [[Float]](repeating: [Float](repeating: 0, count: m * c), count: self.positions)
        for pair in 0..<(m * c) {
            let filter = weights[(pair * 9)..<(pair * 9 + 9)].map(Double.init)
            for i in 0..<patch {
                for j in 0..<patch {
                    var sum = 0.0
                    for ky in 0..<3 {
                        for kx in 0..<3 { sum += g[i][ky] * filter[ky * 3 + kx] * g[j][kx] }
                    }
                    positions[patch * i + j][pair] = Float(sum)
                }
            }
        }
        return positions.flatMap(weightLayout.pack)
    }

    struct InputPushConstants: BitwiseCopyable {
        var channels, height, width, padding, tilesX, tiles, columns, paddedColumns: UInt32
    }

    struct OutputPushConstants: BitwiseCopyable {
        var outChannels, outHeight, outWidth, tilesX, tiles, columns, paddedColumns: UInt32
    }

    /// The three dispatches: `input` to `transformed` (``transformedCount`` floats), the GEMMs with the weights packed
    /// by ``packWeights(_:)`` to `products` (``productCount`` floats), then `products` with the affine, the residual
    /// (when the epilogue has one) to `output`.
    func steps<Resource>(
        input: Resource, weights: Resource, affine: Resource, residual: Resource?, output: Resource,
        transformed: Resource, products: Resource, config: KernelConfig
    ) -> [KernelStep<Resource>] {
        let c = conv
        let lanes = config.lanes
        let inputTransform = KernelLaunch(
            kernel: tile == 4 ? KernelName.winograd_input_f4 : KernelName.winograd_input,
            specialization: [ShaderConstants.winograd_input.LOCAL_SIZE_X: .uint(UInt32(lanes))],
            pushConstants: InputPushConstants(
                channels: UInt32(c.inChannels), height: UInt32(c.height), width: UInt32(c.width),
                padding: UInt32(c.padding), tilesX: UInt32(tilesX), tiles: UInt32(tiles), columns: UInt32(columns),
                paddedColumns: UInt32(paddedColumns)),
            groups: Grid.flat(items: c.inChannels * paddedColumns, localSize: lanes))
        let gemm = Pointwise(batch: 1, inChannels: c.inChannels, pixels: paddedColumns, outChannels: c.outChannels)
            .launch(config.limits, products: positions)
        let outputTransform = KernelLaunch(
            kernel: tile == 4 ? KernelName.winograd_output_f4 : KernelName.winograd_output,
            specialization: [
                OutputSpec.LOCAL_SIZE_X: .uint(UInt32(lanes)),
                OutputSpec.ACTIVATION: .uint(c.epilogue.activation.rawValue),
                OutputSpec.HAS_RESIDUAL: .bool(c.epilogue.hasResidual),
            ],
            pushConstants: OutputPushConstants(
                outChannels: UInt32(c.outChannels), outHeight: UInt32(c.outHeight), outWidth: UInt32(c.outWidth),
                tilesX: UInt32(tilesX), tiles: UInt32(tiles), columns: UInt32(columns),
                paddedColumns: UInt32(paddedColumns)),
            groups: Grid.flat(items: c.outChannels * columns, localSize: lanes))
        return [
            KernelStep(inputTransform, [.readImage(input, .r32Float), .write(transformed)]).on(config.dataPath),
            KernelStep(
                gemm,
                [
                    .read(transformed, .rgba32Float), .readImage(weights, .rgba32Float), .readSmall(affine),
                    .read(transformed), .write(products),
                ]
            ).on(config.dataPath),
            KernelStep(
                outputTransform,
                [.readImage(products, .r32Float), .readSmall(affine), .read(residual ?? products), .write(output)]
            ).on(config.dataPath),
        ]
    }
}

extension Winograd: KernelOperation {
    /// The stem of its transform kernels' names (`winograd_input`, `winograd_output`, and their `_f4` variants); it has
    /// no op of its own in graphs (it is how ``Conv2D`` runs).
    public static let name = "winograd"
}
