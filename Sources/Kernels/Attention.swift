import Foundation
import VulkanCompute

/// Multi-head self-attention in the BoTNet layout (64 channels per head, scale 1/8, softmax over keys).
/// Input: the to_qkv output `[N][3 * heads * 64][T]`, channels `[q | k | v]` each head-major; output
/// `[N][heads * 64][T]`, channel `h * 64 + c`, passed through the fused per-channel scale, shift and activation of
/// the BatchNorm and activation that follow attention in a ResAtt block (no residual). Kernel: Shaders/attention.comp.
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
    /// Multiply-adds of QK^T and AV.
    public var madds: Int { batch * heads * 2 * tokens * tokens * Self.headChannels }

    /// The CPU reference, with the softmax made stable by subtracting each row's maximum. `scale` and `shift` have
    /// `heads * 64` entries (all ones and zeros for plain attention).
    public func reference(qkv: [Float], scale: [Float]? = nil, shift: [Float]? = nil) -> [Float] {
        precondition(qkv.count == inputCount, "attention: wrong input size")
        let scale = scale ?? [Float](repeating: 1, count: channels), shift = shift ?? [Float](repeating: 0, count: channels)
        let d = Self.headChannels, t = tokens
        var output = [Float](repeating: 0, count: outputCount)
        for n in 0..<batch {
            let image = n * 3 * heads * d * t
            for h in 0..<heads {
                let (q, k, v) = (image + h * d * t, image + (heads + h) * d * t, image + (2 * heads + h) * d * t)
                for i in 0..<t {
                    var logits = [Double](repeating: 0, count: t)
                    for j in 0..<t {
                        var sum = 0.0
                        for c in 0..<d { sum += Double(qkv[q + c * t + i]) * Double(qkv[k + c * t + j]) }
                        logits[j] = sum / 8
                    }
                    let largest = logits.max() ?? 0
                    let weights = logits.map { exp($0 - largest) }
                    let total = weights.reduce(0, +)
                    for c in 0..<d {
                        var sum = 0.0
                        for j in 0..<t { sum += weights[j] * Double(qkv[v + c * t + j]) }
                        let channel = h * d + c
                        output[((n * heads + h) * d + c) * t + i] =
                            Float(activation.apply(sum / total * Double(scale[channel]) + Double(shift[channel])))
                    }
                }
            }
        }
        return output
    }

    struct PushConstants: BitwiseCopyable {
        var batch, heads, tokens: UInt32
    }

    /// The dispatch. Bindings: 0 qkv (R32F), 1 affine (R32F: scales then shifts), 2 output.
    public func launch() -> KernelLaunch {
        KernelLaunch(
            kernel: "attention", specialization: [0: .uint(64), 1: .uint(activation.rawValue)],
            pushConstants: PushConstants(batch: UInt32(batch), heads: UInt32(heads), tokens: UInt32(tokens)),
            groups: Grid.flat(items: batch * heads * tokens, localSize: 64))
    }
}
