import Foundation

/// A convolution as training sees it, in Double: dense (``Conv2D``, ``Pointwise`` and linear layers) or depthwise
/// (``Depthwise``), with an optional bias and no BatchNorm or epilogue (training keeps those apart). The plain CPU
/// reference of the forward and of both gradients. A dense convolution runs as products of the weights with each
/// image's patches (the windows its outputs read, zeros over the padding); a depthwise one a row of output pixels at a
/// time.
public struct ConvolutionGeometry: Hashable, Sendable {
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var height: Int
    public var width: Int
    public var kernelSize: Int
    public var stride: Int
    public var padding: Int
    /// One filter per channel (`inChannels == outChannels`, weights `[C][1][k][k]`) instead of a dense `[M][C][k][k]`.
    public var depthwise: Bool
    /// Images whose patches a dense convolution's training steps make at once (its scratch holds that many): the
    /// whole batch unless set lower, so that the patches fit one buffer (``fittingPatches(maxBytes:)``).
    public var patchImages: Int

    public init(
        batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int, kernelSize: Int, stride: Int,
        padding: Int, depthwise: Bool
    ) {
        precondition(!depthwise || inChannels == outChannels, "a depthwise convolution keeps its channels")
        (self.batch, self.inChannels, self.outChannels, self.height, self.width) =
            (batch, inChannels, outChannels, height, width)
        (self.kernelSize, self.stride, self.padding, self.depthwise) = (kernelSize, stride, padding, depthwise)
        patchImages = batch
    }

    public var outHeight: Int { windowOutputSize(height, kernel: kernelSize, stride: stride, padding: padding) }
    public var outWidth: Int { windowOutputSize(width, kernel: kernelSize, stride: stride, padding: padding) }
    public var inputCount: Int { batch * inChannels * height * width }
    public var outputCount: Int { batch * outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * (depthwise ? 1 : inChannels) * kernelSize * kernelSize }

    /// The input channels output channel `m` reads.
    private func sources(_ m: Int) -> Range<Int> { depthwise ? m..<(m + 1) : 0..<inChannels }

    /// The index of weight (m, c, ky, kx).
    private func weightIndex(_ m: Int, _ c: Int, _ ky: Int, _ kx: Int) -> Int {
        ((m * (depthwise ? 1 : inChannels) + (depthwise ? 0 : c)) * kernelSize + ky) * kernelSize + kx
    }

    /// Calls `body(weight index, first input index, first output index, count)` for every row of products of a
    /// depthwise forward: output pixels `output + j` read input pixels `input + j * stride` under one weight, j in
    /// 0..<count.
    private func forEachDepthwiseRow(_ body: (Int, Int, Int, Int) -> Void) {
        let window = SlidingWindow(height: height, width: width, kernel: kernelSize, stride: stride, padding: padding)
        for n in 0..<batch {
            for c in 0..<inChannels {
                let plane = (n * inChannels + c) * height * width, output = (n * outChannels + c) * outHeight * outWidth
                for ky in 0..<kernelSize {
                    for kx in 0..<kernelSize {
                        window.forEachRow(ky: ky, kx: kx) { from, at, count in
                            body(weightIndex(c, c, ky, kx), plane + from, output + at, count)
                        }
                    }
                }
            }
        }
    }

    /// Values in one patch: the window of every input channel a dense output reads, in weight order (c, ky, kx).
    private var patchSize: Int { inChannels * kernelSize * kernelSize }

    /// Calls `body(patch entry, input index)` for every entry of output pixel `p`'s patch of image `n` inside the
    /// input (entries over the padding are zero and skipped).
    private func forEachPatchEntry(image n: Int, pixel p: Int, _ body: (Int, Int) -> Void) {
        let (k, oy, ox) = (kernelSize, p / outWidth, p % outWidth)
        for c in 0..<inChannels {
            for ky in 0..<k {
                let iy = oy * stride - padding + ky
                guard iy >= 0 && iy < height else { continue }
                for kx in 0..<k {
                    let ix = ox * stride - padding + kx
                    guard ix >= 0 && ix < width else { continue }
                    body((c * k + ky) * k + kx, ((n * inChannels + c) * height + iy) * width + ix)
                }
            }
        }
    }

    /// Image `n`'s patches, `[output pixel][patchSize]`: a dense convolution is then one matrix product with the
    /// weights `[outChannels][patchSize]`.
    private func patches(_ x: [Double], image n: Int) -> [Double] {
        var patches = [Double](repeating: 0, count: outHeight * outWidth * patchSize)
        for p in 0..<(outHeight * outWidth) {
            forEachPatchEntry(image: n, pixel: p) { entry, index in patches[p * patchSize + entry] = x[index] }
        }
        return patches
    }

