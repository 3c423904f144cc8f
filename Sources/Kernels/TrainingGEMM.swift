import Foundation
import VulkanCompute

/// The specialization constants of Shaders/gemm_train.comp, by name.
private typealias GEMMSpec = ShaderConstants.gemm_train

/// Where the elements of one matrix operand of a ``TrainingGEMM`` live in its buffer. Element (i, k) of batch b, for
/// i along the operand's free dimension (m for A, n for B) and k along the reduction, is at
/// `base + i * free + (k / kInner) * outer + (k % kInner) * inner + (b / batchInner) * batchOuter
///  + (b % batchInner) * batchInnerStride`. For the output C the reduction strides are unused and `free` is the
/// column stride.
public struct MatrixLayout: Hashable, Sendable {
    public var free: Int
    public var inner: Int
    public var outer: Int
    public var batchInnerStride: Int
    public var batchOuter: Int
    public var base: Int

    public init(
        free: Int, inner: Int = 0, outer: Int = 0, batchInnerStride: Int = 0, batchOuter: Int = 0, base: Int = 0
    ) {
        (self.free, self.inner, self.outer) = (free, inner, outer)
        (self.batchInnerStride, self.batchOuter, self.base) = (batchInnerStride, batchOuter, base)
    }
}

/// A strided, batched matrix product: `C[b] = alpha * A[b] B[b]` (plus what C holds, where `accumulate`), with every
/// operand addressed through a ``MatrixLayout`` so that transposed views, per-head slices and reductions over images
/// and pixels at once need no copies. The training kernels' weight and input gradients are such products.
/// Kernel: Shaders/gemm_train.comp.
public struct TrainingGEMM: Hashable, Sendable {
    public var m: Int
    public var n: Int
    public var k: Int
    /// The reduction's inner extent: k splits as (k / kInner, k % kInner).
    public var kInner: Int
    public var batch: Int
    /// The batch's inner extent: b splits as (b / batchInner, b % batchInner).
    public var batchInner: Int
    public var a: MatrixLayout
    public var b: MatrixLayout
    /// C's layout: `free` is the column (n) stride, `inner` the row (m) stride.
    public var c: MatrixLayout
    public var alpha: Float = 1
    /// Adds to what C holds instead of overwriting it (a gradient with several contributions).
    public var accumulate = false

    public init(
        m: Int, n: Int, k: Int, kInner: Int? = nil, batch: Int = 1, batchInner: Int? = nil, a: MatrixLayout,
        b: MatrixLayout, c: MatrixLayout, alpha: Float = 1, accumulate: Bool = false
    ) {
        (self.m, self.n, self.k, self.kInner) = (m, n, k, max(kInner ?? k, 1))
        (self.batch, self.batchInner) = (batch, max(batchInner ?? batch, 1))
        (self.a, self.b, self.c, self.alpha, self.accumulate) = (a, b, c, alpha, accumulate)
    }

    private func offset(_ layout: MatrixLayout, free i: Int, reduction r: Int, batch z: Int) -> Int {
        layout.base + i * layout.free + (r / kInner) * layout.outer + (r % kInner) * layout.inner
            + (z / batchInner) * layout.batchOuter + (z % batchInner) * layout.batchInnerStride
    }

    /// The index of C(row, column) of batch `z`.
    public func outputIndex(row: Int, column: Int, batch z: Int) -> Int {
        c.base + row * c.inner + column * c.free + (z / batchInner) * c.batchOuter
            + (z % batchInner) * c.batchInnerStride
    }

    /// The CPU reference, in Double: `c` with every output element replaced (or added to).
    public func reference(a aValues: [Double], b bValues: [Double], c cValues: [Double]) -> [Double] {
        var result = cValues
        for z in 0..<batch {
            for row in 0..<m {
                for column in 0..<n {
                    var sum = 0.0
                    for r in 0..<k {
                        sum +=
                            aValues[offset(a, free: row, reduction: r, batch: z)]
                            * bValues[offset(b, free: column, reduction: r, batch: z)]
                    }
                    let index = outputIndex(row: row, column: column, batch: z)
                    result[index] = Double(alpha) * sum + (accumulate ? cValues[index] : 0)
                }
            }
        }
        return result
    }

    /// The kernel's push constants; mirrors `Push` in Shaders/gemm_train.comp.
    struct PushConstants: BitwiseCopyable {
        struct Strides: BitwiseCopyable {
            var free, inner, outer, batchInner, batchOuter, base: UInt32
            init(_ layout: MatrixLayout) {
                (free, inner, outer) = (UInt32(layout.free), UInt32(layout.inner), UInt32(layout.outer))
                (batchInner, batchOuter) = (UInt32(layout.batchInnerStride), UInt32(layout.batchOuter))
                base = UInt32(layout.base)
            }
        }
        var m, n, k, kInner, batchInner: UInt32
        var alpha: Float
        var a, b: Strides
        var cRow, cColumn, cBatchInner, cBatchOuter, cBase: UInt32
    }

