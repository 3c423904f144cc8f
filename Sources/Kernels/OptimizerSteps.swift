import Foundation
import VulkanCompute

// The optimizers on the device (the references are in Optimizer.swift). Each updates a range of elements of its
// buffers in place, so one dispatch serves a single tensor or a whole arena of parameters laid out together (those
// that take weight decay, then those that do not). Kernels: Shaders/adamw.comp, sgd.comp, ema.comp,
// gradient_norm.comp.

/// The optimizers a training step can take.
public enum TrainingOptimizer: Sendable, Hashable {
    case adamw(AdamW)
    case sgd(SGD)
}

/// Elements `first ..< first + count` of the buffers an optimizer step updates.
public struct ElementRange: Hashable, Sendable {
    public var first: Int
    public var count: Int

    public init(first: Int = 0, count: Int) { (self.first, self.count) = (first, count) }
}

/// A launch over a range, one invocation per element.
private func elementwiseLaunch<Push: BitwiseCopyable>(
    _ kernel: String, _ specialization: [UInt32: SpecializationValue], _ push: Push, count: Int
) -> KernelLaunch {
    KernelLaunch(
        kernel: kernel, specialization: specialization, pushConstants: push,
        groups: Grid.flat(items: count, localSize: 64))
}

extension AdamW {
    /// Mirrors `Push` in Shaders/adamw.comp.
    struct PushConstants: BitwiseCopyable {
        var first, count: UInt32
        var decay, beta1, beta2, stepSize, correction2Root, epsilon: Float
    }

    /// Step `step` (1 for the first) over `range`: the parameters and both moving averages in place.
    public func steps<Resource>(
        parameters: Resource, gradients: Resource, averages: Resource, squareAverages: Resource, range: ElementRange,
        step: Int, decays: Bool
    ) -> [KernelStep<Resource>] {
        precondition(step >= 1, "adamw: steps count from 1")
        let push = PushConstants(
            first: UInt32(range.first), count: UInt32(range.count),
            decay: Float(1 - learningRate * (decays ? weightDecay : 0)), beta1: Float(beta1), beta2: Float(beta2),
            stepSize: Float(learningRate / (1 - pow(beta1, Double(step)))),
            correction2Root: Float((1 - pow(beta2, Double(step))).squareRoot()), epsilon: Float(epsilon))
        // Four elements an invocation.
        let launch = elementwiseLaunch(
            KernelName.adamw, [ShaderConstants.adamw.LOCAL_SIZE_X: .uint(64)], push, count: (range.count + 3) / 4)
        let bindings: [KernelBinding<Resource>] = [
            .readWrite(parameters), .readFloat32(gradients), .readWrite(averages), .readWrite(squareAverages),
        ]
        return [KernelStep(launch, bindings).on(.storage)]
    }
}

extension SGD {
    /// Mirrors `Push` in Shaders/sgd.comp.
    struct PushConstants: BitwiseCopyable {
        var first, count, firstStep: UInt32
        var learningRate, momentum, weightDecay: Float
    }

    /// One step over `range`: the parameters and the momentum buffer in place (the buffer is only written on the
    /// first step).
    public func steps<Resource>(
        parameters: Resource, gradients: Resource, momentum momentumBuffer: Resource, range: ElementRange,
        firstStep: Bool, decays: Bool
    ) -> [KernelStep<Resource>] {
        let push = PushConstants(
            first: UInt32(range.first), count: UInt32(range.count), firstStep: firstStep ? 1 : 0,
            learningRate: Float(learningRate), momentum: Float(momentum),
            weightDecay: Float(decays ? weightDecay : 0))
        typealias Spec = ShaderConstants.sgd
        let launch = elementwiseLaunch(
            KernelName.sgd, [Spec.LOCAL_SIZE_X: .uint(64), Spec.NESTEROV: .uint(nesterov ? 1 : 0)], push,
            count: range.count)
        let bindings: [KernelBinding<Resource>] = [
            .readWrite(parameters), .readFloat32(gradients), .readWrite(momentumBuffer),
        ]
        return [KernelStep(launch, bindings).on(.storage)]
    }
}

/// The model EMA's update on the device (``updateAverage(_:toward:decay:)`` is the reference).
public struct ModelAverage: Hashable, Sendable {
    public var decay: Double

    public init(decay: Double) { self.decay = decay }

    /// Mirrors `Push` in Shaders/ema.comp.
    struct PushConstants: BitwiseCopyable {
        var first, count: UInt32
        var decay: Float
    }

