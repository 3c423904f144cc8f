import Foundation
import VulkanCompute

// Each operation's check: random inputs, the kernel on the device, the reference on the CPU, compared. The tests run
// these at awkward shapes; `bossnet validate` runs them at BossNet-T's real layer shapes.

/// Random scale and shift of order one, as a folded BatchNorm gives.
private func randomAffine(_ channels: Int, _ random: inout SeededRandom, _ runner: KernelRunner) -> (
    scale: [Float], shift: [Float]
) {
    (runner.stored(random.floats(channels, in: 0.5...1.5)), runner.stored(random.floats(channels, in: -0.5...0.5)))
}

/// The check the three convolution kernels share: they differ in shapes, weight packing, steps and reference.
private func convolutionCheck(
    op: String, shape: String, inputCount: Int, outputCount: Int, channels: Int, weightCount: Int, fanIn: Int,
    epilogue: Epilogue, pack: @escaping @Sendable ([Float]) -> [Float],
    scratchCount: @escaping @Sendable (KernelConfig) -> Int = { _ in 0 },
    steps:
        @escaping @Sendable (
            _ input: VulkanBuffer, _ weights: VulkanBuffer, _ affine: VulkanBuffer, _ residual: VulkanBuffer?,
            _ output: VulkanBuffer, _ scratch: VulkanBuffer?, _ config: KernelConfig
        ) -> [KernelStep<VulkanBuffer>],
    reference:
        @escaping @Sendable (
            _ input: [Float], _ weights: [Float], _ scale: [Float], _ shift: [Float], _ residual: [Float]?
        ) -> [Float]
) -> KernelCheck {
    KernelCheck(op: op, shape: shape) { runner, random in
        let input = runner.stored(random.floats(inputCount))
        let weights = runner.stored(random.weights(weightCount, fanIn: fanIn))
        let (scale, shift) = randomAffine(channels, &random, runner)
        let residual = epilogue.hasResidual ? runner.stored(random.floats(outputCount)) : nil
        let y = try runner.output(outputCount)
        let scratch = scratchCount(runner.config)
        runner.add(
            steps(
                try runner.input(input), try runner.input(pack(weights)),
                try runner.input(Epilogue.packAffine(scale: scale, shift: shift)), try residual.map(runner.input), y,
                scratch > 0 ? try runner.output(scratch) : nil, runner.config))
        try runner.run()
        return Comparison(try runner.read(y), reference(input, weights, scale, shift, residual))
    }
}

extension Conv2D {
    public var shapeDescription: String {
        "n\(batch) c\(inChannels) \(height)x\(width) -> \(outChannels) k\(kernelSize) s\(stride) p\(padding) \(epilogue.summary)"
    }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        convolutionCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount,
            channels: outChannels,
            weightCount: weightCount, fanIn: inChannels * kernelSize * kernelSize, epilogue: epilogue,
            pack: packWeights,
            scratchCount: scratchCount,
            steps: { steps(input: $0, weights: $1, affine: $2, residual: $3, output: $4, scratch: $5, config: $6) },
            reference: { reference(input: $0, weights: $1, scale: $2, shift: $3, residual: $4) })
    }
}

extension Pointwise {
    public var shapeDescription: String {
        pixels == 1
            ? "n\(batch) \(inChannels) -> \(outChannels) (linear) \(epilogue.summary)"
            : "n\(batch) c\(inChannels) \(pixels)px -> \(outChannels) \(epilogue.summary)"
    }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        convolutionCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount,
            channels: outChannels,
            weightCount: weightCount, fanIn: inChannels, epilogue: epilogue, pack: packWeights,
            scratchCount: scratchCount,
            steps: { steps(input: $0, weights: $1, affine: $2, residual: $3, output: $4, scratch: $5, config: $6) },
            reference: { reference(input: $0, weights: $1, scale: $2, shift: $3, residual: $4) })
    }
}

