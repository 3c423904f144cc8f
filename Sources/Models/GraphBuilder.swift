import Foundation
import Kernels
import NetworkGraph

/// Builds a ``Graph`` layer by layer the way the PyTorch model is written, declaring every parameter by its
/// state-dict name, folding each BatchNorm into the operation before it and fusing activations and residual adds
/// into the operation that produces them.
struct GraphBuilder {
    private(set) var graph: Graph
    private(set) var declarations: [ParameterDeclaration] = []
    let source: any ParameterSource
    let batch: Int
    /// When calibrating synthetic weights: every tensor's value so far on the calibration input (CPU reference).
    private var calibrationValues: [[Float]]?
    /// When calibrating: the mean square of each BatchNorm's input, by module name (see ``SyntheticWeights``).
    private(set) var calibratedScales: [String: Double] = [:]
    /// BatchNorm's epsilon (PyTorch's default).
    static let epsilon = 1e-5

    /// A builder taking weights from `source`; with `calibrationInput`, one that runs that input through each node on
    /// the CPU reference as it adds it and calibrates each BatchNorm of ``SyntheticWeights`` on what reaches it.
    init(inputChannels: Int, inputSize: Int, batch: Int, source: any ParameterSource, calibrationInput: [Float]? = nil)
    {
        graph = Graph(input: TensorShape(batch: batch, channels: inputChannels, height: inputSize, width: inputSize))
        self.source = source
        self.batch = batch
        if let calibrationInput {
            precondition(
                calibrationInput.count == graph.shapes[graph.input].count, "calibration input has the wrong size")
            calibrationValues = [calibrationInput]
        }
    }

    mutating func build(_ architecture: Architecture) throws {
        switch architecture {
        case let .hytra(a): try buildHyTra(a)
        case let .mbconv(a): try buildMBConv(a)
        }
    }

    /// Adds a node to the graph and, when calibrating, records its output: `computed` when the caller already has it,
    /// else the CPU reference's.
    private mutating func add(
        _ name: String, _ op: Op, inputs: [TensorID], output shape: TensorShape, computed: [Float]? = nil
    ) -> TensorID {
        let id = graph.add(name, op, inputs: inputs, output: shape)
        if let values = calibrationValues {
            calibrationValues = values + [computed ?? CPUExecutor.evaluate(op, inputs: inputs.map { values[$0] })]
        }
        return id
    }

    /// When calibrating: runs `op` (the operation before the BatchNorm `norm`, without it) on the CPU reference, records
    /// the mean square of what reaches the BatchNorm, and returns those values; nil when not calibrating.
    private mutating func calibrate(_ norm: String, preNorm op: Op, input: TensorID) -> [Float]? {
        guard let values = calibrationValues else { return nil }
        let raw = CPUExecutor.evaluate(op, inputs: [values[input]])
        var sum = 0.0
        for value in raw { sum += Double(value) * Double(value) }
        let meanSquare = sum / Double(max(raw.count, 1))
        calibratedScales[norm] = meanSquare > 0 && meanSquare.isFinite ? meanSquare : 1
        return raw
    }

    /// When calibrating: the output of a node whose operation, before its BatchNorm, gave `raw`: the BatchNorm's scale
    /// and shift, the residual and the activation applied the reference way (not the whole operation run again).
    private func normalized(
        _ raw: [Float]?, bn: (scale: [Float], shift: [Float]), output: TensorShape, residual: TensorID?,
        epilogue: Epilogue
    ) -> [Float]? {
        guard let raw, let values = calibrationValues else { return nil }
        return Epilogue.referenceApply(
            raw.map(Double.init), channels: output.channels, pixels: output.pixels, scale: bn.scale,
            shift: bn.shift, residual: residual.map { values[$0] }, epilogue: epilogue)
    }

    func shape(_ tensor: TensorID) -> TensorShape { graph.shapes[tensor] }

    /// Declares a parameter and fetches its values.
    mutating func parameter(_ name: String, _ shape: [Int], trainable: Bool = true) throws -> [Float] {
        declarations.append(ParameterDeclaration(name: name, shape: shape, trainable: trainable))
        let source = calibrationValues == nil ? source : SyntheticWeights(batchNormScales: calibratedScales)
        let values = try source.values(for: name, shape: shape)
        guard values.count == shape.reduce(1, *) else {
            throw ArchitectureError("Parameter \(name) has \(values.count) values; the model needs shape \(shape).")
        }
        return values
    }

