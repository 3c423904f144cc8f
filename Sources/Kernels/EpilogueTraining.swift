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

    /// Lanes of the per-channel reductions' workgroups.
    private var reductionLanes: Int { Grid.reductionLanes(values: batch * pixels) }

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
            specialization: [ShaderConstants.batchnorm_statistics.LOCAL_SIZE_X: .uint(UInt32(reductionLanes))],
            pushConstants: channelPush(momentum), groups: (channels, 1, 1))
        return [
            KernelStep(launch, [.readFloat32(input), .writeFloat32(statistics), .readWrite(running)])
        ]
    }

    /// `output = act(gamma xhat + beta (+ residual))` with the batch's statistics.
    public func forwardSteps<Resource>(
        input: Resource, residual: Resource?, output: Resource, statistics: Resource, gamma: Resource, beta: Resource,
        activation: Activation
    ) -> [KernelStep<Resource>] {
        EpilogueTraining(batch: batch, channels: channels, pixels: pixels, activation: activation, batchNorm: true)
            .forwardSteps(input: input, residual: residual, normalisation: (statistics, gamma, beta), output: output)
    }

    /// The parameter gradients and the input gradient (added to what `inputGradient` holds where `accumulate`) from
    /// the gradient of the BatchNorm's output, `preGradient` (see ``EpilogueTraining``).
    public func backwardSteps<Resource>(
        input: Resource, preGradient: Resource, statistics: Resource, gamma: Resource, gammaGradient: Resource,
        betaGradient: Resource, inputGradient: Resource, accumulate: Bool = false
    ) -> [KernelStep<Resource>] {
        let sums = KernelLaunch(
            kernel: KernelName.batchnorm_backward_sums,
            specialization: [ShaderConstants.batchnorm_backward_sums.LOCAL_SIZE_X: .uint(UInt32(reductionLanes))],
            pushConstants: channelPush(epsilon), groups: (channels, 1, 1))
        typealias Spec = ShaderConstants.batchnorm_backward_input
        let inputLaunch = KernelLaunch(
            kernel: KernelName.batchnorm_backward_input,
            specialization: [Spec.LOCAL_SIZE_X: .uint(64), Spec.ACCUMULATE: .uint(accumulate ? 1 : 0)],
            pushConstants: InputPush(elementwise: elementwisePush, perChannel: Float(valuesPerChannel)),
            groups: Grid.flat(items: (count + 3) / 4, localSize: 64))  // 4 elements an invocation
        return [
            KernelStep(
                sums,
                [
                    .readFloat32(input), .readFloat32(preGradient), .writeFloat32(gammaGradient),
                    .writeFloat32(betaGradient), .readSmall(statistics),
                ]
            ),
            KernelStep(
                inputLaunch,
                [
                    .readFloat32(input), .readFloat32(preGradient),
                    accumulate ? .readWrite(inputGradient) : .writeFloat32(inputGradient), .readSmall(statistics),
                    .readSmall(gamma), .readSmall(gammaGradient), .readSmall(betaGradient),
                ]
            ),
        ]
    }

    /// Mirrors `Push` in Shaders/batchnorm_backward_input.comp.
    struct InputPush: BitwiseCopyable {
        var elementwise: ElementwisePush
        var perChannel: Float
    }
}

/// An operation's epilogue in training, and its gradient: the activation of its output (after its train-mode BatchNorm,
/// where it has one) plus the residual. Kernels: Shaders/epilogue_forward.comp, Shaders/epilogue_backward.comp.
public struct EpilogueTraining: Hashable, Sendable {
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

    private var count: Int { batch * channels * pixels }

    /// A launch of `kernel` (or its BatchNorm variant), whose constants are those of Shaders/epilogue_forward.comp
    /// (Shaders/epilogue_backward.comp declares the same).
    private func launch(_ kernel: String, _ variant: String, residual: Bool) -> KernelLaunch {
        typealias Spec = ShaderConstants.epilogue_forward
        return KernelLaunch(
            kernel: batchNorm ? variant : kernel,
            specialization: [
                Spec.LOCAL_SIZE_X: .uint(64), Spec.ACTIVATION: .uint(activation.rawValue),
                Spec.HAS_RESIDUAL: .uint(residual ? 1 : 0),
            ],
            pushConstants: ElementwisePush(
                count: UInt32(count), channels: UInt32(channels), pixels: UInt32(pixels), epsilon: Float(epsilon)),
            groups: Grid.flat(items: (count + 3) / 4, localSize: 64))  // 4 elements an invocation
    }

    private func normalisationBindings<Resource>(
        _ normalisation: (statistics: Resource, gamma: Resource, beta: Resource)?
    )
        -> [KernelBinding<Resource>]
    {
        precondition(
            (normalisation != nil) == batchNorm, "epilogue: BatchNorm bindings where, and only where, it has one")
        return normalisation.map { [.readSmall($0.statistics), .readSmall($0.gamma), .readSmall($0.beta)] } ?? []
    }

