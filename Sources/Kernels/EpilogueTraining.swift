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

    /// `output = act(gamma xhat + beta (+ residual))` with the batch's statistics; with `keep`, the BatchNorm's
    /// output is scaled by each image's value in it before the residual add (stochastic depth).
    public func forwardSteps<Resource>(
        input: Resource, residual: Resource?, output: Resource, statistics: Resource, gamma: Resource, beta: Resource,
        activation: Activation, keep: Resource? = nil
    ) -> [KernelStep<Resource>] {
        EpilogueTraining(batch: batch, channels: channels, pixels: pixels, activation: activation, batchNorm: true)
            .forwardSteps(
                input: input, residual: residual, normalisation: (statistics, gamma, beta), keep: keep, output: output)
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

    /// A launch of one of `kernels` (plain, BatchNorm, stochastic depth, both: the variants of one shader), whose
    /// constants are those of Shaders/epilogue_forward.comp (Shaders/epilogue_backward.comp declares the same).
    private func launch(_ kernels: [String], residual: Bool, dropPath: Bool) -> KernelLaunch {
        typealias Spec = ShaderConstants.epilogue_forward
        return KernelLaunch(
            kernel: kernels[(batchNorm ? 1 : 0) + (dropPath ? 2 : 0)],
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

    /// `output = act(pre)`; `normalisation` is (statistics, gamma, beta) where ``batchNorm``. With `keep` (`[batch]`,
    /// stochastic depth's scale of each image: 0 where its branch is dropped), pre is `keep[n] * x' + residual`, `x'`
    /// the input or its normalisation.
    public func forwardSteps<Resource>(
        input: Resource, residual: Resource?, normalisation: (statistics: Resource, gamma: Resource, beta: Resource)?,
        keep: Resource? = nil, output: Resource
    ) -> [KernelStep<Resource>] {
        let bindings: [KernelBinding<Resource>] = [
            .readFloat32(input), .readFloat32(residual ?? input), .writeFloat32(output),
        ]
        let launch = launch(
            [
                KernelName.epilogue_forward, KernelName.epilogue_forward_batchnorm,
                KernelName.epilogue_forward_droppath, KernelName.epilogue_forward_batchnorm_droppath,
            ], residual: residual != nil, dropPath: keep != nil)
        return [KernelStep(launch, bindings + normalisationBindings(normalisation) + keepBinding(keep))]
    }

    /// `preGradient = outputGradient * act'(pre)`, pre as in ``forwardSteps(input:residual:normalisation:keep:output:)``
    /// (the residual's gradient; the operation's is `keep[n] * preGradient`, ``ImageScale``).
    public func backwardSteps<Resource>(
        outputGradient: Resource, input: Resource, residual: Resource?,
        normalisation: (statistics: Resource, gamma: Resource, beta: Resource)?, keep: Resource? = nil,
        preGradient: Resource
    ) -> [KernelStep<Resource>] {
        let bindings: [KernelBinding<Resource>] = [
            .readFloat32(outputGradient), .readFloat32(input), .readFloat32(residual ?? input),
            .writeFloat32(preGradient),
        ]
        let launch = launch(
            [
                KernelName.epilogue_backward, KernelName.epilogue_backward_batchnorm,
                KernelName.epilogue_backward_droppath, KernelName.epilogue_backward_batchnorm_droppath,
            ], residual: residual != nil, dropPath: keep != nil)
        return [KernelStep(launch, bindings + normalisationBindings(normalisation) + keepBinding(keep))]
    }

    private func keepBinding<Resource>(_ keep: Resource?) -> [KernelBinding<Resource>] {
        keep.map { [.readSmall($0)] } ?? []
    }
}

/// `y = x * scale[n]` for each image n of `count / batch` values (Shaders/image_scale.comp): the gradient of a branch
/// that stochastic depth scaled per image.
public struct ImageScale: Hashable, Sendable {
    public var count: Int
    public var batch: Int

    public init(count: Int, batch: Int) {
        precondition(batch > 0 && count % batch == 0, "image scale: \(count) values are not \(batch) whole images")
        (self.count, self.batch) = (count, batch)
    }

    /// Mirrors `Push` in Shaders/image_scale.comp.
    struct Push: BitwiseCopyable {
        var count, perImage: UInt32
    }

    public func steps<Resource>(_ x: Resource, scale: Resource, into y: Resource) -> [KernelStep<Resource>] {
        let launch = KernelLaunch(
            kernel: KernelName.image_scale, specialization: [ShaderConstants.image_scale.LOCAL_SIZE_X: .uint(64)],
            pushConstants: Push(count: UInt32(count), perImage: UInt32(count / batch)),
            groups: Grid.flat(items: count, localSize: 64))
        return [KernelStep(launch, [.readFloat32(x), .writeFloat32(y), .readSmall(scale)])]
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
    /// With `dropPath`, the BatchNorm's output is scaled per image by ``EpilogueTraining/checkKeep(batch:)``.
    public func forwardCheck(activation: Activation, residual: Bool, dropPath: Bool = false) -> KernelCheck {
        let shape = shapeDescription + " \(activation)\(residual ? " +residual" : "")\(dropPath ? " drop path" : "")"
        return KernelCheck(op: "batchnorm_forward", shape: shape) { runner, random in
            let x = random.floats(count, in: 3...5), gamma = random.floats(channels, in: 0.5...1.5)
            let beta = random.floats(channels), running = random.floats(2 * channels, in: 0.5...1.5)
            let r = residual ? random.floats(count) : nil
            let keep = dropPath ? EpilogueTraining.checkKeep(batch: batch) : nil
            let statistics = try runner.output(2 * channels), y = try runner.output(count)
            let runningBuffer = try runner.inputOutput(running), xBuffer = try runner.input(x)
            runner.add(statisticsSteps(input: xBuffer, statistics: statistics, running: runningBuffer))
            runner.add(
                forwardSteps(
                    input: xBuffer, residual: try r.map(runner.input), output: y, statistics: statistics,
                    gamma: try runner.input(gamma), beta: try runner.input(beta), activation: activation,
                    keep: try keep.map(runner.input)))
            try runner.run()
            let expected = referenceForward(
                x, gamma: gamma, beta: beta, running: running, residual: r, keep: keep, activation)
            return .worst([
                "statistics": Comparison(try runner.read(statistics), expected.statistics),
                "running": Comparison(try runner.read(runningBuffer), expected.running),
                "output": Comparison(try runner.read(y), expected.output),
            ])
        }
    }

    private func referenceForward(
        _ x: [Float], gamma: [Float], beta: [Float], running: [Float], residual: [Float]?, keep: [Float]?,
        _ activation: Activation
    ) -> (statistics: [Float], running: [Float], output: [Float]) {
        let s = statistics(x.map(Double.init))
        let old = running.map(Double.init)
        let updated = updatedRunning(
            mean: Array(old.prefix(channels)), variance: Array(old.suffix(channels)), statistics: s)
        let normalised = forward(
            x.map(Double.init), gamma: gamma.map(Double.init), beta: beta.map(Double.init), statistics: s)
        let scales = EpilogueTraining.imageScales(keep, count: count, batch: batch)
        let output = normalised.indices.map { i in
            activation.apply(normalised[i] * scales[i] + (residual.map { Double($0[i]) } ?? 0))
        }
        return (
            (s.mean + s.variance).map(Float.init), (updated.mean + updated.variance).map(Float.init),
            output.map(Float.init)
        )
    }

    /// The backward through the epilogue (`activation`, a residual where `residual`) and the BatchNorm: the
    /// pre-activation gradient, gamma's, beta's and the input's (added to where `accumulate`).
    /// With `dropPath`, the BatchNorm's output was scaled per image by ``EpilogueTraining/checkKeep(batch:)``: the
    /// BatchNorm's gradient is the pre-activation gradient so scaled (``ImageScale``).
    public func backwardCheck(activation: Activation, residual: Bool, accumulate: Bool = false, dropPath: Bool = false)
        -> KernelCheck
    {
        let shape =
            shapeDescription + " \(activation)\(residual ? " +residual" : "")\(accumulate ? " accumulate" : "")"
            + (dropPath ? " drop path" : "")
        return KernelCheck(op: "batchnorm_backward", shape: shape) { runner, random in
            let x = random.floats(count, in: -2...3), gamma = random.floats(channels, in: 0.5...1.5)
            let beta = random.floats(channels), dy = random.floats(count), r = residual ? random.floats(count) : nil
            let keep = dropPath ? EpilogueTraining.checkKeep(batch: batch) : nil
            let scales = EpilogueTraining.imageScales(keep, count: count, batch: batch)
            let dx0 = accumulate ? random.floats(count) : [Float](repeating: .nan, count: count)
            let s = statistics(x.map(Double.init))
            let stats = (s.mean + s.variance).map(Float.init)
            let (xBuffer, statistics) = (try runner.input(x), try runner.input(stats))
            let (gammaBuffer, pre) = (try runner.input(gamma), try runner.output(count))
            let (dgamma, dbeta, dx) = (
                try runner.output(channels), try runner.output(channels), try runner.inputOutput(dx0)
            )
            let keepBuffer = try keep.map(runner.input)
            runner.add(
                EpilogueTraining(
                    batch: batch, channels: channels, pixels: pixels, activation: activation, batchNorm: true
                )
                .backwardSteps(
                    outputGradient: try runner.input(dy), input: xBuffer, residual: try r.map(runner.input),
                    normalisation: (statistics, gammaBuffer, try runner.input(beta)), keep: keepBuffer,
                    preGradient: pre))
            var branch = pre
            if let keepBuffer {
                branch = try runner.output(count)
                runner.add(ImageScale(count: count, batch: batch).steps(pre, scale: keepBuffer, into: branch))
            }
            runner.add(
                backwardSteps(
                    input: xBuffer, preGradient: branch, statistics: statistics, gamma: gammaBuffer,
                    gammaGradient: dgamma, betaGradient: dbeta, inputGradient: dx, accumulate: accumulate))
            try runner.run()
            let normalised = forward(
                x.map(Double.init), gamma: gamma.map(Double.init), beta: beta.map(Double.init), statistics: s)
            let dPre = normalised.indices.map { i in
                Double(dy[i]) * activation.derivative(normalised[i] * scales[i] + (r.map { Double($0[i]) } ?? 0))
            }
            let g = backward(
                x.map(Double.init), gamma: gamma.map(Double.init), statistics: s,
                outputGradient: zip(dPre, scales).map(*))
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
    /// With `dropPath` (a residual needed), the input is scaled per image by ``checkKeep(batch:)`` before the add, and
    /// the input's gradient is the pre-activation gradient so scaled (``ImageScale``).
    public func check(residual: Bool, dropPath: Bool = false) -> KernelCheck {
        precondition(!batchNorm, "the BatchNorm variant is checked by BatchNormTraining's checks")
        let count = batch * channels * pixels
        let shape = "\(count) \(activation)\(residual ? " +residual" : "")\(dropPath ? " drop path" : "")"
        return KernelCheck(op: "epilogue", shape: shape) { runner, random in
            let dy = random.floats(count), x = random.floats(count, in: -3...3)
            let r = residual ? random.floats(count) : nil
            let keep = dropPath ? Self.checkKeep(batch: batch) : nil
            let scales = Self.imageScales(keep, count: count, batch: batch)
            let (total0, copied0) = (random.floats(count), random.floats(count))
            let (xBuffer, rBuffer, keepBuffer) = (
                try runner.input(x), try r.map(runner.input), try keep.map(runner.input)
            )
            let (y, pre) = (try runner.output(count), try runner.output(count))
            let (total, copied) = (try runner.inputOutput(total0), try runner.inputOutput(copied0))
            runner.add(forwardSteps(input: xBuffer, residual: rBuffer, normalisation: nil, keep: keepBuffer, output: y))
            runner.add(
                backwardSteps(
                    outputGradient: try runner.input(dy), input: xBuffer, residual: rBuffer, normalisation: nil,
                    keep: keepBuffer, preGradient: pre))
            runner.add(Accumulate(count: count).steps(pre, into: total))
            runner.add(Accumulate(count: count, accumulate: false).steps(pre, into: copied))
            var branch = pre  // the operation's gradient
            if let keepBuffer {
                branch = try runner.output(count)
                runner.add(ImageScale(count: count, batch: batch).steps(pre, scale: keepBuffer, into: branch))
            }
            try runner.run()
            let pres = x.indices.map { i in Double(x[i]) * scales[i] + (r.map { Double($0[i]) } ?? 0) }
            let expected = pres.indices.map { i in Double(dy[i]) * activation.derivative(pres[i]) }
            return .worst([
                "output": Comparison(try runner.read(y), pres.map { Float(activation.apply($0)) }),
                "pre-activation": Comparison(try runner.read(pre), expected.map(Float.init)),
                "accumulated": Comparison(try runner.read(total), zip(expected, total0).map { Float($0 + Double($1)) }),
                "copied": Comparison(try runner.read(copied), expected.map(Float.init)),
                "branch": Comparison(try runner.read(branch), zip(expected, scales).map { Float($0 * $1) }),
            ])
        }
    }

    /// The per-image scales the drop-path checks take: every third image's branch dropped (0), the others kept and
    /// scaled by 1 / 0.8 (a drop rate of 0.2).
    public static func checkKeep(batch: Int) -> [Float] {
        (0..<batch).map { $0 % 3 == 1 ? 0 : 1.25 }
    }

    /// Each element's scale: its image's in `keep`, or 1 without it.
    static func imageScales(_ keep: [Float]?, count: Int, batch: Int) -> [Double] {
        guard let keep else { return [Double](repeating: 1, count: count) }
        return (0..<count).map { Double(keep[$0 / (count / batch)]) }
    }
}