    /// y = conv(x, w) + bias.
    public func forward(input: [Double], weights: [Double], bias: [Double]?) -> [Double] {
        precondition(input.count == inputCount && weights.count == weightCount, "convolution: wrong input or weights")
        var output = [Double](repeating: 0, count: outputCount)
        if depthwise {
            forEachDepthwiseRow { w, i, o, count in
                accumulateScaled(weights[w], input, from: i, stride: stride, into: &output, at: o, count: count)
            }
        } else {
            let pixels = outHeight * outWidth
            for n in 0..<batch {
                let patches = patches(input, image: n)
                for m in 0..<outChannels {
                    for p in 0..<pixels {
                        output[(n * outChannels + m) * pixels + p] = dot(
                            weights, from: m * patchSize, patches, from: p * patchSize, count: patchSize)
                    }
                }
            }
        }
        if let bias { addBias(bias, to: &output) }
        return output
    }

    /// The gradients of the loss with respect to the input, the weights and the bias, given its gradient with
    /// respect to the output.
    public func backward(input: [Double], weights: [Double], outputGradient: [Double]) -> (
        input: [Double], weights: [Double], bias: [Double]
    ) {
        precondition(outputGradient.count == outputCount, "convolution: wrong output gradient size")
        var inputGradient = [Double](repeating: 0, count: inputCount)
        var weightGradient = [Double](repeating: 0, count: weightCount)
        if depthwise {
            forEachDepthwiseRow { w, i, o, count in
                for j in 0..<count {
                    inputGradient[i + j * stride] += weights[w] * outputGradient[o + j]
                    weightGradient[w] += input[i + j * stride] * outputGradient[o + j]
                }
            }
        } else {
            let pixels = outHeight * outWidth
            for n in 0..<batch {
                let patches = patches(input, image: n)
                var patchGradient = [Double](repeating: 0, count: patches.count)
                for m in 0..<outChannels {
                    for p in 0..<pixels {
                        let dy = outputGradient[(n * outChannels + m) * pixels + p]
                        accumulateScaled(
                            dy, patches, from: p * patchSize, into: &weightGradient, at: m * patchSize, count: patchSize
                        )
                        accumulateScaled(
                            dy, weights, from: m * patchSize, into: &patchGradient, at: p * patchSize, count: patchSize)
                    }
                }
                for p in 0..<pixels {
                    forEachPatchEntry(image: n, pixel: p) { entry, index in
                        inputGradient[index] += patchGradient[p * patchSize + entry]
                    }
                }
            }
        }
        return (inputGradient, weightGradient, channelSums(outputGradient))
    }

    /// bias[m] added to every pixel of output channel m.
    private func addBias(_ bias: [Double], to output: inout [Double]) {
        precondition(bias.count == outChannels, "convolution: wrong bias size")
        let pixels = outHeight * outWidth
        for index in output.indices { output[index] += bias[(index / pixels) % outChannels] }
    }

    /// The sum of each output channel's values over the batch and the pixels.
    private func channelSums(_ values: [Double]) -> [Double] {
        let pixels = outHeight * outWidth
        var sums = [Double](repeating: 0, count: outChannels)
        for (index, value) in values.enumerated() { sums[(index / pixels) % outChannels] += value }
        return sums
    }
}

extension Conv2D {
    /// This convolution as training computes it.
    public var geometry: ConvolutionGeometry {
        ConvolutionGeometry(
            batch: batch, inChannels: inChannels, outChannels: outChannels, height: height, width: width,
            kernelSize: kernelSize, stride: stride, padding: padding, depthwise: false)
    }
}

extension Pointwise {
    /// This convolution as training computes it (pixels as one row).
    public var geometry: ConvolutionGeometry {
        ConvolutionGeometry(
            batch: batch, inChannels: inChannels, outChannels: outChannels, height: 1, width: pixels, kernelSize: 1,
            stride: 1, padding: 0, depthwise: false)
    }
}

extension Depthwise {
    /// This convolution as training computes it.
    public var geometry: ConvolutionGeometry {
        ConvolutionGeometry(
            batch: batch, inChannels: channels, outChannels: channels, height: height, width: width,
            kernelSize: kernelSize, stride: stride, padding: padding, depthwise: true)
    }
}
