import Foundation
import Kernels
import Testing

// The training references' gradients against central finite differences, in Double, at awkward shapes (odd sides,
// strides, padding, windows over the edge). Each loss is L = sum_i r_i y_i with fixed random r, so dL/dy = r.

/// Central differences of `loss` at `x` for every coordinate (step 1e-6: errors near 1e-9 for these smooth losses).
private func numericGradient(_ x: [Double], _ loss: ([Double]) -> Double) -> [Double] {
    let step = 1e-6
    return x.indices.map { index in
        var plus = x, minus = x
        plus[index] += step
        minus[index] -= step
        return (loss(plus) - loss(minus)) / (2 * step)
    }
}

/// ||a - b|| / ||b||.
private func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "lengths differ")
    let difference = zip(a, b).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
    let norm = b.reduce(0.0) { $0 + $1 * $1 }
    return (difference / max(norm, 1e-300)).squareRoot()
}

/// `count` values uniform in `range`, from `seed`.
private func values(_ count: Int, _ seed: UInt64, in range: ClosedRange<Float> = -1...1) -> [Double] {
    var random = SeededRandom(seed: seed)
    return random.floats(count, in: range).map(Double.init)
}

/// sum_i r_i y_i.
private func dot(_ r: [Double], _ y: [Double]) -> Double { zip(r, y).reduce(0.0) { $0 + $1.0 * $1.1 } }

private let tolerance = 1e-6

@Test(
    "convolution gradients equal finite differences: 7x7 stem, strided 3x3, 1x1, depthwise with bias",
    arguments: [
        ConvolutionGeometry(
            batch: 2, inChannels: 3, outChannels: 4, height: 9, width: 11, kernelSize: 7, stride: 2, padding: 3,
            depthwise: false),
        ConvolutionGeometry(
            batch: 2, inChannels: 3, outChannels: 5, height: 7, width: 6, kernelSize: 3, stride: 2, padding: 1,
            depthwise: false),
        ConvolutionGeometry(
            batch: 3, inChannels: 5, outChannels: 3, height: 1, width: 7, kernelSize: 1, stride: 1, padding: 0,
            depthwise: false),
        ConvolutionGeometry(
            batch: 2, inChannels: 4, outChannels: 4, height: 5, width: 7, kernelSize: 3, stride: 2, padding: 1,
            depthwise: true),
        ConvolutionGeometry(
            batch: 1, inChannels: 3, outChannels: 3, height: 6, width: 5, kernelSize: 5, stride: 1, padding: 2,
            depthwise: true),
    ])
func convolutionGradients(geometry: ConvolutionGeometry) {
    let x = values(geometry.inputCount, 1), w = values(geometry.weightCount, 2), b = values(geometry.outChannels, 3)
    let r = values(geometry.outputCount, 4)
    let analytic = geometry.backward(input: x, weights: w, outputGradient: r)
    #expect(
        relativeError(
            analytic.input, numericGradient(x) { dot(r, geometry.forward(input: $0, weights: w, bias: b)) })
            < tolerance)
    #expect(
        relativeError(
            analytic.weights, numericGradient(w) { dot(r, geometry.forward(input: x, weights: $0, bias: b)) })
            < tolerance)
    #expect(
        relativeError(analytic.bias, numericGradient(b) { dot(r, geometry.forward(input: x, weights: w, bias: $0)) })
            < tolerance)
}

@Test("the convolution forward equals the inference reference on the same values")
func convolutionForwardMatchesInference() {
    let conv = Conv2D(
        batch: 2, inChannels: 3, height: 7, width: 6, outChannels: 5, kernelSize: 3, stride: 2, padding: 1)
    let x = values(conv.inputCount, 5).map(Float.init), w = values(conv.weightCount, 6).map(Float.init)
    let ones = [Float](repeating: 1, count: 5), zeros = [Float](repeating: 0, count: 5)
    let inference = conv.reference(input: x, weights: w, scale: ones, shift: zeros)
    let training = conv.geometry.forward(input: x.map(Double.init), weights: w.map(Double.init), bias: nil)
    #expect(inference == training.map(Float.init))
}