    /// Reduction steps one dispatch may take: its invocations loop about K / 4 times, and lavapipe ends an
    /// invocation after 65,535 iterations.
    public static let maxReduction = 200_000

    /// How the kernel fetches an operand (A_FETCH / B_FETCH in Shaders/gemm_train.comp).
    public enum Fetch: UInt32, Sendable {
        /// One value per fetch: any strides.
        case scalar = 0
        /// Four consecutive reduction steps of one row or column in one vec4.
        case alongReduction = 1
        /// Four consecutive rows or columns at one reduction step in one vec4.
        case alongFree = 2
    }

    /// The widest fetch `layout` allows for an operand `extent` rows (or columns) long: a vec4 must be four whole
    /// consecutive values, so every stride the fetch steps by four at a time (and the base) is a multiple of 4.
    private func fetch(_ layout: MatrixLayout, extent: Int) -> Fetch {
        let outers = k / kInner, batchOuters = (batch + batchInner - 1) / batchInner
        let aligned =
            layout.base % 4 == 0 && (outers <= 1 || layout.outer % 4 == 0)
            && (batchInner <= 1 || layout.batchInnerStride % 4 == 0)
            && (batchOuters <= 1 || layout.batchOuter % 4 == 0)
        guard aligned else { return .scalar }
        if layout.inner == 1 && kInner % 4 == 0 && (extent == 1 || layout.free % 4 == 0) { return .alongReduction }
        if layout.free == 1 && extent % 4 == 0 && (kInner == 1 || layout.inner % 4 == 0) { return .alongFree }
        return .scalar
    }

    /// The same product with a batch of single columns (or rows) run as one matrix whose columns (rows) are the
    /// batch's, where the other operand is the same for every batch item: a 1x1 convolution over 1x1 images is
    /// `batch` matrix-vector products, but one matrix product.
    var batchFolded: TrainingGEMM {
        guard batch > 1, batchInner == batch else { return self }
        var folded = self
        if n == 1 && a.batchInnerStride == 0 {
            (folded.n, folded.b.free, folded.c.free) = (batch, b.batchInnerStride, c.batchInnerStride)
        } else if m == 1 && b.batchInnerStride == 0 {
            (folded.m, folded.a.free, folded.c.inner) = (batch, a.batchInnerStride, c.batchInnerStride)
        } else {
            return self
        }
        (folded.batch, folded.batchInner) = (1, 1)
        (folded.a.batchInnerStride, folded.b.batchInnerStride, folded.c.batchInnerStride) = (0, 0, 0)
        return folded
    }

    /// How the kernel fetches A and B: four values at a time where their layouts allow.
    public var fetches: (a: Fetch, b: Fetch) { (fetch(a, extent: m), fetch(b, extent: n)) }

    /// The dispatches: A and B read, C written (read too where ``accumulate``), all float32; A and B through texel
    /// views where they fit (each planner and runner turns the steps to storage buffers where they do not, or where
    /// its family reads storage buffers). A reduction longer than ``maxReduction`` runs as several products over whole
    /// ranges of its outer part (images, in a weight gradient), each after the first adding to C.
    public func steps<Resource>(a aBuffer: Resource, b bBuffer: Resource, c cBuffer: Resource) -> [KernelStep<Resource>]
    {
        let folded = batchFolded
        guard folded == self else { return folded.steps(a: aBuffer, b: bBuffer, c: cBuffer) }
        let outer = k / kInner, perDispatch = max(1, Self.maxReduction / kInner)
        precondition(
            k <= Self.maxReduction || (outer * kInner == k && kInner <= Self.maxReduction),
            "gemm_train: a reduction of \(k) (inner part \(kInner)) passes what one dispatch may loop")
        guard k > Self.maxReduction else { return [dispatch(a: aBuffer, b: bBuffer, c: cBuffer)] }
        return stride(from: 0, to: outer, by: perDispatch).map { first in
            var part = self
            part.k = min(perDispatch, outer - first) * kInner
            part.a.base += first * a.outer
            part.b.base += first * b.outer
            part.accumulate = accumulate || first > 0
            return part.dispatch(a: aBuffer, b: bBuffer, c: cBuffer)
        }
    }

