import Foundation
import Kernels
import NetworkGraph

/// Deterministic synthetic weights, the same on every machine and reproducible outside Swift
/// (Tools/make_fixtures.py), made to behave like a trained network's where the tests need it: activations stay
/// alive through every stage, the logits depend on the input, and every ResAtt layer's attention is peaked (a logit
/// spread of several units), so that an attention defect cannot hide behind near-uniform attention.
///
/// Each value is a hashed uniform number: for a parameter named `name`, let `h` be the 32-bit FNV-1a hash of the
/// UTF-8 bytes of `name` (offset basis 2166136261, prime 16777619); for k = 0 ..< count, with wrapping 64-bit
/// arithmetic (SplitMix64's finaliser),
///
///     z = (h << 32) + k + 0x9E3779B97F4A7C15
///     z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;  z = (z ^ (z >> 27)) * 0x94D049BB133111EB;  z = z ^ (z >> 31)
///     u[k] = 2 * Double(z >> 11) * 2^-53 - 1      (uniform in [-1, 1))
///
/// The value (computed in double precision, rounded to float32) is, by the name's suffix and the shape's rank:
///
/// | parameter | value |
/// |---|---|
/// | `running_mean` | 0.1 u sqrt(m) |
/// | `running_var` | (1 + 0.5 u^2) m |
/// | `weight`, rank 1 (BatchNorm) | f (1 + 0.25 u); f from the family's ``SyntheticGains`` (a residual branch's last BatchNorm: 0.1 for `bn3` of HyTra and MBConv, 0.05 for HyTra's `net.5`), 1 otherwise |
/// | `weight`, rank >= 2 (convolution, linear) | u sqrt(3 g / fanIn), fanIn = product of all dimensions but the first; g from the family's gains (12 for HyTra's `to_qkv`), else 1 for a rank-2 (linear) weight, 2 otherwise |
/// | `bias` | 0.1 u |
///
/// `m` is the BatchNorm's calibrated scale: the mean square (over batch, channels and pixels) of the BatchNorm's
/// input when the model runs the ``calibrationImages`` (a smooth image and a photo-like one), with every earlier
/// BatchNorm already calibrated (the CPU reference computes it in one pass, layer by layer;
/// ``init(calibratedFor:inputSize:)``). Like a trained network's statistics, this keeps each stage's activations near
/// unit scale whatever the architecture. Uncalibrated (``init(gains:)``), m = 1.
///
/// The small gains of the residual branches' last BatchNorms keep the network well conditioned on inputs unlike the
/// calibration images, as a trained network is: on photographs at 224 and 288 px, PyTorch's own float32 stays within
/// about 2e-5 of float64 under these weights (with gains 0.5 and 0.3, calibrated on the smooth image alone, it missed by
/// up to 0.25, and the engine's float32 by as much), while every ResAtt layer's attention stays peaked (a logit
/// spread of 2.4 to 5.5 at 64 px).
public struct SyntheticWeights: ParameterSource, Sendable {
    /// The calibrated mean square of each BatchNorm's input, by the BatchNorm's module name (`layer1.0.bn1`).
    public let batchNormScales: [String: Double]
    /// The family's gains for its residual branches and attention.
    public let gains: SyntheticGains

    /// Uncalibrated weights (every BatchNorm scale 1) with a family's gains.
    public init(gains: SyntheticGains) {
        batchNormScales = [:]
        self.gains = gains
    }

    /// Weights with these BatchNorm scales and gains.
    public init(batchNormScales: [String: Double], gains: SyntheticGains) {
        self.batchNormScales = batchNormScales
        self.gains = gains
    }