    /// `output = act(pre)`; `normalisation` is (statistics, gamma, beta) where ``batchNorm``.
    public func forwardSteps<Resource>(
        input: Resource, residual: Resource?, normalisation: (statistics: Resource, gamma: Resource, beta: Resource)?,
        output: Resource
    ) -> [KernelStep<Resource>] {
        let bindings: [KernelBinding<Resource>] = [
            .readFloat32(input), .readFloat32(residual ?? input), .writeFloat32(output),
        ]
        let launch = launch(
            KernelName.epilogue_forward, KernelName.epilogue_forward_batchnorm, residual: residual != nil)
        return [KernelStep(launch, bindings + normalisationBindings(normalisation))]
    }

    /// `preGradient = outputGradient * act'(pre)`; `normalisation` is (statistics, gamma, beta) where ``batchNorm``.
    public func backwardSteps<Resource>(
        outputGradient: Resource, input: Resource, residual: Resource?,
        normalisation: (statistics: Resource, gamma: Resource, beta: Resource)?, preGradient: Resource
    ) -> [KernelStep<Resource>] {
        let bindings: [KernelBinding<Resource>] = [
            .readFloat32(outputGradient), .readFloat32(input), .readFloat32(residual ?? input),
            .writeFloat32(preGradient),
        ]
        let launch = launch(
            KernelName.epilogue_backward, KernelName.epilogue_backward_batchnorm, residual: residual != nil)
        return [KernelStep(launch, bindings + normalisationBindings(normalisation))]
    }
}

/// `y += x` elementwise (one more contribution to a gradient), or `y = x` for the first. Kernel:
/// Shaders/accumulate.comp.
public struct Accumulate: Hashable, Sendable {
    public var count: Int
    /// Whether `y` already holds a contribution to add to.
    public var accumulate: Bool

    public init(count: Int, accumulate: Bool = true) { (self.count, self.accumulate) = (count, accumulate) }

    public func steps<Resource>(_ x: Resource, into y: Resource) -> [KernelStep<Resource>] {
        typealias Spec = ShaderConstants.accumulate
        let launch = KernelLaunch(
            kernel: KernelName.accumulate,
            specialization: [Spec.LOCAL_SIZE_X: .uint(64), Spec.ACCUMULATE: .uint(accumulate ? 1 : 0)],
            pushConstants: UInt32(count), groups: Grid.flat(items: count, localSize: 64))
        return [KernelStep(launch, [.readFloat32(x), accumulate ? .readWrite(y) : .writeFloat32(y)])]
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
                EpilogueTraining(
                    batch: batch, channels: channels, pixels: pixels, activation: activation, batchNorm: true
                )
                .backwardSteps(
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

extension EpilogueTraining {
    /// Without a BatchNorm: the forward `act(x (+ residual))`, the gradient `dy * act'(x (+ residual))`, then that
    /// added into a gradient already holding a value (``Accumulate``), as a residual's gradient is.
    public func check(residual: Bool) -> KernelCheck {
        precondition(!batchNorm, "the BatchNorm variant is checked by BatchNormTraining's checks")
        let count = batch * channels * pixels
        return KernelCheck(op: "epilogue", shape: "\(count) \(activation)\(residual ? " +residual" : "")") {
            runner, random in
            let dy = random.floats(count), x = random.floats(count, in: -3...3)
            let r = residual ? random.floats(count) : nil
            let (total0, copied0) = (random.floats(count), random.floats(count))
            let (xBuffer, rBuffer) = (try runner.input(x), try r.map(runner.input))
            let (y, pre) = (try runner.output(count), try runner.output(count))
            let (total, copied) = (try runner.inputOutput(total0), try runner.inputOutput(copied0))
            runner.add(forwardSteps(input: xBuffer, residual: rBuffer, normalisation: nil, output: y))
            runner.add(
                backwardSteps(
                    outputGradient: try runner.input(dy), input: xBuffer, residual: rBuffer, normalisation: nil,
                    preGradient: pre))
            runner.add(Accumulate(count: count).steps(pre, into: total))
            runner.add(Accumulate(count: count, accumulate: false).steps(pre, into: copied))
            try runner.run()
            let pres = x.indices.map { i in Double(x[i]) + (r.map { Double($0[i]) } ?? 0) }
            let expected = pres.indices.map { i in Double(dy[i]) * activation.derivative(pres[i]) }
            return .worst([
                "output": Comparison(try runner.read(y), pres.map { Float(activation.apply($0)) }),
                "pre-activation": Comparison(try runner.read(pre), expected.map(Float.init)),
                "accumulated": Comparison(try runner.read(total), zip(expected, total0).map { Float($0 + Double($1)) }),
                "copied": Comparison(try runner.read(copied), expected.map(Float.init)),
            ])
        }
    }
}
