import Foundation
import VulkanCompute

// A train-mode BatchNorm and the epilogue after it on the device (the references are in BatchNormTraining.swift and
// Activation.swift): the batch's statistics and the running update, the normalisation with residual and activation,
// and their gradients. Statistics live in one buffer, the channels' means then their variances.

/// The push constants of the elementwise BatchNorm kernels; mirrors their `Push`.
struct ElementwisePush: BitwiseCopyable {
    var count, channels, pixels: UInt32
    var epsilon: Float
}

/// The push constants of the per-channel BatchNorm kernels; mirrors their `Push`.
struct ChannelPush: BitwiseCopyable {
    var batch, channels, pixels: UInt32
    var parameter: Float
}

extension BatchNormTraining {
    private var count: Int { batch * channels * pixels }

    private var elementwisePush: ElementwisePush {
        ElementwisePush(
            count: UInt32(count), channels: UInt32(channels), pixels: UInt32(pixels), epsilon: Float(epsilon))
    }

    private func channelPush(_ parameter: Double) -> ChannelPush {
        ChannelPush(
            batch: UInt32(batch), channels: UInt32(channels), pixels: UInt32(pixels), parameter: Float(parameter))
    }

    /// The batch's statistics (`[2][channels]`: means, then biased variances) into `statistics`, and the running
    /// mean and variance (`[2][channels]`, in place) moved toward them.
    public func statisticsSteps<Resource>(input: Resource, statistics: Resource, running: Resource)
        -> [KernelStep<Resource>]
    {
        let launch = KernelLaunch(
            kernel: KernelName.batchnorm_statistics,
            specialization: [ShaderConstants.batchnorm_statistics.LOCAL_SIZE_X: .uint(64)],
            pushConstants: channelPush(momentum), groups: (channels, 1, 1))
        return [
            KernelStep(launch, [.readFloat32(input), .writeFloat32(statistics), .readWrite(running)]).on(.storage)
        ]
    }

    /// `output = act(gamma xhat + beta (+ residual))` with the batch's statistics.
    public func forwardSteps<Resource>(
        input: Resource, residual: Resource?, output: Resource, statistics: Resource, gamma: Resource, beta: Resource,
        activation: Activation
    ) -> [KernelStep<Resource>] {
        typealias Spec = ShaderConstants.batchnorm_forward
        let launch = KernelLaunch(
            kernel: KernelName.batchnorm_forward,
            specialization: [
                Spec.LOCAL_SIZE_X: .uint(64), Spec.ACTIVATION: .uint(activation.rawValue),
                Spec.HAS_RESIDUAL: .uint(residual == nil ? 0 : 1),
            ],
            pushConstants: elementwisePush, groups: Grid.flat(items: count, localSize: 64))
        let bindings: [KernelBinding<Resource>] = [
            .readFloat32(input), .readFloat32(residual ?? input), .writeFloat32(output), .readSmall(statistics),
            .readSmall(gamma), .readSmall(beta),
        ]
        return [KernelStep(launch, bindings).on(.storage)]
    }

    /// The parameter gradients and the input gradient (added to what `inputGradient` holds where `accumulate`) from
    /// the gradient of the BatchNorm's output, `preGradient` (see ``EpilogueBackward``).
    public func backwardSteps<Resource>(
        input: Resource, preGradient: Resource, statistics: Resource, gamma: Resource, gammaGradient: Resource,
        betaGradient: Resource, inputGradient: Resource, accumulate: Bool = false
    ) -> [KernelStep<Resource>] {
        let sums = KernelLaunch(
            kernel: KernelName.batchnorm_backward_sums,
            specialization: [ShaderConstants.batchnorm_backward_sums.LOCAL_SIZE_X: .uint(64)],
            pushConstants: channelPush(epsilon), groups: (channels, 1, 1))
        typealias Spec = ShaderConstants.batchnorm_backward_input
        let inputLaunch = KernelLaunch(
            kernel: KernelName.batchnorm_backward_input,
            specialization: [Spec.LOCAL_SIZE_X: .uint(64), Spec.ACCUMULATE: .uint(accumulate ? 1 : 0)],
            pushConstants: InputPush(elementwise: elementwisePush, perChannel: Float(valuesPerChannel)),
            groups: Grid.flat(items: count, localSize: 64))
        return [
            KernelStep(
                sums,
                [
                    .readFloat32(input), .readFloat32(preGradient), .writeFloat32(gammaGradient),
                    .writeFloat32(betaGradient), .readSmall(statistics),
                ]
            ).on(.storage),
            KernelStep(
                inputLaunch,
                [
                    .readFloat32(input), .readFloat32(preGradient),
                    accumulate ? .readWrite(inputGradient) : .writeFloat32(inputGradient), .readSmall(statistics),
                    .readSmall(gamma), .readSmall(gammaGradient), .readSmall(betaGradient),
                ]
            ).on(.storage),
        ]
    }

