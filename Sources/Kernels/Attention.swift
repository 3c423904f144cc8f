import Foundation
import VulkanCompute

/// The specialization constants of Shaders/attention_tiled.comp, by name.
private typealias TiledSpec = ShaderConstants.attention_tiled

/// Multi-head self-attention as BossNet's checkpoints compute it: the BoTNet layout (64 channels per head, scale
/// 1/8, softmax over keys), aggregated as the authors' latest `bot_op.py` does (`out = v @ attn.transpose(-2, -1)`,
/// from their commit "fix code mismatch with old checkpoints & support EMA"): query token i gathers the values of all
/// keys j, weighted by its softmax row.
///
///     logits[i][j] = (1/8) sum_c q[c][i] k[c][j];   attn[i] = softmax(logits[i])  (over keys j)
///     out[h*64 + c][i] = sum_j attn[i][j] v[c][j]
///
/// (Their earlier code, and the search supernet, had `v @ attn`, the transpose; the published checkpoints need this.)
/// Input: the to_qkv output `[N][3 * heads * 64][T]`, channels `[q | k | v]` each head-major; output
/// `[N][heads * 64][T]`, passed through the fused per-channel scale, shift and activation of the BatchNorm and
/// activation that follow attention in a ResAtt block (no residual).
/// Kernels: Shaders/attention_rows.comp (each softmax row's log-sum-exp), then Shaders/attention.comp (their
/// `_shuffle` variants where subgroups can share the fetched keys and values), or Shaders/attention_tiled.comp.
public struct Attention: Hashable, Sendable, Codable {
    public var batch: Int
    public var heads: Int
    /// Tokens: H * W of the feature map.
    public var tokens: Int
    /// Scale, shift and activation after attention; a residual is not supported here.
    public var activation: Activation

    /// Channels per head.
    public static let headChannels = 64

    public init(batch: Int, heads: Int, tokens: Int, activation: Activation = .identity) {
        self.batch = batch
        self.heads = heads
        self.tokens = tokens
        self.activation = activation
    }

    public var channels: Int { heads * Self.headChannels }
    public var inputCount: Int { batch * 3 * heads * Self.headChannels * tokens }
    public var outputCount: Int { batch * heads * Self.headChannels * tokens }
    /// Floats of scratch between the two kernels of the untiled families: one log-sum-exp per softmax row (the tiled
    /// kernel needs none).
    public func scratchCount(_ config: KernelConfig) -> Int {
        config.strategy == .sharedMemoryTiled ? 0 : batch * heads * tokens
    }

    /// Keys per shared-memory tile of Shaders/attention_tiled.comp (K and V tiles: 2 x 4 x 64 floats, 2 KiB). Each lane
    /// does 512 multiply-adds per tile for 8 loads into shared memory, with 4 logits in registers; a longer tile
    /// unrolls a longer body, which compiles superlinearly longer (BENCHMARKS.md, "The tiled attention's key tile").
    static let keyTile = 4
    /// Multiply-adds of QK^T and AV.
    public var madds: Int { batch * heads * 2 * tokens * tokens * Self.headChannels }

    /// The CPU reference, with each softmax row made stable by subtracting its maximum. `scale` and `shift` have
    /// `heads * 64` entries (ones and zeros when omitted).
    public func reference(qkv: [Float], scale: [Float]? = nil, shift: [Float]? = nil) -> [Float] {
        precondition(qkv.count == inputCount, "attention: wrong input size")
        let scale = scale ?? [Float](repeating: 1, count: channels),
            shift = shift ?? [Float](repeating: 0, count: channels)
        let d = Self.headChannels, t = tokens
        var output = [Float](repeating: 0, count: outputCount)
        for n in 0..<batch {
            for h in 0..<heads {
                let v = (n * 3 * heads + 2 * heads + h) * d * t
                let attn = logits(qkv: qkv, image: n, head: h, softmax: true)
                for c in 0..<d {
                    let channel = h * d + c
                    for i in 0..<t {
                        var sum = 0.0
                        for j in 0..<t { sum += attn[i * t + j] * Double(qkv[v + c * t + j]) }
                        output[((n * heads + h) * d + c) * t + i] =
                            Float(activation.apply(sum * Double(scale[channel]) + Double(shift[channel])))
                    }
                }
            }
        }
        return output
    }