    /// Weights calibrated for `model` (see the type's documentation): the model runs the calibration batch,
    /// ``calibrationImages(size:)`` of side `inputSize`, on the CPU reference once per process, architecture and
    /// size; later calls reuse the scales. Weights calibrated at 64 px stay well conditioned at other sizes.
    public init(calibratedFor model: Model, inputSize: Int = calibrationSize) throws {
        gains = model.architecture.family.syntheticGains
        if let known = Self.cache.scales(model.architecture, inputSize) {
            batchNormScales = known
            return
        }
        batchNormScales = try Self.calibrate(
            model.graph(batch: 2, inputSize: inputSize), input: Self.calibrationImages(size: inputSize), gains: gains)
        Self.cache.store(batchNormScales, for: model.architecture, inputSize)
    }

    /// The calibration pass over a graph built for shapes only: runs `input` through the nodes in order on the CPU
    /// reference, and for each BatchNorm records the mean square of what reaches it (the operation before it run
    /// without it), every earlier BatchNorm already calibrated; then applies the calibrated BatchNorm, the residual
    /// and the activation to those values, the reference way, for the nodes after it.
    static func calibrate(_ graph: Graph, input: [Float], gains: SyntheticGains) throws -> [String: Double] {
        var scales: [String: Double] = [:]
        var values = [[Float]](repeating: [], count: graph.shapes.count)
        values[graph.input] = input
        for node in graph.nodes {
            let inputs = node.inputs.map { values[$0] }
            guard let norm = node.op.batchNorm else {
                let store = try SyntheticWeights(batchNormScales: scales, gains: gains).store(for: node.op, in: graph)
                values[node.output] = CPUExecutor.evaluate(node.op, inputs: inputs, parameters: store)
                continue
            }
            let before = node.op.beforeNorm
            var store = try SyntheticWeights(batchNormScales: scales, gains: gains).store(for: before, in: graph)
            let raw = CPUExecutor.evaluate(before, inputs: [inputs[0]], parameters: store)
            let meanSquare = raw.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(raw.count, 1))
            scales[norm.name] = meanSquare > 0 && meanSquare.isFinite ? meanSquare : 1
            store = try SyntheticWeights(batchNormScales: scales, gains: gains).store(for: node.op, in: graph)
            let shape = graph.shapes[node.output]
            let bn = store.folded(norm, channels: shape.channels)
            values[node.output] = Epilogue.referenceApply(
                raw.map(Double.init), channels: shape.channels, pixels: shape.pixels, scale: bn.scale, shift: bn.shift,
                residual: inputs.count > 1 ? inputs[1] : nil, epilogue: node.op.epilogue)
        }
        return scales
    }

    /// The values of the parameters `op` reads, as declared in `graph`.
    private func store(for op: any GraphOperation, in graph: Graph) throws -> ParameterStore {
        let names = Set(op.parameterNames)
        return try ParameterStore(graph.declarations.filter { names.contains($0.name) }, source: self)
    }

    /// The side of the calibration image.
    public static let calibrationSize = 64

    /// The first calibration image, `[1, 3, 64, 64]`: ``smoothImage(size:variant:)`` at ``calibrationSize``.
    public static var calibrationImage: [Float] { smoothImage(size: calibrationSize) }

    /// The calibration batch, `[2, 3, size, size]`: ``smoothImage(size:variant:)``, then ``photoLikeImage(size:)``.
    public static func calibrationImages(size: Int = calibrationSize) -> [Float] {
        smoothImage(size: size) + photoLikeImage(size: size)
    }

    /// A `[1, 3, size, size]` image with what photographs have and a smooth image lacks: regions, a sharp edge and
    /// fine texture, of roughly unit scale as a normalised photograph is. With u = 224 x / size and v = 224 y / size
    /// for the pixel in column x and row y (so the picture is the same at every size),
    ///
    ///     red   = 1.2 (sin(u / 23) cos(v / 31) + 0.35 sin((u + 2 v) / 5))
    ///     green = 1.2 (sin((u - v) / 41) + 0.25 cos(u v / 900))
    ///     blue  = 1.2 ((1.2 inside the disc (u - 112)^2 + (v - 112)^2 < 75^2, else -0.8) + 0.3 sin(v / 3))
    public static func photoLikeImage(size: Int) -> [Float] {
        var values = [Float](repeating: 0, count: 3 * size * size)
        let step = 224 / Double(size)
        for y in 0..<size {
            for x in 0..<size {
                let (u, v) = (Double(x) * step, Double(y) * step)
                let disc: Double = (u - 112) * (u - 112) + (v - 112) * (v - 112) < 75 * 75 ? 1.2 : -0.8
                let red = sin(u / 23) * cos(v / 31) + 0.35 * sin((u + 2 * v) / 5)
                let green = sin((u - v) / 41) + 0.25 * cos(u * v / 900)
                let blue = disc + 0.3 * sin(v / 3)
                for (channel, value) in [red, green, blue].enumerated() {
                    values[(channel * size + y) * size + x] = Float(1.2 * value)
                }
            }
        }
        return values
    }

    /// A `[1, 3, size, size]` image, x[k] = 1.5 sin(0.001 k) + 0.5 cos(0.0137 k) over the flat index k: smooth, of
    /// roughly unit variance, as a normalised photograph is.
    public static func smoothImage(size: Int, variant: Int = 0) -> [Float] {
        let shift = Double(variant)
        return (0..<(3 * size * size)).map { (k: Int) -> Float in
            let x = Double(k)
            let value: Double = sin(x * 0.001 + shift * 0.7) * 1.5 + cos(x * 0.0137 + shift * 1.3) * 0.5
            return Float(value)
        }
    }

    public func values(for name: String, shape: [Int]) throws -> [Float] {
        let count = shape.reduce(1, *)
        let module = name.split(separator: ".").dropLast().joined(separator: ".")
        let m = batchNormScales[module] ?? 1
        let (multiplier, offset, squared): (Double, Double, Bool)
        if name.hasSuffix("running_mean") {
            (multiplier, offset, squared) = (0.1 * m.squareRoot(), 0, false)
        } else if name.hasSuffix("running_var") {
            (multiplier, offset, squared) = (0.5 * m, m, true)
        } else if name.hasSuffix("weight") && shape.count == 1 {
            let f = gains.gain(name, in: gains.batchNorm) ?? 1
            (multiplier, offset, squared) = (0.25 * f, f, false)
        } else if name.hasSuffix("weight") {
            let fanIn = shape.dropFirst().reduce(1, *)
            let gain: Double = gains.gain(name, in: gains.weight) ?? (shape.count == 2 ? 1 : 2)
            (multiplier, offset, squared) = ((3 * gain / Double(max(fanIn, 1))).squareRoot(), 0, false)
        } else {
            (multiplier, offset, squared) = (0.1, 0, false)
        }
        let h = UInt64(Self.fnv1a(name)) << 32
        var values = [Float](repeating: 0, count: count)
        for k in 0..<count {
            let u = Self.uniform(h &+ UInt64(k))
            let v: Double = squared ? u * u : u
            values[k] = Float(offset + multiplier * v)
        }
        return values
    }

    /// SplitMix64's finaliser of `seed + 0x9E3779B97F4A7C15`, as a uniform Double in [-1, 1).
    static func uniform(_ seed: UInt64) -> Double {
        var z = seed &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return 2 * (Double(z >> 11) * 0x1p-53) - 1
    }

    /// 32-bit FNV-1a of the UTF-8 bytes.
    public static func fnv1a(_ text: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash
    }

    private static let cache = CalibrationCache()
}

/// Calibrated BatchNorm scales by architecture and calibration size, shared by every caller in the process.
private final class CalibrationCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: [String: Double]] = [:]

    func scales(_ architecture: Architecture, _ size: Int) -> [String: Double]? {
        lock.withLock { entries["\(architecture.text)@\(size)"] }
    }
    func store(_ scales: [String: Double], for architecture: Architecture, _ size: Int) {
        lock.withLock { entries["\(architecture.text)@\(size)"] = scales }
    }
}
