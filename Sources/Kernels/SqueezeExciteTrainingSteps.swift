import Foundation
import VulkanCompute

// Squeeze-excite in training on the device (the references are in SqueezeExciteBackward.swift). The forward is the
// squeeze, the two fully connected layers as products with their biases and activations (keeping the means, fc1's
// output before and after its activation, and the gates), and the scaling; the gradient is the gate's per image and
// channel, four small products and two bias sums for the two layers, then the input's. Kernels: Shaders/squeeze_excite_backward.comp, Shaders/gemm_train.comp, Shaders/channel_sums.comp,
// Shaders/activation_backward.comp.

/// What squeeze-excite's backward reads and writes. The forward keeps `means`, `hidden`, `activated` and `gates`
/// (``SqueezeExcite/Excitation``, float32, `[batch][channels]` or `[batch][reduced]`).
public struct SqueezeExciteGradients<Resource> {
    public var input: Resource
    public var outputGradient: Resource
    public var means: Resource
    public var hidden: Resource
    public var activated: Resource
    public var gates: Resource
    public var w1: Resource
    public var w2: Resource
    /// Where the input gradient goes (added to where ``accumulateInput``), and the four parameters' gradients.
    public var inputGradient: Resource
    public var w1Gradient: Resource
    public var b1Gradient: Resource
    public var w2Gradient: Resource
    public var b2Gradient: Resource
    /// Buffers of ``SqueezeExcite/backwardScratchCounts`` floats.
    public var scratch: [Resource]
    public var accumulateInput = false

    public init(
        input: Resource, outputGradient: Resource, means: Resource, hidden: Resource, activated: Resource,
        gates: Resource, w1: Resource, w2: Resource, inputGradient: Resource, w1Gradient: Resource,
        b1Gradient: Resource, w2Gradient: Resource, b2Gradient: Resource, scratch: [Resource],
        accumulateInput: Bool = false
    ) {
        (self.input, self.outputGradient, self.means, self.hidden) = (input, outputGradient, means, hidden)
        (self.activated, self.gates, self.w1, self.w2) = (activated, gates, w1, w2)
        (self.inputGradient, self.w1Gradient, self.b1Gradient) = (inputGradient, w1Gradient, b1Gradient)
        (self.w2Gradient, self.b2Gradient, self.scratch, self.accumulateInput) =
            (w2Gradient, b2Gradient, scratch, accumulateInput)
    }
}

extension SqueezeExcite {
    /// Floats of scratch: the gradients of fc2's output, of fc1's output before and after its activation, and of the
    /// means.
    public var backwardScratchCounts: [Int] {
        [batch * channels, batch * reduced, batch * reduced, batch * channels]
    }

    /// Floats of what the forward keeps for the backward: the means, fc1's output before and after its activation,
    /// and the gates (``SqueezeExciteGradients``); then of its scratch, fc2's output.
    public var savedCounts: [Int] { [batch * channels, batch * reduced, batch * reduced, batch * channels] }
    public var forwardScratchCounts: [Int] { [batch * channels] }

    /// The training forward, `output = x * gates` (without the residual and activation that follow), keeping
    /// ``savedCounts`` values in `saved`; the squeeze runs as `config`'s storage family would run it.
    public func trainingForwardSteps<Resource>(
        input: Resource, w1: Resource, b1: Resource, w2: Resource, b2: Resource, saved: [Resource],
        scratch: [Resource], output: Resource, config: KernelConfig
    ) -> [KernelStep<Resource>] {
        let (n, c, r) = (batch, channels, reduced)
        let (means, hidden, activated, gates, z2) = (saved[0], saved[1], saved[2], saved[3], scratch[0])
        // hidden[n][j] = sum_i means[n][i] w1[j][i]; z2[n][i] = sum_j activated[n][j] w2[i][j].
        let fc1 = TrainingGEMM(
            m: n, n: r, k: c, a: matrix(columns: c, rowsAreFree: true), b: matrix(columns: c, rowsAreFree: true),
            c: rowMajor(columns: r))
        let fc2 = TrainingGEMM(
            m: n, n: c, k: r, a: matrix(columns: r, rowsAreFree: true), b: matrix(columns: r, rowsAreFree: true),
            c: rowMajor(columns: c))
        func activation(_ a: Activation, channels: Int) -> EpilogueTraining {
            EpilogueTraining(batch: n, channels: channels, pixels: 1, activation: a, batchNorm: false)
        }
        var plain = self
        plain.epilogue = Epilogue()
        let scaled: TexelFormat = vec4Scale ? .rgba32Float : .r32Float
        let scale = KernelStep(
            plain.scaleLaunch(), [.read(input, scaled), .read(gates), .read(input, scaled), .write(output)]
        ).on(.storage)
        let first =
            squeeze.steps(input: input, output: means, config: config.with(.storage))
            + fc1.steps(a: means, b: w1, c: hidden)
            + BiasAdd(count: n * r, channels: r, pixels: 1).steps(b1, to: hidden)
        let inner = activation(innerActivation, channels: r).forwardSteps(
            input: hidden, residual: nil, normalisation: nil, output: activated)
        let second =
            fc2.steps(a: activated, b: w2, c: z2)
            + BiasAdd(count: n * c, channels: c, pixels: 1).steps(b2, to: z2)
        let sigmoid = activation(.sigmoid, channels: c).forwardSteps(
            input: z2, residual: nil, normalisation: nil, output: gates)
        return first + inner + second + sigmoid + [scale]
    }

