import Foundation
import VulkanCompute

/// The specialization constants of Shaders/squeeze_excite_gates.comp, by name.
private typealias GatesSpec = ShaderConstants.squeeze_excite_gates

/// The specialization constants of Shaders/squeeze_excite_scale.comp, by name.
private typealias ScaleSpec = ShaderConstants.squeeze_excite_scale

/// Squeeze-excite on an NCHW tensor, with the block's residual add and activation fused into its last step:
///
///     s = mean over H, W of x                 (squeeze: ``GlobalAvgPool``)
///     g = sigmoid(fc2(inner(fc1(s))))         (excite: Shaders/squeeze_excite_gates.comp; fc1, fc2 are 1x1 convs with bias)
///     y = outer(x * g + residual)             (scale: Shaders/squeeze_excite_scale.comp)
///
/// `inner` is ReLU in BossNet and SiLU in the MBConv space; `outer` is the block's activation (identity when SE is not
/// the block's last step).
public struct SqueezeExcite: Hashable, Sendable, Codable {
    public var batch: Int
    public var channels: Int
    public var pixels: Int
    /// Channels between fc1 and fc2.
    public var reduced: Int
    public var innerActivation: Activation
    /// What follows the channel scaling: the residual add (when `hasResidual`) and the activation.
    public var epilogue: Epilogue

    /// The most reduced channels the excite kernel holds in shared memory.
    public static let maxReduced = 1024

    public init(
        batch: Int, channels: Int, pixels: Int, reduced: Int, innerActivation: Activation,
        epilogue: Epilogue = Epilogue()
    ) {
        precondition(
            reduced >= 1 && reduced <= Self.maxReduced, "squeeze-excite: 1...\(Self.maxReduced) reduced channels")
        self.batch = batch
        self.channels = channels
        self.pixels = pixels
        self.reduced = reduced
        self.innerActivation = innerActivation
        self.epilogue = epilogue
    }

    public var count: Int { batch * channels * pixels }
    /// Multiply-adds of fc1 and fc2 (the scaling is not counted, as FLOP counters do not count it).
    public var madds: Int { batch * 2 * channels * reduced }

    /// The CPU reference for the whole operation. `w1` is `[reduced][channels]`, `w2` is `[channels][reduced]`.
    public func reference(input: [Float], w1: [Float], b1: [Float], w2: [Float], b2: [Float], residual: [Float]? = nil)
        -> [Float]
    {
        precondition(
            input.count == count && w1.count == reduced * channels && w2.count == channels * reduced
                && b1.count == reduced && b2.count == channels, "squeeze-excite: wrong sizes")
        let gates = referenceGates(
            means: GlobalAvgPool(batch: batch, channels: channels, pixels: pixels).reference(input: input),
            w1: w1, b1: b1, w2: w2, b2: b2)
        return input.indices.map { index in
            let value = Double(input[index]) * Double(gates[index / pixels])
            return Float(
                epilogue.activation.apply(epilogue.hasResidual ? value + Double(residual?[index] ?? 0) : value))
        }
    }

    /// The excitation alone: gates `[N][C]` from channel means `[N][C]`.
    public func referenceGates(means: [Float], w1: [Float], b1: [Float], w2: [Float], b2: [Float]) -> [Float] {
        var gates = [Float](repeating: 0, count: batch * channels)
        for n in 0..<batch {
            let hidden = (0..<reduced).map { j in
                innerActivation.apply(
                    (0..<channels).reduce(Double(b1[j])) {
                        $0 + Double(w1[j * channels + $1]) * Double(means[n * channels + $1])
                    })
            }
            for c in 0..<channels {
                let sum = (0..<reduced).reduce(Double(b2[c])) { $0 + Double(w2[c * reduced + $1]) * hidden[$1] }
                gates[n * channels + c] = Float(Activation.sigmoid.apply(sum))
            }
        }
        return gates
    }

    /// Step 1: channel means (a ``GlobalAvgPool``).
    public var squeeze: GlobalAvgPool { GlobalAvgPool(batch: batch, channels: channels, pixels: pixels) }

    struct ExcitePushConstants: BitwiseCopyable {
        var channels, reduced: UInt32
    }

