import Foundation
import Kernels
import NetworkGraph

/// Builds a ``Graph`` layer by layer the way the PyTorch model is written: shapes only, every parameter declared by its
/// state-dict name and read by name by the operation that uses it (each BatchNorm kept whole; inference folds it when
/// the graph is lowered), activations and residual adds fused into the operation that produces them.
struct GraphBuilder {
    private(set) var graph: Graph
    let batch: Int

    init(inputChannels: Int, inputSize: Int, batch: Int) {
        graph = Graph(input: TensorShape(batch: batch, channels: inputChannels, height: inputSize, width: inputSize))
        self.batch = batch
    }

    private mutating func add(_ name: String, _ op: any GraphOperation, inputs: [TensorID], output shape: TensorShape)
        -> TensorID
    {
        graph.add(name, op, inputs: inputs, output: shape)
    }

    func shape(_ tensor: TensorID) -> TensorShape { graph.shapes[tensor] }

    /// Declares a parameter and returns its name.
    @discardableResult
    mutating func parameter(_ name: String, _ shape: [Int], trainable: Bool = true) -> String {
        graph.declare(name, shape: shape, trainable: trainable)
        return name
    }

    /// Declares the five state-dict entries of a BatchNorm.
    mutating func batchNorm(_ name: String, channels: Int) -> BatchNorm {
        let norm = BatchNorm(name)
        parameter(norm.gamma, [channels])
        parameter(norm.beta, [channels])
        parameter(norm.runningMean, [channels], trainable: false)
        parameter(norm.runningVariance, [channels], trainable: false)
        parameter("\(name).num_batches_tracked", [], trainable: false)
        return norm
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
        let weight = parameter("\(name).weight", [out, depthwise ? 1 : input.channels, kernel, kernel])
        let biasName = bias ? parameter("\(name).bias", [out]) : nil
        let weights = ConvWeights(
            weight: weight, bias: biasName, norm: norm.map { batchNorm($0, channels: out) })
        let epilogue = Epilogue(activation: activation, hasResidual: residual != nil)
        let inputs = [x] + (residual.map { [$0] } ?? [])
        if depthwise {
            precondition(out == input.channels, "\(name): depthwise keeps the channel count")
            let op = Depthwise(
                batch: batch, channels: out, height: input.height, width: input.width, kernelSize: kernel,
                stride: stride, padding: padding, epilogue: epilogue)
            return add(
                node ?? name, DepthwiseLayer(op, weights), inputs: inputs,
                output: TensorShape(batch: batch, channels: out, height: op.outHeight, width: op.outWidth))
        }
        if kernel == 1 && stride == 1 && padding == 0 {
            let op = Pointwise(
                batch: batch, inChannels: input.channels, pixels: input.pixels, outChannels: out, epilogue: epilogue)
            return add(
                node ?? name, ConvolutionLayer(op, weights), inputs: inputs,
                output: TensorShape(batch: batch, channels: out, height: input.height, width: input.width))
        }
        let op = Conv2D(
            batch: batch, inChannels: input.channels, height: input.height, width: input.width, outChannels: out,
            kernelSize: kernel, stride: stride, padding: padding, epilogue: epilogue)
        return add(
            node ?? name, ConvolutionLayer(op, weights), inputs: inputs,
            output: TensorShape(batch: batch, channels: out, height: op.outHeight, width: op.outWidth))
    }

    /// The classifier: `name.weight` `[out, in]` and `name.bias`, on `[N, C, 1, 1]`.
    mutating func linear(_ x: TensorID, _ name: String, out: Int) throws -> TensorID {
        let input = shape(x)
        let weights = ConvWeights(
            weight: parameter("\(name).weight", [out, input.channels]), bias: parameter("\(name).bias", [out]))
        let op = Pointwise.linear(batch: batch, inFeatures: input.channels, outFeatures: out)
        return add(
            name, ConvolutionLayer(op, weights), inputs: [x],
            output: TensorShape(batch: batch, channels: out, height: 1, width: 1))
    }

    mutating func maxPool(_ x: TensorID, _ name: String) -> TensorID {
        let input = shape(x)
        let op = MaxPool(batch: batch, channels: input.channels, height: input.height, width: input.width)
        return add(
            name, op, inputs: [x],
            output: TensorShape(batch: batch, channels: input.channels, height: op.outHeight, width: op.outWidth))
    }

    mutating func avgPool(_ x: TensorID, _ name: String) -> TensorID {
        let input = shape(x)
        let op = AvgPool(batch: batch, channels: input.channels, height: input.height, width: input.width)
        return add(
            name, op, inputs: [x],
            output: TensorShape(batch: batch, channels: input.channels, height: op.outHeight, width: op.outWidth))
    }

    mutating func globalAvgPool(_ x: TensorID, _ name: String) -> TensorID {
        let input = shape(x)
        let op = GlobalAvgPool(batch: batch, channels: input.channels, pixels: input.pixels)
        return add(
            name, op, inputs: [x],
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
        let weights = SqueezeExciteWeights(reduce: "\(name).\(names.0)", expand: "\(name).\(names.1)")
        parameter("\(weights.reduce).weight", [reduced, c, 1, 1])
        parameter("\(weights.reduce).bias", [reduced])
        parameter("\(weights.expand).weight", [c, reduced, 1, 1])
        parameter("\(weights.expand).bias", [c])
        let op = SqueezeExcite(
            batch: batch, channels: c, pixels: input.pixels, reduced: reduced, innerActivation: inner,
            epilogue: Epilogue(activation: activation, hasResidual: residual != nil))
        return add(name, SqueezeExciteLayer(op, weights), inputs: [x] + (residual.map { [$0] } ?? []), output: input)
    }

    /// Attention over a to_qkv output, followed by the BatchNorm `norm` and an activation.
    mutating func attention(_ qkv: TensorID, _ name: String, heads: Int, norm: String, activation: Activation) throws
        -> TensorID
    {
        let input = shape(qkv)
        let channels = heads * Attention.headChannels
        precondition(
            input.channels == 3 * channels, "\(name): qkv has \(input.channels) channels, expected \(3 * channels)")
        let op = Attention(batch: batch, heads: heads, tokens: input.pixels, activation: activation)
        return add(
            name, AttentionLayer(op, batchNorm(norm, channels: channels)), inputs: [qkv],
            output: TensorShape(batch: batch, channels: channels, height: input.height, width: input.width))
    }
}