    /// A row-major `[rows][columns]` matrix as a product's operand: `rowsAreFree` when its rows are the product's free
    /// dimension, else its reduction.
    private func matrix(columns: Int, rowsAreFree: Bool) -> MatrixLayout {
        rowsAreFree ? MatrixLayout(free: columns, inner: 1) : MatrixLayout(free: 1, inner: columns)
    }

    /// A row-major `[rows][columns]` matrix as a product's output.
    private func rowMajor(columns: Int) -> MatrixLayout { MatrixLayout(free: 1, inner: columns) }

    public func backwardSteps<Resource>(_ g: SqueezeExciteGradients<Resource>) -> [KernelStep<Resource>] {
        let (n, c, r) = (batch, channels, reduced)
        let (dz2, dz1Raw, dz1, dMeans) = (g.scratch[0], g.scratch[1], g.scratch[2], g.scratch[3])
        // [n][c] and [n][r] matrices read transposed (images as the reduction) or straight.
        let dw2 = TrainingGEMM(
            m: c, n: r, k: n, a: matrix(columns: c, rowsAreFree: false), b: matrix(columns: r, rowsAreFree: false),
            c: rowMajor(columns: r))
        let dz1Product = TrainingGEMM(
            m: n, n: r, k: c, a: matrix(columns: c, rowsAreFree: true), b: matrix(columns: r, rowsAreFree: false),
            c: rowMajor(columns: r))
        let dw1 = TrainingGEMM(
            m: r, n: c, k: n, a: matrix(columns: r, rowsAreFree: false), b: matrix(columns: c, rowsAreFree: false),
            c: rowMajor(columns: c))
        let dMeansProduct = TrainingGEMM(
            m: n, n: c, k: r, a: matrix(columns: r, rowsAreFree: true), b: matrix(columns: c, rowsAreFree: false),
            c: rowMajor(columns: c))
        let activation = EpilogueTraining(
            batch: n, channels: r, pixels: 1, activation: innerActivation, batchNorm: false)
        return gateSteps(g, dz2: dz2) + dw2.steps(a: dz2, b: g.activated, c: g.w2Gradient)
            + ChannelSums(batch: n, channels: c, pixels: 1).steps(values: dz2, sums: g.b2Gradient)
            + dz1Product.steps(a: dz2, b: g.w2, c: dz1Raw)
            + activation.backwardSteps(
                outputGradient: dz1Raw, input: g.hidden, residual: nil, normalisation: nil, preGradient: dz1)
            + dw1.steps(a: dz1, b: g.means, c: g.w1Gradient)
            + ChannelSums(batch: n, channels: r, pixels: 1).steps(values: dz1, sums: g.b1Gradient)
            + dMeansProduct.steps(a: dz1, b: g.w1, c: dMeans) + inputSteps(g, dMeans: dMeans)
    }

    /// Mirrors `Push` in Shaders/squeeze_excite_backward.comp.
    private var backwardPush: SIMD2<UInt32> { SIMD2(UInt32(batch * channels), UInt32(pixels)) }

    private func gateSteps<Resource>(_ g: SqueezeExciteGradients<Resource>, dz2: Resource) -> [KernelStep<Resource>] {
        typealias Spec = ShaderConstants.squeeze_excite_backward
        // Planes smaller than a workgroup take one invocation each; larger ones a workgroup each.
        let small = pixels < 64
        let launch = KernelLaunch(
            kernel: KernelName.squeeze_excite_backward,
            specialization: [
                Spec.LOCAL_SIZE_X: .uint(64), Spec.ACCUMULATE: .uint(0), Spec.SMALL_PLANES: .uint(small ? 1 : 0),
            ],
            pushConstants: backwardPush, groups: Grid.flat(items: batch * channels, localSize: small ? 64 : 1))
        let bindings: [KernelBinding<Resource>] = [
            .readFloat32(g.outputGradient), .readFloat32(g.gates), .readFloat32(g.input), .writeFloat32(dz2),
        ]
        return [KernelStep(launch, bindings)]
    }

