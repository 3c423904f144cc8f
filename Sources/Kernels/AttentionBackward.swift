import Foundation

// The attention's training reference, in Double: the forward as the authors' bot_op.py computes it (logits q^T k / 8,
// softmax over the keys, out = v attn^T) and its gradient with respect to the to_qkv output.

extension Attention {
    /// The channel offsets of q, k and v of image `n`, head `h` in the to_qkv output (each `[64][tokens]`).
    private func offsets(_ n: Int, _ h: Int) -> (q: Int, k: Int, v: Int) {
        let (d, t) = (Self.headChannels, tokens)
        return (
            (n * 3 * heads + h) * d * t, (n * 3 * heads + heads + h) * d * t, (n * 3 * heads + 2 * heads + h) * d * t
        )
    }

    /// The softmax of image `n`, head `h`: `[i * tokens + j]`, query i over keys j.
    private func probabilities(_ qkv: [Double], _ n: Int, _ h: Int) -> [Double] {
        let (d, t) = (Self.headChannels, tokens), (q, k, _) = offsets(n, h)
        var attn = [Double](repeating: 0, count: t * t)
        for i in 0..<t {
            for j in 0..<t {
                for c in 0..<d { attn[i * t + j] += qkv[q + c * t + i] * qkv[k + c * t + j] }
                attn[i * t + j] /= 8
            }
            Self.softmax(&attn, row: (i * t)..<((i + 1) * t))
        }
        return attn
    }

    /// out[h * 64 + c][i] = sum_j attn[i][j] v[c][j], without the BatchNorm and activation that follow.
    public func trainingForward(qkv: [Double]) -> [Double] {
        precondition(qkv.count == inputCount, "attention: wrong input size")
        let (d, t) = (Self.headChannels, tokens)
        var output = [Double](repeating: 0, count: outputCount)
        for n in 0..<batch {
            for h in 0..<heads {
                let attn = probabilities(qkv, n, h), v = offsets(n, h).v
                for c in 0..<d {
                    for i in 0..<t {
                        for j in 0..<t {
                            output[((n * heads + h) * d + c) * t + i] += attn[i * t + j] * qkv[v + c * t + j]
                        }
                    }
                }
            }
        }
        return output
    }

    /// The gradient with respect to the to_qkv output. With P the softmax and dO the output gradient:
    /// dP[i][j] = sum_c dO[c][i] v[c][j], dv[c][j] = sum_i dO[c][i] P[i][j],
    /// dS[i][j] = P[i][j] (dP[i][j] - sum_j' P[i][j'] dP[i][j']), dq[c][i] = sum_j dS[i][j] k[c][j] / 8,
    /// dk[c][j] = sum_i dS[i][j] q[c][i] / 8.
    public func backward(qkv: [Double], outputGradient: [Double]) -> [Double] {
        precondition(qkv.count == inputCount && outputGradient.count == outputCount, "attention: wrong sizes")
        let (d, t) = (Self.headChannels, tokens)
        var gradient = [Double](repeating: 0, count: inputCount)
        for n in 0..<batch {
            for h in 0..<heads {
                let attn = probabilities(qkv, n, h), (q, k, v) = offsets(n, h)
                let out = ((n * heads + h) * d) * t
                var dS = [Double](repeating: 0, count: t * t)
                for i in 0..<t {
                    for j in 0..<t {
                        for c in 0..<d {
                            dS[i * t + j] += outputGradient[out + c * t + i] * qkv[v + c * t + j]
                            gradient[v + c * t + j] += outputGradient[out + c * t + i] * attn[i * t + j]
                        }
                    }
                    let weighted = (0..<t).reduce(0.0) { $0 + attn[i * t + $1] * dS[i * t + $1] }
                    for j in 0..<t { dS[i * t + j] = attn[i * t + j] * (dS[i * t + j] - weighted) }
                }
                for i in 0..<t {
                    for j in 0..<t {
                        for c in 0..<d {
                            gradient[q + c * t + i] += dS[i * t + j] * qkv[k + c * t + j] / 8
                            gradient[k + c * t + j] += dS[i * t + j] * qkv[q + c * t + i] / 8
                        }
                    }
                }
            }
        }
        return gradient
    }
}