extension Depthwise {
    public var shapeDescription: String {
        "n\(batch) c\(channels) \(height)x\(width) k\(kernelSize) s\(stride) p\(padding) \(epilogue.summary)"
    }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        convolutionCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount,
            channels: channels,
            weightCount: weightCount, fanIn: kernelSize * kernelSize, epilogue: epilogue, pack: { $0 },
            steps: { steps(input: $0, weights: $1, affine: $2, residual: $3, output: $4, config: $6) },
            reference: { reference(input: $0, weights: $1, scale: $2, shift: $3, residual: $4) })
    }
}

extension MaxPool {
    public var shapeDescription: String {
        "n\(batch) c\(channels) \(height)x\(width) k\(kernelSize) s\(stride) p\(padding)"
    }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        KernelCheck(op: Self.name, shape: shapeDescription) { runner, random in
            // All negative: a zero from padding would win.
            let input = runner.stored(random.floats(inputCount, in: -4...(-1)))
            let y = try runner.output(outputCount)
            runner.add(steps(input: try runner.input(input), output: y, config: runner.config))
            try runner.run()
            return Comparison(try runner.read(y), reference(input: input))
        }
    }
}

extension AvgPool {
    public var shapeDescription: String { "n\(batch) c\(channels) \(height)x\(width) 2x2 s2 ceil" }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        KernelCheck(op: Self.name, shape: shapeDescription) { runner, random in
            // All positive: counting padding in would show.
            let input = runner.stored(random.floats(inputCount, in: 1...3))
            let y = try runner.output(outputCount)
            runner.add(steps(input: try runner.input(input), output: y, config: runner.config))
            try runner.run()
            return Comparison(try runner.read(y), reference(input: input))
        }
    }
}

extension GlobalAvgPool {
    public var shapeDescription: String { "n\(batch) c\(channels) \(pixels)px" }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        KernelCheck(op: Self.name, shape: shapeDescription) { runner, random in
            // Post-activation values, as the pooled features are (SiLU's range): a mean near zero would make the
            // relative error of a long float32 sum meaningless.
            let input = runner.stored(random.floats(inputCount, in: -0.25...2))
            let y = try runner.output(outputCount)
            runner.add(steps(input: try runner.input(input), output: y, config: runner.config))
            try runner.run()
            return Comparison(try runner.read(y), reference(input: input))
        }
    }
}

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
            return Comparison(
                try runner.read(y), reference(input: input, w1: w1, b1: b1, w2: w2, b2: b2, residual: residual))
        }
    }
}

extension Attention {
    public var shapeDescription: String { "n\(batch) heads \(heads) tokens \(tokens) \(activation)" }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        KernelCheck(op: Self.name, shape: shapeDescription) { runner, random in
            // Spread-out logits (a standard deviation of about 3 units, as a trained network's), so the softmax is
            // far from uniform, attention and its transpose differ, and the softmax's stability matters.
            let qkv = runner.stored(random.floats(inputCount, in: -3...3))
            let (scale, shift) = randomAffine(channels, &random, runner)
            let y = try runner.output(outputCount)
            let scratch = scratchCount(runner.config)
            runner.add(
                steps(
                    qkv: try runner.input(qkv), rows: scratch > 0 ? try runner.output(scratch) : nil,
                    affine: try runner.input(Epilogue.packAffine(scale: scale, shift: shift)), output: y,
                    config: runner.config))
            try runner.run()
            return Comparison(try runner.read(y), reference(qkv: qkv, scale: scale, shift: shift))
        }
    }
}

extension Add {
    public var shapeDescription: String { "\(count) elements \(activation)" }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        KernelCheck(op: Self.name, shape: shapeDescription) { runner, random in
            let a = runner.stored(random.floats(count, in: -4...4)), b = runner.stored(random.floats(count, in: -4...4))
            let y = try runner.output(count)
            runner.add(steps(a: try runner.input(a), b: try runner.input(b), output: y, config: runner.config))
            try runner.run()
            return Comparison(try runner.read(y), reference(a, b))
        }
    }
}

extension Epilogue {
    /// "relu", "silu+res", ... for shape descriptions.
    public var summary: String { "\(activation)" + (hasResidual ? "+res" : "") }
}
