import Foundation
import VulkanCompute

/// How the register-tiled families run a 3x3, stride-1 convolution: Winograd's minimal filtering F(2x2, 3x3) (Lavin
/// and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each 2x2 tile of the output becomes 16
/// products of transformed 4x4 input patches and transformed 3x3 filters, so the convolution is 16 GEMMs with a
/// reduction of C (in place of one GEMM with a reduction of 9C over four times the columns): 16 multiply-adds where
/// the direct convolution does 36, 2.25x fewer.
///
/// Three dispatches: the input transform (Shaders/winograd_input.comp), the 16 GEMMs as one pointwise dispatch over
/// workgroup z (Shaders/pointwise.comp with PRODUCTS), the output transform with the fused epilogue
/// (Shaders/winograd_output.comp). The filters are transformed once, when the weights are packed.
///
/// The transforms add and subtract (B, A) and halve (G) values, so the result differs from the direct sum by
/// float32 rounding only; `bossnet validate` measures it against the CPU reference at every layer shape.
public struct Winograd: Hashable, Sendable {
    public let conv: Conv2D

    /// The Winograd form of `conv`, or `nil` unless it is 3x3 with stride 1 (any padding).
    public init?(_ conv: Conv2D) {
        guard conv.kernelSize == 3, conv.stride == 1 else { return nil }
        self.conv = conv
    }

    /// Output tiles per row and per column: the output's sides halved, rounded up.
    public var tilesX: Int { (conv.outWidth + 1) / 2 }
    public var tilesY: Int { (conv.outHeight + 1) / 2 }
    /// Tiles per image.
    public var tiles: Int { tilesX * tilesY }
    /// The GEMMs' columns: every tile of the batch.
    public var columns: Int { conv.batch * tiles }
    /// Columns rounded up to 4, so that the GEMMs read four columns per fetch.
    public var paddedColumns: Int { Grid.roundUp(columns, to: 4) }
    /// Floats of the transformed input, `[16][C][paddedColumns]`.
    public var transformedCount: Int { 16 * conv.inChannels * paddedColumns }
    /// Floats of the GEMMs' products, `[16][M][paddedColumns]`.
    public var productCount: Int { 16 * conv.outChannels * paddedColumns }
    /// How each of the 16 GEMMs' weight matrices is packed (as ``Pointwise`` reads them in the register-tiled
    /// families).
    var weightLayout: GEMMWeights {
        GEMMWeights(outputs: conv.outChannels, reduction: conv.inChannels, rows: RegisterTiles.weightBlock)
    }
    /// Floats of the packed, transformed weights: 16 GEMM weight matrices.
    public var weightCount: Int { 16 * weightLayout.count }

    /// The filters transformed, U = G g G^T for each (output, input) channel pair, where
    /// G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]], and packed as the GEMMs read them: for each of
    /// the 16 positions of U, its `[M][C]` matrix packed as ``GEMMWeights`` says.
    /// `weights` is OIHW.
    public func packWeights(_ weights: [Float]) -> [Float] {
        let (m, c) = (conv.outChannels, conv.inChannels)
        precondition(weights.count == m * c * 9, "weights hold \(weights.count) values, expected \(m) x \(c) x 3 x 3")
        let g: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        var positions = [[Float]](repeating: [Float](repeating: 0, count: m * c), count: 16)
        for pair in 0..<(m * c) {
            let filter = weights[(pair * 9)..<(pair * 9 + 9)].map(Double.init)
            for i in 0..<4 {
                for j in 0..<4 {
                    var sum = 0.0
                    for ky in 0..<3 {
                        for kx in 0..<3 { sum += g[i][ky] * filter[ky * 3 + kx] * g[j][kx] }
                    }
                    positions[4 * i + j][pair] = Float(sum)
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
            kernel: Self.name + "_input", specialization: [0: .uint(UInt32(lanes))],
            pushConstants: InputPushConstants(
                channels: UInt32(c.inChannels), height: UInt32(c.height), width: UInt32(c.width),
                padding: UInt32(c.padding), tilesX: UInt32(tilesX), tiles: UInt32(tiles), columns: UInt32(columns),
                paddedColumns: UInt32(paddedColumns)),
            groups: Grid.flat(items: c.inChannels * paddedColumns, localSize: lanes))
        let gemm = Pointwise(batch: 1, inChannels: c.inChannels, pixels: paddedColumns, outChannels: c.outChannels)
            .launch(config.limits, products: 16)
        let outputTransform = KernelLaunch(
            kernel: Self.name + "_output",
            specialization: [
                0: .uint(UInt32(lanes)), 1: .uint(c.epilogue.activation.rawValue), 2: .bool(c.epilogue.hasResidual),
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
    /// The stem of its two transform kernels' names (`winograd_input`, `winograd_output`); it has no op of its own in
    /// graphs (it is how ``Conv2D`` runs).
    public static let name = "winograd"
}