    private func dispatch<Resource>(a aBuffer: Resource, b bBuffer: Resource, c cBuffer: Resource) -> KernelStep<
        Resource
    > {
        let push = PushConstants(
            m: UInt32(m), n: UInt32(n), k: UInt32(k), kInner: UInt32(kInner), batchInner: UInt32(batchInner),
            alpha: alpha, a: .init(a), b: .init(b), cRow: UInt32(c.inner), cColumn: UInt32(c.free),
            cBatchInner: UInt32(c.batchInnerStride), cBatchOuter: UInt32(c.batchOuter), cBase: UInt32(c.base))
        // Register tiles of 16 x 4 outputs (TILE_M x TILE_N in the shader).
        var groups = Grid.flat(items: ((m + 15) / 16) * ((n + 3) / 4), localSize: 64)
        groups.z = batch
        let (aFetch, bFetch) = fetches
        let vectors = aFetch != .scalar && bFetch != .scalar
        let launch = KernelLaunch(
            kernel: vectors ? KernelName.gemm_train_vec4 : KernelName.gemm_train,
            specialization: [
                GEMMSpec.LOCAL_SIZE_X: .uint(64), GEMMSpec.ACCUMULATE: .uint(accumulate ? 1 : 0),
                GEMMSpec.A_FETCH: .uint(aFetch.rawValue), GEMMSpec.B_FETCH: .uint(bFetch.rawValue),
            ],
            pushConstants: push, groups: groups)
        let output: KernelBinding<Resource> = accumulate ? .readWrite(cBuffer) : .writeFloat32(cBuffer)
        guard !vectors else {
            return KernelStep(launch, [.readImage(aBuffer, .rgba32Float), .readImage(bBuffer, .rgba32Float), output])
        }
        return KernelStep(
            launch,
            [
                .readFloat32(aBuffer, aFetch == .scalar ? .r32Float : .rgba32Float),
                .readFloat32(bBuffer, bFetch == .scalar ? .r32Float : .rgba32Float), output,
            ])
    }
}

extension TrainingGEMM: KernelOperation {
    public static let name = "gemm_train"
}

// MARK: - Check

extension TrainingGEMM {
    /// The elements each operand's layout can reach, plus one: the size of a buffer that holds it.
    private func extent(_ layout: MatrixLayout, free: Int, reduction: Int) -> Int {
        offset(layout, free: free - 1, reduction: reduction - 1, batch: batch - 1) + 1
    }

    /// Compares the kernel with its reference on random operands; C starts random, so an element the kernel should
    /// leave alone and one it should add to are checked too.
    public func check() -> KernelCheck {
        KernelCheck(op: Self.name, shape: "\(batch)x \(m)x\(n)x\(k)\(accumulate ? " accumulate" : "")") {
            runner, random in
            let aValues = random.floats(extent(a, free: m, reduction: k))
            let bValues = random.floats(extent(b, free: n, reduction: k))
            let cValues = random.floats(outputIndex(row: m - 1, column: n - 1, batch: batch - 1) + 1)
            let cBuffer = try runner.inputOutput(cValues)
            runner.add(steps(a: try runner.input(aValues), b: try runner.input(bValues), c: cBuffer))
            try runner.run()
            let expected = runner.reference(reading: [aValues, bValues, cValues]) {
                reference(a: aValues.map(Double.init), b: bValues.map(Double.init), c: cValues.map(Double.init))
                    .map(Float.init)
            }
            return Comparison(try runner.read(cBuffer), expected)
        }
    }
}

// MARK: - Transposed planes

/// A batch of matrices transposed, `y[z][c][r] = x[base + (z * rows + r) * columns + c]`: the per-image channel planes
/// of a stage whose planes are no multiple of 4 pixels (7x7), turned pixel-major so that the training products fetch
/// four channels at a time instead of one value. Kernel: Shaders/transpose.comp.
public struct TransposedPlanes: Hashable, Sendable {
    public var batch: Int
    public var rows: Int
    public var columns: Int
    /// The offset of the first matrix in `x`.
    public var base: Int

    public init(batch: Int, rows: Int, columns: Int, base: Int = 0) {
        (self.batch, self.rows, self.columns, self.base) = (batch, rows, columns, base)
    }

    /// Mirrors `Push` in Shaders/transpose.comp.
    struct PushConstants: BitwiseCopyable { var batch, rows, columns, base: UInt32 }

    public func steps<Resource>(_ x: Resource, into y: Resource) -> [KernelStep<Resource>] {
        // Rows along x, each column a workgroup row, each matrix a workgroup layer.
        precondition(columns <= 65535 && batch <= 65535, "transpose: \(batch) matrices of \(columns) columns")
        let launch = KernelLaunch(
            kernel: KernelName.transpose, specialization: [ShaderConstants.transpose.LOCAL_SIZE_X: .uint(64)],
            pushConstants: PushConstants(
                batch: UInt32(batch), rows: UInt32(rows), columns: UInt32(columns), base: UInt32(base)),
            groups: ((rows + 63) / 64, columns, batch))
        return [KernelStep(launch, [.readFloat32(x), .writeFloat32(y)])]
    }

    /// The reference: `x` transposed, matrix by matrix.
    public func reference(_ x: [Float]) -> [Float] {
        var y = [Float](repeating: 0, count: batch * rows * columns)
        for z in 0..<batch {
            for r in 0..<rows {
                for c in 0..<columns { y[(z * columns + c) * rows + r] = x[base + (z * rows + r) * columns + c] }
            }
        }
        return y
    }

    /// Compares the kernel with its reference on random values.
    public func check() -> KernelCheck {
        KernelCheck(op: "transpose", shape: "\(batch)x \(rows)x\(columns) from \(base)") { runner, random in
            let x = random.floats(base + batch * rows * columns)
            let y = try runner.output(batch * rows * columns)
            runner.add(steps(try runner.input(x), into: y))
            try runner.run()
            return Comparison(try runner.read(y), reference(x))
        }
    }
}