    private func inputSteps<Resource>(_ g: SqueezeExciteGradients<Resource>, dMeans: Resource) -> [KernelStep<Resource>]
    {
        typealias Spec = ShaderConstants.squeeze_excite_backward
        let launch = KernelLaunch(
            kernel: KernelName.squeeze_excite_backward_input,
            specialization: [Spec.LOCAL_SIZE_X: .uint(64), Spec.ACCUMULATE: .uint(g.accumulateInput ? 1 : 0)],
            pushConstants: backwardPush, groups: Grid.flat(items: count, localSize: 64))
        let bindings: [KernelBinding<Resource>] = [
            .readFloat32(g.outputGradient), .readFloat32(g.gates), .readFloat32(dMeans),
            g.accumulateInput ? .readWrite(g.inputGradient) : .writeFloat32(g.inputGradient),
        ]
        return [KernelStep(launch, bindings)]
    }

    /// Runs the training forward (its saved values kept on the device) and the backward, and compares the output, the
    /// gates, the input's and the four parameters' gradients with ``trainingForward(_:excitation:)`` and
    /// ``backward(_:w1:w2:excitation:outputGradient:)``.
    public func backwardCheck(accumulate: Bool = false) -> KernelCheck {
        KernelCheck(op: "squeeze_excite_training", shape: shapeDescription + (accumulate ? " accumulate" : "")) {
            runner, random in
            let (c, r) = (channels, reduced)
            let x = random.floats(count), dy = random.floats(count), w1 = random.weights(r * c, fanIn: c)
            let b1 = random.floats(r, in: -0.5...0.5), w2 = random.weights(c * r, fanIn: r)
            let b2 = random.floats(c, in: -0.5...0.5)
            let dx0 = accumulate ? random.floats(count) : [Float](repeating: .nan, count: count)
            let (xBuffer, w1Buffer, w2Buffer) = (try runner.input(x), try runner.input(w1), try runner.input(w2))
            let saved = try savedCounts.map(runner.output), y = try runner.output(count)
            let outputs = try [count, r * c, r, c * r, c].enumerated().map { index, size in
                index == 0 ? try runner.inputOutput(dx0) : try runner.output(size)
            }
            runner.add(
                trainingForwardSteps(
                    input: xBuffer, w1: w1Buffer, b1: try runner.input(b1), w2: w2Buffer, b2: try runner.input(b2),
                    saved: saved, scratch: try forwardScratchCounts.map(runner.output), output: y,
                    config: runner.config))
            runner.add(
                backwardSteps(
                    SqueezeExciteGradients(
                        input: xBuffer, outputGradient: try runner.input(dy), means: saved[0], hidden: saved[1],
                        activated: saved[2], gates: saved[3], w1: w1Buffer, w2: w2Buffer, inputGradient: outputs[0],
                        w1Gradient: outputs[1], b1Gradient: outputs[2], w2Gradient: outputs[3], b2Gradient: outputs[4],
                        scratch: try backwardScratchCounts.map(runner.output), accumulateInput: accumulate)))
            try runner.run()
            let (xd, w1d, w2d) = (x.map(Double.init), w1.map(Double.init), w2.map(Double.init))
            let e = excitation(xd, w1: w1d, b1: b1.map(Double.init), w2: w2d, b2: b2.map(Double.init))
            let g = backward(xd, w1: w1d, w2: w2d, excitation: e, outputGradient: dy.map(Double.init))
            let input = zip(g.input, dx0).map { $0 + (accumulate ? Double($1) : 0) }
            let expected = [input, g.w1, g.b1, g.w2, g.b2].map { $0.map(Float.init) }
            let read = try outputs.map(runner.read)
            return .worst([
                "output": Comparison(try runner.read(y), trainingForward(xd, excitation: e).map(Float.init)),
                "gates": Comparison(try runner.read(saved[3]), e.gates.map(Float.init)),
                "input": Comparison(read[0], expected[0]), "w1": Comparison(read[1], expected[1]),
                "b1": Comparison(read[2], expected[2]), "w2": Comparison(read[3], expected[3]),
                "b2": Comparison(read[4], expected[4]),
            ])
        }
    }
}