    /// `average = average decay + (1 - decay) values` over `range`, in place.
    public func steps<Resource>(average: Resource, values: Resource, range: ElementRange) -> [KernelStep<Resource>] {
        let push = PushConstants(first: UInt32(range.first), count: UInt32(range.count), decay: Float(decay))
        let launch = elementwiseLaunch(
            KernelName.ema, [ShaderConstants.ema.LOCAL_SIZE_X: .uint(64)], push, count: range.count)
        return [KernelStep(launch, [.readWrite(average), .readFloat32(values)]).on(.storage)]
    }
}

/// Clipping gradients by their global L2 norm on the device (``clipByGlobalNorm(_:maxNorm:)`` is the reference):
/// partial sums of squares of each range, their total and the coefficient, then every range scaled.
public struct GradientClipping: Hashable, Sendable {
    public var maxNorm: Double
    /// The ranges of gradient values, each in a buffer of its own or several in one arena.
    public var ranges: [ElementRange]

    /// Elements each partial sum covers.
    static let chunk = 16384

    public init(maxNorm: Double, ranges: [ElementRange]) { (self.maxNorm, self.ranges) = (maxNorm, ranges) }

    private func slots(_ range: ElementRange) -> Int { max(1, (range.count + Self.chunk - 1) / Self.chunk) }

    /// Floats of the partials buffer: one per chunk of every range, then the norm and the coefficient, at
    /// ``normIndex`` and after it.
    public var partialsCount: Int { normIndex + 2 }
    /// Where the partials buffer holds the global norm after the steps.
    public var normIndex: Int { ranges.reduce(0) { $0 + slots($1) } }

    /// Mirrors `Push` in Shaders/gradient_norm.comp.
    struct PushConstants: BitwiseCopyable {
        var first, count, slot: UInt32
        var maxNorm: Float
    }

    /// The steps; `gradients[i]` holds `ranges[i]`.
    public func steps<Resource>(gradients: [Resource], partials: Resource) -> [KernelStep<Resource>] {
        precondition(gradients.count == ranges.count, "gradient clipping: one buffer per range")
        typealias Spec = ShaderConstants.gradient_norm
        let constants: [UInt32: SpecializationValue] = [
            Spec.LOCAL_SIZE_X: .uint(64), Spec.CHUNK: .uint(UInt32(Self.chunk)),
        ]
        var slot = 0
        let sums = zip(gradients, ranges).map { gradient, range in
            let push = PushConstants(
                first: UInt32(range.first), count: UInt32(range.count), slot: UInt32(slot), maxNorm: Float(maxNorm))
            slot += slots(range)
            let launch = KernelLaunch(
                kernel: KernelName.gradient_norm, specialization: constants, pushConstants: push,
                groups: (slots(range), 1, 1))
            return KernelStep(launch, [.readFloat32(gradient), .writeFloat32(partials)]).on(.storage)
        }
        let totalPush = PushConstants(first: 0, count: 1, slot: UInt32(normIndex), maxNorm: Float(maxNorm))
        let total = KernelStep(
            elementwiseLaunch(KernelName.gradient_norm_total, constants, totalPush, count: 1), [.readWrite(partials)]
        ).on(.storage)
        let clips = zip(gradients, ranges).map { gradient, range in
            let push = PushConstants(
                first: UInt32(range.first), count: UInt32(range.count), slot: UInt32(normIndex), maxNorm: Float(maxNorm)
            )
            return KernelStep(
                elementwiseLaunch(KernelName.gradient_norm_clip, constants, push, count: range.count),
                [.readFloat32(partials), .readWrite(gradient)]
            ).on(.storage)
        }
        return sums + [total] + clips
    }
}

// MARK: - Checks

/// Values `before` with `range` replaced by `updated`.
private func splice(_ before: [Float], _ range: ElementRange, _ updated: [Double]) -> [Float] {
    var result = before
    for (offset, value) in updated.enumerated() { result[range.first + offset] = Float(value) }
    return result
}

/// The change a step made, `after - before`, element by element: what a check compares, so that a wrong update
/// much smaller than the parameters cannot hide in their rounding.
private func change(_ after: [Float], _ before: [Float]) -> [Float] {
    zip(after, before).map { Float(Double($0) - Double($1)) }
}

