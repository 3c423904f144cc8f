import Foundation

// The pooling kernels' training references, in Double: each window's forward and the gradient each output sends back
// to the inputs it read.

extension MaxPool {
    /// For each output, the index of the input it takes: the first largest in its window (the padding never wins).
    public func winners(_ x: [Double]) -> [Int] {
        precondition(x.count == inputCount, "maxpool: wrong input size")
        var winners = [Int](repeating: 0, count: outputCount)
        for plane in 0..<(batch * channels) {
            for oy in 0..<outHeight {
                for ox in 0..<outWidth {
                    var best = -Double.infinity, winner = -1
                    for ky in 0..<kernelSize {
                        let iy = oy * stride - padding + ky
                        guard iy >= 0 && iy < height else { continue }
                        for kx in 0..<kernelSize {
                            let ix = ox * stride - padding + kx
                            let index = (plane * height + iy) * width + ix
                            guard ix >= 0 && ix < width && (winner < 0 || x[index] > best) else { continue }
                            (best, winner) = (x[index], index)
                        }
                    }
                    winners[(plane * outHeight + oy) * outWidth + ox] = winner
                }
            }
        }
        return winners
    }

    /// Each output's largest input.
    public func trainingForward(_ x: [Double]) -> [Double] { winners(x).map { x[$0] } }

    /// Each output's gradient, added to its winner's.
    public func backward(_ x: [Double], outputGradient: [Double]) -> [Double] {
        var dx = [Double](repeating: 0, count: inputCount)
        for (output, winner) in winners(x).enumerated() { dx[winner] += outputGradient[output] }
        return dx
    }
}

extension AvgPool {
    /// Calls `body(output index, input indices)` for each 2x2 window (ceil mode: the last row and column of an odd
    /// side hold fewer inputs, and average only those).
    private func forEachWindow(_ body: (Int, [Int]) -> Void) {
        for plane in 0..<(batch * channels) {
            for oy in 0..<outHeight {
                for ox in 0..<outWidth {
                    let inputs = ((2 * oy)..<min(2 * oy + 2, height)).flatMap { iy in
                        ((2 * ox)..<min(2 * ox + 2, width)).map { ix in (plane * height + iy) * width + ix }
                    }
                    body((plane * outHeight + oy) * outWidth + ox, inputs)
                }
            }
        }
    }

    /// Each window's mean.
    public func trainingForward(_ x: [Double]) -> [Double] {
        precondition(x.count == inputCount, "avgpool: wrong input size")
        var y = [Double](repeating: 0, count: outputCount)
        forEachWindow { output, inputs in y[output] = inputs.reduce(0.0) { $0 + x[$1] } / Double(inputs.count) }
        return y
    }

    /// Each output's gradient shared evenly among its window's inputs (`x` is not needed).
    public func backward(_ x: [Double], outputGradient: [Double]) -> [Double] {
        var dx = [Double](repeating: 0, count: inputCount)
        forEachWindow { output, inputs in
            for input in inputs { dx[input] += outputGradient[output] / Double(inputs.count) }
        }
        return dx
    }
}

extension GlobalAvgPool {
    /// Each channel's mean over its pixels.
    public func trainingForward(_ x: [Double]) -> [Double] {
        precondition(x.count == batch * channels * pixels, "global_avgpool: wrong input size")
        var y = [Double](repeating: 0, count: batch * channels)
        for index in x.indices { y[index / pixels] += x[index] / Double(pixels) }
        return y
    }

    /// Each channel's gradient shared evenly among its pixels (`x` is not needed).
    public func backward(_ x: [Double], outputGradient: [Double]) -> [Double] {
        (0..<(batch * channels * pixels)).map { outputGradient[$0 / pixels] / Double(pixels) }
    }
}