    /// The attention logits of image `n` and head `h`, `[i * tokens + j]` = (1/8) sum_c q[c][i] k[c][j] (query i,
    /// key j), in Double; with `softmax`, each row i turned into its softmax over the keys (stabilised by its maximum).
    public func logits(qkv: [Float], image n: Int, head h: Int, softmax: Bool) -> [Double] {
        let d = Self.headChannels, t = tokens
        let q = (n * 3 * heads + h) * d * t, k = (n * 3 * heads + heads + h) * d * t
        var attn = [Double](repeating: 0, count: t * t)
        for i in 0..<t {
            // Each logit sums its products in channel order; the keys are the inner loop so that it reads in order.
            for c in 0..<d {
                accumulateScaled(Double(qkv[q + c * t + i]), qkv, from: k + c * t, into: &attn, at: i * t, count: t)
            }
            for j in 0..<t { attn[i * t + j] /= 8 }
            if softmax { Self.softmax(&attn, row: (i * t)..<((i + 1) * t)) }
        }
        return attn
    }

    /// Turns `values[row]` into its softmax, stabilised by its maximum (the references' one definition of it).
    static func softmax(_ values: inout [Double], row: Range<Int>) {
        let largest = values[row].max() ?? 0
        for index in row { values[index] = exp(values[index] - largest) }
        let total = values[row].reduce(0, +)
        for index in row { values[index] /= total }
    }

    struct PushConstants: BitwiseCopyable {
        var batch, heads, tokens: UInt32
    }

    private var pushConstants: PushConstants {
        PushConstants(batch: UInt32(batch), heads: UInt32(heads), tokens: UInt32(tokens))
    }

    /// The dispatches and their bindings. Untiled: the row statistics (qkv to `rows`, ``scratchCount(_:)`` floats of
    /// float32 scratch), then attention (qkv, `rows`, the affine packed by ``Epilogue/packAffine(scale:shift:)``, to
    /// the output). Tiled: one flash-style pass (qkv, the affine, to the output; `rows` unused).
    public func steps<Resource>(
        qkv: Resource, rows: Resource?, affine: Resource, output: Resource, config: KernelConfig = .texel
    ) -> [KernelStep<Resource>] {
        precondition(
            config.strategy == .sharedMemoryTiled || rows != nil,
            "attention needs scratch for its row statistics (see scratchCount(_:))")
        guard config.strategy == .registerTiled, let rows else {
            let lanes = config.lanes
            let launch = KernelLaunch(
                kernel: KernelName.attention_tiled,
                specialization: [
                    TiledSpec.LOCAL_SIZE_X: .uint(UInt32(lanes)), TiledSpec.ACTIVATION: .uint(activation.rawValue),
                    TiledSpec.KEY_TILE: .uint(UInt32(Self.keyTile)),
                ],
                pushConstants: pushConstants, groups: ((tokens + lanes - 1) / lanes, batch * heads, 1))
            return [KernelStep(launch, [.read(qkv), .readSmall(affine), .write(output)]).on(config.dataPath)]
        }
        // The `_shuffle` kernels share each fetched key and value across a subgroup.
        let input: KernelBinding<Resource> =
            config.limits.sharesFetchesAcrossSubgroup ? .readImage(qkv, .r32Float) : .read(qkv)
        return [
            KernelStep(
                launch(
                    (KernelName.attention_rows, KernelName.attention_rows_shuffle), specialization: [:], config.limits),
                [input, .writeFloat32(rows)]),
            KernelStep(
                launch(
                    (KernelName.attention, KernelName.attention_shuffle),
                    specialization: [ShaderConstants.attention.ACTIVATION: .uint(activation.rawValue)],
                    config.limits),
                [input, .readFloat32(rows), .readSmall(affine), .write(output)]),
        ].map { $0.on(config.dataPath) }
    }

    /// One of the two untiled dispatches: one invocation per (image, head, query token); in the `_shuffle` kernels,
    /// workgroups of query tokens of one (image, head) each (workgroup y), a multiple of 8 lanes.
    private func launch(
        _ kernel: (plain: String, shuffle: String), specialization: [UInt32: SpecializationValue],
        _ limits: DeviceLimits
    )
        -> KernelLaunch
    {
        guard limits.sharesFetchesAcrossSubgroup else {
            return KernelLaunch(
                kernel: kernel.plain,
                specialization: specialization.merging([ShaderConstants.attention.LOCAL_SIZE_X: .uint(64)]) { $1 },
                pushConstants: pushConstants, groups: Grid.flat(items: batch * heads * tokens, localSize: 64))
        }
        let local = min(64, Grid.roundUp(tokens, to: 8))
        return KernelLaunch(
            kernel: kernel.shuffle,
            specialization: specialization.merging([ShaderConstants.attention.LOCAL_SIZE_X: .uint(UInt32(local))]) {
                $1
            },
            pushConstants: pushConstants, groups: ((tokens + local - 1) / local, batch * heads, 1))
    }
}

extension Attention: KernelOperation {
    public static let name = "attention"
}

// MARK: - Check

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
            let expected = runner.reference(reading: [qkv, scale, shift]) {
                reference(qkv: qkv, scale: scale, shift: shift)
            }
            return Comparison(try runner.read(y), expected)
        }
    }
}