extension AdamW {
    /// Step 3 over the middle of a buffer (what lies outside `range` must stay), from random moving averages, against
    /// ``step(_:gradient:state:decays:)``: the parameters' change and both averages.
    /// The step over elements `first ..< count - 2` of `count` (the others left alone): four at a time where they are
    /// whole aligned groups, one by one at unaligned ends.
    public func check(count: Int, decays: Bool, first: Int = 3) -> KernelCheck {
        let shape = "\(count) elements from \(first) lr \(learningRate)\(decays ? " decay \(weightDecay)" : "")"
        return KernelCheck(op: "adamw", shape: shape) { runner, random in
            let range = ElementRange(first: first, count: count - first - 2)
            let p0 = random.floats(count), g = random.floats(count), m0 = random.floats(count, in: -0.1...0.1)
            let v0 = random.floats(count, in: 0...0.01)
            let (p, m, v) = (try runner.inputOutput(p0), try runner.inputOutput(m0), try runner.inputOutput(v0))
            runner.add(
                steps(
                    parameters: p, gradients: try runner.input(g), averages: m, squareAverages: v, range: range,
                    step: 3,
                    decays: decays))
            try runner.run()
            let slice = range.first..<(range.first + range.count)
            var parameter = p0[slice].map(Double.init)
            var state = State(count: range.count)
            (state.average, state.squareAverage, state.steps) = (
                m0[slice].map(Double.init), v0[slice].map(Double.init), 2
            )
            step(&parameter, gradient: g[slice].map(Double.init), state: &state, decays: decays)
            return .worst([
                "change": Comparison(change(try runner.read(p), p0), change(splice(p0, range, parameter), p0)),
                "average": Comparison(try runner.read(m), splice(m0, range, state.average)),
                "square average": Comparison(try runner.read(v), splice(v0, range, state.squareAverage)),
            ])
        }
    }
}

extension SGD {
    /// One step over the middle of a buffer, the first (the buffer set to the gradient) or a later one, against
    /// ``step(_:gradient:buffer:decays:)``.
    public func check(count: Int, firstStep: Bool) -> KernelCheck {
        let shape = "\(count) elements\(nesterov ? " nesterov" : "")\(firstStep ? " first step" : "")"
        return KernelCheck(op: "sgd", shape: shape) { runner, random in
            let range = ElementRange(first: 2, count: count - 3)
            let p0 = random.floats(count), g = random.floats(count), b0 = random.floats(count)
            let (p, b) = (try runner.inputOutput(p0), try runner.inputOutput(b0))
            runner.add(
                steps(
                    parameters: p, gradients: try runner.input(g), momentum: b, range: range, firstStep: firstStep,
                    decays: true))
            try runner.run()
            let slice = range.first..<(range.first + range.count)
            var parameter = p0[slice].map(Double.init)
            var buffer: [Double]? = firstStep ? nil : b0[slice].map(Double.init)
            step(&parameter, gradient: g[slice].map(Double.init), buffer: &buffer, decays: true)
            return .worst([
                "change": Comparison(change(try runner.read(p), p0), change(splice(p0, range, parameter), p0)),
                "momentum": Comparison(try runner.read(b), splice(b0, range, buffer ?? [])),
            ])
        }
    }
}

extension ModelAverage {
    /// One update over the middle of a buffer against ``updateAverage(_:toward:decay:)``: the change.
    public func check(count: Int) -> KernelCheck {
        KernelCheck(op: "ema", shape: "\(count) elements decay \(decay)") { runner, random in
            let range = ElementRange(first: 1, count: count - 2)
            let a0 = random.floats(count), values = random.floats(count)
            let average = try runner.inputOutput(a0)
            runner.add(steps(average: average, values: try runner.input(values), range: range))
            try runner.run()
            let slice = range.first..<(range.first + range.count)
            var expected = a0[slice].map(Double.init)
            updateAverage(&expected, toward: values[slice].map(Double.init), decay: decay)
            return Comparison(change(try runner.read(average), a0), change(splice(a0, range, expected), a0))
        }
    }
}

extension GradientClipping {
    /// Clips random gradients, one buffer per range, against ``clipByGlobalNorm(_:maxNorm:)``: the gradients and the
    /// norm. `scale` sets the gradients' size, so that they are clipped or left alone.
    public func check(scale: Float) -> KernelCheck {
        KernelCheck(op: "gradient_norm", shape: "\(ranges.map(\.count)) max norm \(maxNorm) values ±\(scale)") {
            runner, random in
            let values = ranges.map { random.floats($0.first + $0.count, in: -scale...scale) }
            let buffers = try values.map(runner.inputOutput)
            let partials = try runner.output(partialsCount)
            runner.add(steps(gradients: buffers, partials: partials))
            try runner.run()
            var named = Dictionary(
                uniqueKeysWithValues: zip(values, ranges).enumerated().map { index, pair in
                    ("\(index)", pair.0[pair.1.first...].map(Double.init))
                })
            let norm = clipByGlobalNorm(&named, maxNorm: maxNorm)
            let expected = values.indices.flatMap { index in
                splice(values[index], ranges[index], named["\(index)"] ?? [])
            }
            return .worst([
                "gradients": Comparison(try buffers.flatMap(runner.read), expected),
                "norm": Comparison([try runner.read(partials)[normIndex]], [Float(norm)]),
            ])
        }
    }
}