@Test("train-mode BatchNorm: gradients equal finite differences; running statistics as PyTorch updates them")
func batchNormTraining() {
    let norm = BatchNormTraining(batch: 3, channels: 4, pixels: 5)
    let x = values(60, 7, in: -2...3), gamma = values(4, 8, in: 0.5...1.5), beta = values(4, 9), r = values(60, 10)
    func loss(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> Double {
        dot(r, norm.forward(x, gamma: gamma, beta: beta, statistics: norm.statistics(x)))
    }
    let analytic = norm.backward(x, gamma: gamma, statistics: norm.statistics(x), outputGradient: r)
    #expect(relativeError(analytic.input, numericGradient(x) { loss($0, gamma, beta) }) < tolerance)
    #expect(relativeError(analytic.gamma, numericGradient(gamma) { loss(x, $0, beta) }) < tolerance)
    #expect(relativeError(analytic.beta, numericGradient(beta) { loss(x, gamma, $0) }) < tolerance)

    // One channel of 4 values 1, 2, 3, 6: mean 3, biased variance 3.5, unbiased 14/3.
    let one = BatchNormTraining(batch: 2, channels: 1, pixels: 2)
    let statistics = one.statistics([1, 2, 3, 6])
    #expect(statistics.mean == [3] && statistics.variance == [3.5])
    let running = one.updatedRunning(mean: [0], variance: [1], statistics: statistics)
    #expect(abs(running.mean[0] - 0.3) < 1e-15 && abs(running.variance[0] - (0.9 + 0.1 * 14 / 3)) < 1e-15)
    let y = one.forward([1, 2, 3, 6], gamma: [2], beta: [1], statistics: statistics)
    #expect(abs(y[0] - (1 + 2 * -2 / (3.5 + 1e-5).squareRoot())) < 1e-12)
}

@Test("attention's gradient equals finite differences (spread logits, 2 heads, 7 tokens)")
func attentionGradient() {
    let attention = Attention(batch: 2, heads: 2, tokens: 7)
    let qkv = values(attention.inputCount, 11, in: -1.5...1.5), r = values(attention.outputCount, 12)
    let analytic = attention.backward(qkv: qkv, outputGradient: r)
    #expect(relativeError(analytic, numericGradient(qkv) { dot(r, attention.trainingForward(qkv: $0)) }) < tolerance)
}

@Test("attention's training forward equals the inference reference")
func attentionForwardMatchesInference() {
    let attention = Attention(batch: 1, heads: 2, tokens: 6)
    let qkv = values(attention.inputCount, 13, in: -3...3).map(Float.init)
    let inference = attention.reference(qkv: qkv)
    let training = attention.trainingForward(qkv: qkv.map(Double.init))
    #expect(relativeError(training, inference.map(Double.init)) < 1e-7)
}

@Test("squeeze-excite's gradients equal finite differences", arguments: [Activation.relu, .silu])
func squeezeExciteGradients(inner: Activation) {
    let se = SqueezeExcite(batch: 2, channels: 6, pixels: 5, reduced: 3, innerActivation: inner)
    let x = values(60, 14), w1 = values(18, 15), b1 = values(3, 16), w2 = values(18, 17), b2 = values(6, 18)
    let r = values(60, 19)
    func loss(_ x: [Double], _ w1: [Double], _ b1: [Double], _ w2: [Double], _ b2: [Double]) -> Double {
        dot(r, se.trainingForward(x, excitation: se.excitation(x, w1: w1, b1: b1, w2: w2, b2: b2)))
    }
    let e = se.excitation(x, w1: w1, b1: b1, w2: w2, b2: b2)
    let analytic = se.backward(x, w1: w1, w2: w2, excitation: e, outputGradient: r)
    #expect(relativeError(analytic.input, numericGradient(x) { loss($0, w1, b1, w2, b2) }) < tolerance)
    #expect(relativeError(analytic.w1, numericGradient(w1) { loss(x, $0, b1, w2, b2) }) < tolerance)
    #expect(relativeError(analytic.b1, numericGradient(b1) { loss(x, w1, $0, w2, b2) }) < tolerance)
    #expect(relativeError(analytic.w2, numericGradient(w2) { loss(x, w1, b1, $0, b2) }) < tolerance)
    #expect(relativeError(analytic.b2, numericGradient(b2) { loss(x, w1, b1, w2, $0) }) < tolerance)
}

@Test("pooling gradients equal finite differences: max 3x3 s2 p1, average 2x2 ceil mode on odd sides, global")
func poolingGradients() {
    let max = MaxPool(batch: 2, channels: 2, height: 7, width: 5)
    let x = values(max.inputCount, 20), r = values(max.outputCount, 21)
    #expect(
        relativeError(max.backward(x, outputGradient: r), numericGradient(x) { dot(r, max.trainingForward($0)) })
            < tolerance)
    #expect(max.trainingForward(x).map(Float.init) == max.reference(input: x.map(Float.init)))

    let average = AvgPool(batch: 2, channels: 3, height: 5, width: 7)
    let y = values(average.inputCount, 22), s = values(average.outputCount, 23)
    #expect(
        relativeError(
            average.backward(y, outputGradient: s), numericGradient(y) { dot(s, average.trainingForward($0)) })
            < tolerance)

    let global = GlobalAvgPool(batch: 2, channels: 3, pixels: 7)
    let z = values(42, 24), t = values(6, 25)
    #expect(
        relativeError(global.backward(z, outputGradient: t), numericGradient(z) { dot(t, global.trainingForward($0)) })
            < tolerance)
}

@Test("each activation's derivative equals finite differences", arguments: Activation.allCases)
func activationDerivative(activation: Activation) {
    for x in [-3.1, -0.7, 0.2, 1.3, 4.2] {
        let numeric = (activation.apply(x + 1e-6) - activation.apply(x - 1e-6)) / 2e-6
        #expect(abs(activation.derivative(x) - numeric) < 1e-8)
    }
}

@Test("cross-entropy: known values, label smoothing, soft targets, and its gradient equals finite differences")
func crossEntropy() {
    let loss = CrossEntropy(batch: 3, classes: 5)
    // Equal logits: the loss is log(classes) whatever the targets.
    #expect(
        abs(
            loss.lossAndGradient(
                logits: [Double](repeating: 2, count: 15), targets: loss.targets(labels: [0, 4, 2], smoothing: 0.1)
            ).loss - log(5)) < 1e-12)
    // Smoothing 0.1 over 5 classes: 0.92 on the label, 0.02 elsewhere.
    let targets = loss.targets(labels: [1, 0, 4], smoothing: 0.1)
    #expect(abs(targets[1] - 0.92) < 1e-15 && abs(targets[0] - 0.02) < 1e-15 && abs(targets.reduce(0, +) - 3) < 1e-12)
    let logits = values(15, 26, in: -3...3)
    for target in [targets, values(15, 27, in: 0...1)] {
        let analytic = loss.lossAndGradient(logits: logits, targets: target).gradient
        let numeric = numericGradient(logits) { loss.lossAndGradient(logits: $0, targets: target).loss }
        #expect(relativeError(analytic, numeric) < tolerance)
    }
}