    /// Declares the five state-dict entries of a BatchNorm and returns it as a per-channel scale and shift.
    mutating func batchNorm(_ name: String, channels: Int) throws -> (scale: [Float], shift: [Float]) {
        let gamma = try parameter("\(name).weight", [channels])
        let beta = try parameter("\(name).bias", [channels])
        let mean = try parameter("\(name).running_mean", [channels], trainable: false)
        let variance = try parameter("\(name).running_var", [channels], trainable: false)
        declarations.append(ParameterDeclaration(name: "\(name).num_batches_tracked", shape: [], trainable: false))
        var scale = [Float](repeating: 0, count: channels), shift = scale
        for c in 0..<channels {
            let s = Double(gamma[c]) / (Double(variance[c]) + Self.epsilon).squareRoot()
            scale[c] = Float(s)
            shift[c] = Float(Double(beta[c]) - Double(mean[c]) * s)
        }
        return (scale, shift)
    }

    /// A convolution (`name.weight`, and `name.bias` when `bias`), optionally followed by the BatchNorm `norm`, an
    /// activation, and a residual add before the activation. Picks the kernel: depthwise when `groups` equals the
    /// channels, pointwise for 1x1 stride 1, dense otherwise.
    mutating func conv(
        _ x: TensorID, _ name: String, out: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
        depthwise: Bool = false,
        bias: Bool = false, norm: String? = nil, activation: Activation = .identity, residual: TensorID? = nil,
        node: String? = nil
    ) throws -> TensorID {
        let input = shape(x)
        let inPerGroup = depthwise ? 1 : input.channels
        let weights = try parameter("\(name).weight", [out, inPerGroup, kernel, kernel])
        let biasValues = bias ? try parameter("\(name).bias", [out]) : [Float](repeating: 0, count: out)
        let label = node ?? name
        /// The operation with this epilogue and these per-channel scale and shift, and its output's shape.
        func make(_ epilogue: Epilogue, scale: [Float], shift: [Float]) -> (Op, TensorShape) {
            let parameters = ConvParameters(weights: weights, scale: scale, shift: shift)
            if depthwise {
                precondition(out == input.channels, "\(name): depthwise keeps the channel count")
                let op = Depthwise(
                    batch: batch, channels: out, height: input.height, width: input.width, kernelSize: kernel,
                    stride: stride, padding: padding, epilogue: epilogue)
                return (
                    .depthwise(op, parameters),
                    TensorShape(batch: batch, channels: out, height: op.outHeight, width: op.outWidth)
                )
            }
            if kernel == 1 && stride == 1 && padding == 0 {
                let op = Pointwise(
                    batch: batch, inChannels: input.channels, pixels: input.pixels, outChannels: out, epilogue: epilogue
                )
                return (
                    .pointwise(op, parameters),
                    TensorShape(batch: batch, channels: out, height: input.height, width: input.width)
                )
            }
            let op = Conv2D(
                batch: batch, inChannels: input.channels, height: input.height, width: input.width, outChannels: out,
                kernelSize: kernel, stride: stride, padding: padding, epilogue: epilogue)
            return (
                .conv2d(op, parameters),
                TensorShape(batch: batch, channels: out, height: op.outHeight, width: op.outWidth)
            )
        }
        var scale = [Float](repeating: 1, count: out), shift = biasValues
        let epilogue = Epilogue(activation: activation, hasResidual: residual != nil)
        var computed: [Float]?
        if let norm {
            let raw = calibrate(norm, preNorm: make(Epilogue(), scale: scale, shift: shift).0, input: x)
            let bn = try batchNorm(norm, channels: out)
            for c in 0..<out {
                scale[c] = bn.scale[c]
                shift[c] = Float(Double(biasValues[c]) * Double(bn.scale[c]) + Double(bn.shift[c]))
            }
            computed = normalized(
                raw, bn: bn, output: make(epilogue, scale: scale, shift: shift).1, residual: residual,
                epilogue: epilogue)
        }
        let (op, output) = make(epilogue, scale: scale, shift: shift)
        return add(label, op, inputs: [x] + (residual.map { [$0] } ?? []), output: output, computed: computed)
    }

