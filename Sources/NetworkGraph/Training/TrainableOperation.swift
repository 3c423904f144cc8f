import Foundation
import Kernels

/// What training asks of an operation, in Double (the CPU reference of a training step): its computation without the
/// BatchNorm and epilogue that may follow it (``TrainingReference`` runs those, train-mode), and that computation's
/// gradients.
public protocol TrainableOperation: GraphOperation {
    /// How many of the node's inputs the operation itself reads (the rest is the epilogue's residual).
    var operandCount: Int { get }
    /// The activation and residual add after the operation (and its BatchNorm).
    var trainingEpilogue: Epilogue { get }
    /// The operation on its operands, without BatchNorm or epilogue.
    func trainingForward(_ operands: [[Double]], parameters: ParameterStore) -> [Double]
    /// The gradients with respect to each operand, and to each parameter the operation reads (by state-dict name;
    /// the BatchNorm's are not its).
    func trainingBackward(_ operands: [[Double]], outputGradient: [Double], parameters: ParameterStore) -> (
        operands: [[Double]], parameters: [String: [Double]]
    )
    /// The check of the operation's own backward kernels at its shape (without its BatchNorm and epilogue); `nil`
    /// where its gradient passes straight through (an add).
    var backwardCheck: KernelCheck? { get }
}

extension TrainableOperation {
    public var operandCount: Int { 1 }
    public var trainingEpilogue: Epilogue { epilogue }

    /// Every training kernel the node runs, checked at its shape: the operation's backward, and its train-mode
    /// BatchNorm's forward and backward, or its epilogue's gradient, at its output's shape `output`; where it adds a
    /// residual, those of its epilogue under stochastic depth too.
    public func backwardChecks(output: TensorShape) -> [KernelCheck] {
        let epilogue = trainingEpilogue
        var checks = backwardCheck.map { [$0] } ?? []
        let dropPaths = epilogue.hasResidual ? [false, true] : [false]
        if batchNorm != nil {
            let norm = BatchNormTraining(batch: output.batch, channels: output.channels, pixels: output.pixels)
            for dropPath in dropPaths {
                checks += [
                    norm.forwardCheck(
                        activation: epilogue.activation, residual: epilogue.hasResidual, dropPath: dropPath),
                    norm.backwardCheck(
                        activation: epilogue.activation, residual: epilogue.hasResidual, dropPath: dropPath),
                ]
            }
        } else if epilogue.activation != .identity || epilogue.hasResidual {
            let backward = EpilogueTraining(
                batch: output.batch, channels: output.channels, pixels: output.pixels, activation: epilogue.activation,
                batchNorm: false)
            checks += dropPaths.map { backward.check(residual: epilogue.hasResidual, dropPath: $0) }
        }
        return checks
    }
}

extension ParameterStore {
    /// The values of `name` in Double.
    func double(_ name: String) -> [Double] { required(name).map(Double.init) }
}

extension ConvolutionLayer: TrainableOperation {}
extension DepthwiseLayer: TrainableOperation {}

extension ConvolutionLayerOperation {
    public var backwardCheck: KernelCheck? { kernel.geometry.backwardCheck() }

    public func trainingForward(_ operands: [[Double]], parameters: ParameterStore) -> [Double] {
        kernel.geometry.forward(
            input: operands[0], weights: parameters.double(weights.weight), bias: weights.bias.map(parameters.double))
    }

    public func trainingBackward(_ operands: [[Double]], outputGradient: [Double], parameters: ParameterStore) -> (
        operands: [[Double]], parameters: [String: [Double]]
    ) {
        let gradients = kernel.geometry.backward(
            input: operands[0], weights: parameters.double(weights.weight), outputGradient: outputGradient)
        var named = [weights.weight: gradients.weights]
        if let bias = weights.bias { named[bias] = gradients.bias }
        return ([gradients.input], named)
    }
}

extension AttentionLayer: TrainableOperation {
    public var backwardCheck: KernelCheck? { kernel.backwardCheck() }

    public func trainingForward(_ operands: [[Double]], parameters: ParameterStore) -> [Double] {
        kernel.trainingForward(qkv: operands[0])
    }

    public func trainingBackward(_ operands: [[Double]], outputGradient: [Double], parameters: ParameterStore) -> (
        operands: [[Double]], parameters: [String: [Double]]
    ) {
        ([kernel.backward(qkv: operands[0], outputGradient: outputGradient)], [:])
    }
}

extension SqueezeExciteLayer: TrainableOperation {
    private func doubles(_ parameters: ParameterStore) -> (w1: [Double], b1: [Double], w2: [Double], b2: [Double]) {
        let p = parameters.squeezeExcite(weights)
        return (p.w1.map(Double.init), p.b1.map(Double.init), p.w2.map(Double.init), p.b2.map(Double.init))
    }

    public var backwardCheck: KernelCheck? { kernel.backwardCheck() }

    public func trainingForward(_ operands: [[Double]], parameters: ParameterStore) -> [Double] {
        let p = doubles(parameters)
        return kernel.trainingForward(
            operands[0], excitation: kernel.excitation(operands[0], w1: p.w1, b1: p.b1, w2: p.w2, b2: p.b2))
    }

    public func trainingBackward(_ operands: [[Double]], outputGradient: [Double], parameters: ParameterStore) -> (
        operands: [[Double]], parameters: [String: [Double]]
    ) {
        let p = doubles(parameters)
        let e = kernel.excitation(operands[0], w1: p.w1, b1: p.b1, w2: p.w2, b2: p.b2)
        let g = kernel.backward(operands[0], w1: p.w1, w2: p.w2, excitation: e, outputGradient: outputGradient)
        let named = zip(weights.arrays, [g.w1, g.b1, g.w2, g.b2])
        return ([g.input], Dictionary(uniqueKeysWithValues: named.map { ($0, $1) }))
    }
}

extension Add: TrainableOperation {
    public var operandCount: Int { 2 }
    public var trainingEpilogue: Epilogue { Epilogue(activation: activation) }
    public var backwardCheck: KernelCheck? { nil }

    public func trainingForward(_ operands: [[Double]], parameters: ParameterStore) -> [Double] {
        zip(operands[0], operands[1]).map(+)
    }

    public func trainingBackward(_ operands: [[Double]], outputGradient: [Double], parameters: ParameterStore) -> (
        operands: [[Double]], parameters: [String: [Double]]
    ) {
        ([outputGradient, outputGradient], [:])
    }
}
