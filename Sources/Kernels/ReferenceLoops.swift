import Foundation

// The inner loops the CPU references share: each checks its ranges once, then runs without per-element checks (so
// that it vectorizes), in Double.

/// One input plane seen through a sliding window with zero padding.
struct SlidingWindow {
    let height, width, stride, padding, outHeight, outWidth: Int

    init(height: Int, width: Int, kernel: Int, stride: Int, padding: Int) {
        (self.height, self.width, self.stride, self.padding) = (height, width, stride, padding)
        outHeight = windowOutputSize(height, kernel: kernel, stride: stride, padding: padding)
        outWidth = windowOutputSize(width, kernel: kernel, stride: stride, padding: padding)
    }

    /// Calls `body(input offset, output offset, count)` for each output row under tap (ky, kx), over the output pixels
    /// whose tap lies inside the plane (a tap on the padding reads nothing): output pixels `output offset + j` read
    /// input pixels `input offset + j * stride`, j in 0..<count, offsets within one plane.
    func forEachRow(ky: Int, kx: Int, _ body: (Int, Int, Int) -> Void) {
        // The output columns whose tap column ox * stride - padding + kx lies in 0..<width (none when the tap lies
        // right of the plane for every column).
        let reach = width - 1 + padding - kx
        let first = max(0, (padding - kx + stride - 1) / stride), last = min(outWidth - 1, reach / stride)
        guard reach >= 0 && first <= last else { return }
        for oy in 0..<outHeight {
            let iy = oy * stride - padding + ky
            guard iy >= 0 && iy < height else { continue }
            body(iy * width + first * stride - padding + kx, oy * outWidth + first, last - first + 1)
        }
    }

    /// Adds `weight` times the input under tap (ky, kx) to every output pixel whose tap lies inside the plane. The
    /// input plane starts at `input[plane]`, the output plane at `accumulators[output]`; the output pixels are the
    /// inner loops, so a reference calling this tap by tap sums each output's products in tap order.
    func accumulateTap(
        _ weight: Double, ky: Int, kx: Int, input: [Float], plane: Int, into accumulators: inout [Double], output: Int
    ) {
        forEachRow(ky: ky, kx: kx) { from, at, count in
            accumulateScaled(
                weight, input, from: plane + from, stride: stride, into: &accumulators, at: output + at, count: count)
        }
    }
}

/// `y[at + i] += a * x[from + i * stride]` for i in 0..<count.
func accumulateScaled(
    _ a: Double, _ x: [Float], from: Int, stride: Int = 1, into y: inout [Double], at: Int, count: Int
) {
    scaledSum(a, x, from: from, stride: stride, into: &y, at: at, count: count)
}

/// `y[at + i] += a * x[from + i * stride]` for i in 0..<count.
func accumulateScaled(
    _ a: Double, _ x: [Double], from: Int, stride: Int = 1, into y: inout [Double], at: Int, count: Int
) {
    scaledSum(a, x, from: from, stride: stride, into: &y, at: at, count: count)
}

/// The body of both ``accumulateScaled``: generic here, and specialized for each in this file, where the callers in
/// other files (compiled apart outside whole-module builds) cannot specialize it.
private func scaledSum<Element: BinaryFloatingPoint>(
    _ a: Double, _ x: [Element], from: Int, stride: Int, into y: inout [Double], at: Int, count: Int
) {
    guard count > 0 else { return }
    precondition(
        from >= 0 && from + (count - 1) * stride < x.count && at >= 0 && at + count <= y.count,
        "reference loop out of range")
    // Wrapping arithmetic: the precondition above already holds every index in range.
    x.withUnsafeBufferPointer { x in
        y.withUnsafeMutableBufferPointer { y in
            if stride == 1 {
                for i in 0..<count { y[at &+ i] += a * Double(x[from &+ i]) }
            } else {
                for i in 0..<count { y[at &+ i] += a * Double(x[from &+ i &* stride]) }
            }
        }
    }
}

/// sum_i a[aFrom + i] * b[bFrom + i] for i in 0..<count, in order.
func dot(_ a: [Double], from aFrom: Int, _ b: [Double], from bFrom: Int, count: Int) -> Double {
    precondition(
        count >= 0 && aFrom >= 0 && aFrom + count <= a.count && bFrom >= 0 && bFrom + count <= b.count,
        "reference loop out of range")
    return a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            var sum = 0.0
            for i in 0..<count { sum += a[aFrom &+ i] * b[bFrom &+ i] }
            return sum
        }
    }
}