    /// The classifier: `name.weight` `[out, in]` and `name.bias`, on `[N, C, 1, 1]`.
    mutating func linear(_ x: TensorID, _ name: String, out: Int) throws -> TensorID {
        let input = shape(x)
        let weights = try parameter("\(name).weight", [out, input.channels])
        let bias = try parameter("\(name).bias", [out])
        let op = Pointwise.linear(batch: batch, inFeatures: input.channels, outFeatures: out)
        return add(
            name,
            .pointwise(op, ConvParameters(weights: weights, scale: [Float](repeating: 1, count: out), shift: bias)),
            inputs: [x], output: TensorShape(batch: batch, channels: out, height: 1, width: 1))
    }

    mutating func maxPool(_ x: TensorID, _ name: String) -> TensorID {
        let input = shape(x)
        let op = MaxPool(batch: batch, channels: input.channels, height: input.height, width: input.width)
        return add(
            name, .maxPool(op), inputs: [x],
            output: TensorShape(batch: batch, channels: input.channels, height: op.outHeight, width: op.outWidth))
    }

    mutating func avgPool(_ x: TensorID, _ name: String) -> TensorID {
        let input = shape(x)
        let op = AvgPool(batch: batch, channels: input.channels, height: input.height, width: input.width)
        return add(
            name, .avgPool(op), inputs: [x],
            output: TensorShape(batch: batch, channels: input.channels, height: op.outHeight, width: op.outWidth))
    }

    mutating func globalAvgPool(_ x: TensorID, _ name: String) -> TensorID {
        let input = shape(x)
        let op = GlobalAvgPool(batch: batch, channels: input.channels, pixels: input.pixels)
        return add(
            name, .globalAvgPool(op), inputs: [x],
            output: TensorShape(batch: batch, channels: input.channels, height: 1, width: 1))
    }

    /// Squeeze-excite with 1x1 convolutions `name.<fc1>` and `name.<fc2>` (with bias), followed by the residual add
    /// and activation of its block.
    mutating func squeezeExcite(
        _ x: TensorID, _ name: String, reduced: Int, inner: Activation, names: (String, String) = ("fc1", "fc2"),
        residual: TensorID?, activation: Activation
    ) throws -> TensorID {
        let input = shape(x)
        let c = input.channels
        let w1 = try parameter("\(name).\(names.0).weight", [reduced, c, 1, 1])
        let b1 = try parameter("\(name).\(names.0).bias", [reduced])
        let w2 = try parameter("\(name).\(names.1).weight", [c, reduced, 1, 1])
        let b2 = try parameter("\(name).\(names.1).bias", [c])
        let op = SqueezeExcite(
            batch: batch, channels: c, pixels: input.pixels, reduced: reduced, innerActivation: inner,
            epilogue: Epilogue(activation: activation, hasResidual: residual != nil))
        return add(
            name, .squeezeExcite(op, SqueezeExciteParameters(w1: w1, b1: b1, w2: w2, b2: b2)),
            inputs: [x] + (residual.map { [$0] } ?? []), output: input)
    }

    /// Attention over a to_qkv output, followed by the BatchNorm `norm` and an activation.
    mutating func attention(_ qkv: TensorID, _ name: String, heads: Int, norm: String, activation: Activation) throws
        -> TensorID
    {
        let input = shape(qkv)
        let channels = heads * Attention.headChannels
        precondition(
            input.channels == 3 * channels, "\(name): qkv has \(input.channels) channels, expected \(3 * channels)")
        let unnormalized = Attention(batch: batch, heads: heads, tokens: input.pixels)
        let raw = calibrate(
            norm,
            preNorm: .attention(
                unnormalized,
                AffineParameters(
                    scale: [Float](repeating: 1, count: channels),
                    shift: [Float](repeating: 0, count: channels))), input: qkv)
        let bn = try batchNorm(norm, channels: channels)
        let op = Attention(batch: batch, heads: heads, tokens: input.pixels, activation: activation)
        let output = TensorShape(batch: batch, channels: channels, height: input.height, width: input.width)
        return add(
            name, .attention(op, AffineParameters(scale: bn.scale, shift: bn.shift)), inputs: [qkv], output: output,
            computed: normalized(raw, bn: bn, output: output, residual: nil, epilogue: Epilogue(activation: activation))
        )
    }
}