    /// Mirrors `Push` in Shaders/batchnorm_backward_input.comp.
    struct InputPush: BitwiseCopyable {
        var elementwise: ElementwisePush
        var perChannel: Float
    }
}

/// The gradient through an operation's epilogue (its BatchNorm's output, the residual add and the activation): the
/// gradient of what the activation read, which is also the residual's. Kernel: Shaders/activation_backward.comp.
public struct EpilogueBackward: Hashable, Sendable {
    public var batch: Int
    public var channels: Int
    public var pixels: Int
    public var activation: Activation
    /// Whether the input is an operation's output before a train-mode BatchNorm (the statistics, gamma and beta are
    /// bound) rather than the value the residual is added to.
    public var batchNorm: Bool
    public var epsilon = 1e-5

    public init(batch: Int, channels: Int, pixels: Int, activation: Activation, batchNorm: Bool) {
        (self.batch, self.channels, self.pixels, self.activation, self.batchNorm) =
            (batch, channels, pixels, activation, batchNorm)
    }

    /// `preGradient = outputGradient * act'(pre)`; `normalisation` is (statistics, gamma, beta) where ``batchNorm``.
    public func steps<Resource>(
        outputGradient: Resource, input: Resource, residual: Resource?,
        normalisation: (statistics: Resource, gamma: Resource, beta: Resource)?, preGradient: Resource
    ) -> [KernelStep<Resource>] {
        precondition((normalisation != nil) == batchNorm, "activation_backward: BatchNorm bindings")
        typealias Spec = ShaderConstants.activation_backward
        let launch = KernelLaunch(
            kernel: batchNorm ? KernelName.activation_backward_batchnorm : KernelName.activation_backward,
            specialization: [
                Spec.LOCAL_SIZE_X: .uint(64), Spec.ACTIVATION: .uint(activation.rawValue),
                Spec.HAS_RESIDUAL: .uint(residual == nil ? 0 : 1),
            ],
            pushConstants: ElementwisePush(
                count: UInt32(batch * channels * pixels), channels: UInt32(channels), pixels: UInt32(pixels),
                epsilon: Float(epsilon)),
            groups: Grid.flat(items: batch * channels * pixels, localSize: 64))
        var bindings: [KernelBinding<Resource>] = [
            .readFloat32(outputGradient), .readFloat32(input), .readFloat32(residual ?? input),
            .writeFloat32(preGradient),
        ]
        if let normalisation {
            bindings += [
                .readSmall(normalisation.statistics), .readSmall(normalisation.gamma), .readSmall(normalisation.beta),
            ]
        }
        return [KernelStep(launch, bindings).on(.storage)]
    }
}

/// `y += x`, elementwise: one more contribution to a gradient. Kernel: Shaders/accumulate.comp.
public struct Accumulate: Hashable, Sendable {
    public var count: Int

    public init(count: Int) { self.count = count }

    public func steps<Resource>(_ x: Resource, into y: Resource) -> [KernelStep<Resource>] {
        let launch = KernelLaunch(
            kernel: KernelName.accumulate, specialization: [ShaderConstants.accumulate.LOCAL_SIZE_X: .uint(64)],
            pushConstants: UInt32(count), groups: Grid.flat(items: count, localSize: 64))
        return [KernelStep(launch, [.readFloat32(x), .readWrite(y)]).on(.storage)]
    }
}

// MARK: - Checks

extension BatchNormTraining {
    public var shapeDescription: String { "n\(batch) c\(channels) \(pixels) pixels" }

    /// The forward's statistics, running update and output (with `activation`, and a residual where `residual`)
    /// against the references, on values of a large common offset (what a variance computed as a difference of
    /// squares would lose).
    public func forwardCheck(activation: Activation, residual: Bool) -> KernelCheck {
        KernelCheck(op: "batchnorm_forward", shape: shapeDescription + " \(activation)\(residual ? " +residual" : "")")
        {
            runner, random in
            let x = random.floats(count, in: 3...5), gamma = random.floats(channels, in: 0.5...1.5)
            let beta = random.floats(channels), running = random.floats(2 * channels, in: 0.5...1.5)
            let r = residual ? random.floats(count) : nil
            let statistics = try runner.output(2 * channels), y = try runner.output(count)
            let runningBuffer = try runner.inputOutput(running), xBuffer = try runner.input(x)
            runner.add(statisticsSteps(input: xBuffer, statistics: statistics, running: runningBuffer))
            runner.add(
                forwardSteps(
                    input: xBuffer, residual: try r.map(runner.input), output: y, statistics: statistics,
                    gamma: try runner.input(gamma), beta: try runner.input(beta), activation: activation))
            try runner.run()
            let expected = referenceForward(x, gamma: gamma, beta: beta, running: running, residual: r, activation)
            return .worst([
                "statistics": Comparison(try runner.read(statistics), expected.statistics),
                "running": Comparison(try runner.read(runningBuffer), expected.running),
                "output": Comparison(try runner.read(y), expected.output),
            ])
        }
    }

