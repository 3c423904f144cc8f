import Foundation

/// BatchNorm as `model.train()` runs it, in Double: each channel normalised with the mean and the biased variance of
/// its values over the batch and the pixels, then scaled by gamma and shifted by beta; the running mean and the
/// unbiased running variance move toward the batch's by `momentum` (PyTorch's defaults: 0.1, eps 1e-5).
public struct BatchNormTraining: Hashable, Sendable {
    public var batch: Int
    public var channels: Int
    public var pixels: Int
    public var epsilon = 1e-5
    public var momentum = 0.1

    public init(batch: Int, channels: Int, pixels: Int) {
        (self.batch, self.channels, self.pixels) = (batch, channels, pixels)
    }

    /// Values per channel in the batch.
    public var valuesPerChannel: Int { batch * pixels }

    /// What the forward keeps for the backward and the running statistics.
    public struct Statistics: Sendable {
        public var mean: [Double]
        /// The biased variance, which normalises.
        public var variance: [Double]
    }

    /// The index range of channel `c` of image `n`.
    private func plane(_ n: Int, _ c: Int) -> Range<Int> {
        ((n * channels + c) * pixels)..<((n * channels + c + 1) * pixels)
    }

    /// Each channel's mean and biased variance over the batch and the pixels.
    public func statistics(_ x: [Double]) -> Statistics {
        precondition(x.count == batch * channels * pixels, "batchnorm: wrong input size")
        var mean = [Double](repeating: 0, count: channels), variance = mean
        let count = Double(valuesPerChannel)
        for c in 0..<channels {
            for n in 0..<batch { for i in plane(n, c) { mean[c] += x[i] } }
            mean[c] /= count
            for n in 0..<batch { for i in plane(n, c) { variance[c] += (x[i] - mean[c]) * (x[i] - mean[c]) } }
            variance[c] /= count
        }
        return Statistics(mean: mean, variance: variance)
    }

    /// gamma (x - mean) / sqrt(variance + eps) + beta with the batch's statistics.
    public func forward(_ x: [Double], gamma: [Double], beta: [Double], statistics: Statistics) -> [Double] {
        var y = x
        for n in 0..<batch {
            for c in 0..<channels {
                let inverse = 1 / (statistics.variance[c] + epsilon).squareRoot()
                for i in plane(n, c) { y[i] = (x[i] - statistics.mean[c]) * inverse * gamma[c] + beta[c] }
            }
        }
        return y
    }

    /// The running statistics after this batch: (1 - momentum) old + momentum batch, the variance unbiased.
    public func updatedRunning(mean: [Double], variance: [Double], statistics: Statistics) -> (
        mean: [Double], variance: [Double]
    ) {
        let unbias = Double(valuesPerChannel) / Double(max(valuesPerChannel - 1, 1))
        return (
            zip(mean, statistics.mean).map { (1 - momentum) * $0 + momentum * $1 },
            zip(variance, statistics.variance).map { (1 - momentum) * $0 + momentum * $1 * unbias }
        )
    }

    /// The gradients with respect to x, gamma and beta: with x-hat the normalised input and m the values per channel,
    /// dx = gamma / sqrt(var + eps) (dy - mean(dy) - x-hat mean(dy x-hat)), dgamma = sum(dy x-hat), dbeta = sum(dy).
    public func backward(_ x: [Double], gamma: [Double], statistics: Statistics, outputGradient dy: [Double]) -> (
        input: [Double], gamma: [Double], beta: [Double]
    ) {
        var dx = x, dgamma = [Double](repeating: 0, count: channels), dbeta = dgamma
        let count = Double(valuesPerChannel)
        for c in 0..<channels {
            let inverse = 1 / (statistics.variance[c] + epsilon).squareRoot()
            for n in 0..<batch {
                for i in plane(n, c) {
                    dbeta[c] += dy[i]
                    dgamma[c] += dy[i] * (x[i] - statistics.mean[c]) * inverse
                }
            }
            for n in 0..<batch {
                for i in plane(n, c) {
                    let normalised = (x[i] - statistics.mean[c]) * inverse
                    dx[i] = gamma[c] * inverse * (dy[i] - dbeta[c] / count - normalised * dgamma[c] / count)
                }
            }
        }
        return (dx, dgamma, dbeta)
    }
}