    /// The three dispatches and their bindings: the squeeze (input to `means`, `[N][C]`), the excitation (`means`,
    /// fc1's weights and bias, fc2's weights and bias, to `gates`, `[N][C]`), and the scaling (input, `gates`, the
    /// residual when the epilogue has one, to the output). `means` and `gates` are scratch for this operation alone.
    public func steps<Resource>(
        input: Resource, w1: Resource, b1: Resource, w2: Resource, b2: Resource, means: Resource, gates: Resource,
        residual: Resource?, output: Resource, config: KernelConfig = .texel
    ) -> [KernelStep<Resource>] {
        let scaled: TexelFormat = vec4Scale ? .rgba32Float : .r32Float
        return squeeze.steps(input: input, output: means, config: config)
            + [
                KernelStep(
                    exciteLaunch(),
                    [
                        .read(means, fc1Format), .read(w1, fc1Format), .readSmall(b1), .read(w2, fc2Format),
                        .readSmall(b2), .write(gates),
                    ]),
                KernelStep(
                    scaleLaunch(),
                    [.read(input, scaled), .read(gates), .read(residual ?? input, scaled), .write(output)]),
            ].map { $0.on(config.dataPath) }
    }

    /// How the excitation reads the means and fc1's weights (four channels a fetch when C % 4 == 0), and fc2's
    /// weights (four reduced channels a fetch when R % 4 == 0).
    var fc1Format: TexelFormat { channels % 4 == 0 ? .rgba32Float : .r32Float }
    var fc2Format: TexelFormat { reduced % 4 == 0 ? .rgba32Float : .r32Float }

    func exciteLaunch() -> KernelLaunch {
        KernelLaunch(
            kernel: KernelName.squeeze_excite_gates,
            specialization: [
                GatesSpec.LOCAL_SIZE_X: .uint(64), GatesSpec.ACTIVATION: .uint(innerActivation.rawValue),
                GatesSpec.VEC4_FC1: .bool(fc1Format == .rgba32Float),
                GatesSpec.VEC4_FC2: .bool(fc2Format == .rgba32Float),
            ],
            pushConstants: ExcitePushConstants(channels: UInt32(channels), reduced: UInt32(reduced)),
            groups: (batch, 1, 1))
    }

    struct ScalePushConstants: BitwiseCopyable {
        var count, pixels: UInt32
    }

    /// Whether the scaling reads and writes four values at a time (input and residual then bound as RGBA32F views).
    var vec4Scale: Bool { pixels % 4 == 0 }

    func scaleLaunch() -> KernelLaunch {
        KernelLaunch(
            kernel: KernelName.squeeze_excite_scale,
            specialization: [
                ScaleSpec.LOCAL_SIZE_X: .uint(64), ScaleSpec.VEC4: .bool(vec4Scale),
                ScaleSpec.ACTIVATION: .uint(epilogue.activation.rawValue),
                ScaleSpec.HAS_RESIDUAL: .bool(epilogue.hasResidual),
            ],
            pushConstants: ScalePushConstants(count: UInt32(count), pixels: UInt32(pixels)),
            groups: Grid.flat(items: (count + 3) / 4, localSize: 64))
    }
}

extension SqueezeExcite: KernelOperation {
    public static let name = "squeeze_excite"
}

// MARK: - Check

extension SqueezeExcite {
    public var shapeDescription: String {
        "n\(batch) c\(channels) \(pixels)px r\(reduced) inner \(innerActivation) \(epilogue.summary)"
    }

    /// Compares the three steps together (squeeze, excite, scale) with the CPU reference at this shape, on random
    /// inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        KernelCheck(op: Self.name, shape: shapeDescription) { runner, random in
            let input = runner.stored(random.floats(count))
            let w1 = runner.stored(random.weights(reduced * channels, fanIn: channels))
            let b1 = runner.stored(random.floats(reduced, in: -0.2...0.2))
            let w2 = runner.stored(random.weights(channels * reduced, fanIn: reduced))
            let b2 = runner.stored(random.floats(channels, in: -0.2...0.2))
            let residual = epilogue.hasResidual ? runner.stored(random.floats(count)) : nil
            let y = try runner.output(count)
            runner.add(
                steps(
                    input: try runner.input(input), w1: try runner.input(w1), b1: try runner.input(b1),
                    w2: try runner.input(w2), b2: try runner.input(b2), means: try runner.output(batch * channels),
                    gates: try runner.output(batch * channels), residual: try residual.map(runner.input), output: y,
                    config: runner.config))
            try runner.run()
            let expected = runner.reference(reading: [input, w1, b1, w2, b2, residual]) {
                reference(input: input, w1: w1, b1: b1, w2: w2, b2: b2, residual: residual)
            }
            return Comparison(try runner.read(y), expected)
        }
    }
}