    private func referenceForward(
        _ x: [Float], gamma: [Float], beta: [Float], running: [Float], residual: [Float]?, _ activation: Activation
    ) -> (statistics: [Float], running: [Float], output: [Float]) {
        let s = statistics(x.map(Double.init))
        let old = running.map(Double.init)
        let updated = updatedRunning(
            mean: Array(old.prefix(channels)), variance: Array(old.suffix(channels)), statistics: s)
        let normalised = forward(
            x.map(Double.init), gamma: gamma.map(Double.init), beta: beta.map(Double.init), statistics: s)
        let output = normalised.indices.map { i in
            activation.apply(normalised[i] + (residual.map { Double($0[i]) } ?? 0))
        }
        return (
            (s.mean + s.variance).map(Float.init), (updated.mean + updated.variance).map(Float.init),
            output.map(Float.init)
        )
    }

    /// The backward through the epilogue (`activation`, a residual where `residual`) and the BatchNorm: the
    /// pre-activation gradient, gamma's, beta's and the input's (added to where `accumulate`).
    public func backwardCheck(activation: Activation, residual: Bool, accumulate: Bool = false) -> KernelCheck {
        let shape = shapeDescription + " \(activation)\(residual ? " +residual" : "")\(accumulate ? " accumulate" : "")"
        return KernelCheck(op: "batchnorm_backward", shape: shape) { runner, random in
            let x = random.floats(count, in: -2...3), gamma = random.floats(channels, in: 0.5...1.5)
            let beta = random.floats(channels), dy = random.floats(count), r = residual ? random.floats(count) : nil
            let dx0 = accumulate ? random.floats(count) : [Float](repeating: .nan, count: count)
            let s = statistics(x.map(Double.init))
            let stats = (s.mean + s.variance).map(Float.init)
            let (xBuffer, statistics) = (try runner.input(x), try runner.input(stats))
            let (gammaBuffer, pre) = (try runner.input(gamma), try runner.output(count))
            let (dgamma, dbeta, dx) = (
                try runner.output(channels), try runner.output(channels), try runner.inputOutput(dx0)
            )
            runner.add(
                EpilogueBackward(
                    batch: batch, channels: channels, pixels: pixels, activation: activation, batchNorm: true
                )
                .steps(
                    outputGradient: try runner.input(dy), input: xBuffer, residual: try r.map(runner.input),
                    normalisation: (statistics, gammaBuffer, try runner.input(beta)), preGradient: pre))
            runner.add(
                backwardSteps(
                    input: xBuffer, preGradient: pre, statistics: statistics, gamma: gammaBuffer, gammaGradient: dgamma,
                    betaGradient: dbeta, inputGradient: dx, accumulate: accumulate))
            try runner.run()
            let normalised = forward(
                x.map(Double.init), gamma: gamma.map(Double.init), beta: beta.map(Double.init), statistics: s)
            let dPre = normalised.indices.map { i in
                Double(dy[i]) * activation.derivative(normalised[i] + (r.map { Double($0[i]) } ?? 0))
            }
            let g = backward(x.map(Double.init), gamma: gamma.map(Double.init), statistics: s, outputGradient: dPre)
            return .worst([
                "pre-activation": Comparison(try runner.read(pre), dPre.map(Float.init)),
                "gamma": Comparison(try runner.read(dgamma), g.gamma.map(Float.init)),
                "beta": Comparison(try runner.read(dbeta), g.beta.map(Float.init)),
                "input": Comparison(
                    try runner.read(dx), zip(g.input, dx0).map { Float($0 + (accumulate ? Double($1) : 0)) }),
            ])
        }
    }
}

extension EpilogueBackward {
    /// Without a BatchNorm: `dy * act'(x (+ residual))`, then that added into a gradient already holding a value
    /// (``Accumulate``), as a residual's gradient is.
    public func check(residual: Bool) -> KernelCheck {
        precondition(!batchNorm, "the BatchNorm variant is checked by BatchNormTraining.backwardCheck")
        let count = batch * channels * pixels
        return KernelCheck(op: "activation_backward", shape: "\(count) \(activation)\(residual ? " +residual" : "")") {
            runner, random in
            let dy = random.floats(count), x = random.floats(count, in: -3...3),
                r = residual ? random.floats(count) : nil
            let total0 = random.floats(count)
            let pre = try runner.output(count), total = try runner.inputOutput(total0)
            runner.add(
                steps(
                    outputGradient: try runner.input(dy), input: try runner.input(x), residual: try r.map(runner.input),
                    normalisation: nil, preGradient: pre))
            runner.add(Accumulate(count: count).steps(pre, into: total))
            try runner.run()
            let expected = x.indices.map { i in
                Double(dy[i]) * activation.derivative(Double(x[i]) + (r.map { Double($0[i]) } ?? 0))
            }
            return .worst([
                "pre-activation": Comparison(try runner.read(pre), expected.map(Float.init)),
                "accumulated": Comparison(try runner.read(total), zip(expected, total0).map { Float($0 + Double($1)) }),
            ])
        }
    }
}
