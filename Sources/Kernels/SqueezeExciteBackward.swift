import Foundation

// Squeeze-excite's training reference, in Double: y = x * sigmoid(fc2(act(fc1(mean x)))), without the residual add
// and activation of its epilogue (training applies those apart), and its gradients.

extension SqueezeExcite {
    /// What the forward computes on the way: each image's channel means, fc1's output before and after its
    /// activation, and the gates.
    public struct Excitation: Sendable {
        public var means: [Double]
        public var hidden: [Double]
        public var activated: [Double]
        public var gates: [Double]
    }

    /// The means, hidden values and gates of `x` (`w1` `[reduced][channels]`, `w2` `[channels][reduced]`).
    public func excitation(_ x: [Double], w1: [Double], b1: [Double], w2: [Double], b2: [Double]) -> Excitation {
        precondition(x.count == count, "squeeze_excite: wrong input size")
        let (c, r) = (channels, reduced)
        var means = [Double](repeating: 0, count: batch * c)
        for index in x.indices { means[index / pixels] += x[index] / Double(pixels) }
        var hidden = [Double](repeating: 0, count: batch * r), gates = means
        for n in 0..<batch {
            for j in 0..<r {
                hidden[n * r + j] = b1[j] + (0..<c).reduce(0.0) { $0 + w1[j * c + $1] * means[n * c + $1] }
            }
            for i in 0..<c {
                let z = b2[i] + (0..<r).reduce(0.0) { $0 + w2[i * r + $1] * innerActivation.apply(hidden[n * r + $1]) }
                gates[n * c + i] = Activation.sigmoid.apply(z)
            }
        }
        return Excitation(means: means, hidden: hidden, activated: hidden.map(innerActivation.apply), gates: gates)
    }

    /// x scaled by its channel's gate.
    public func trainingForward(_ x: [Double], excitation: Excitation) -> [Double] {
        x.indices.map { x[$0] * excitation.gates[$0 / pixels] }
    }

    /// The gradients with respect to x and the four parameters.
    public func backward(
        _ x: [Double], w1: [Double], w2: [Double], excitation e: Excitation, outputGradient dy: [Double]
    ) -> (input: [Double], w1: [Double], b1: [Double], w2: [Double], b2: [Double]) {
        let (c, r) = (channels, reduced)
        var dz2 = [Double](repeating: 0, count: batch * c)  // through the sigmoid
        for index in x.indices { dz2[index / pixels] += dy[index] * x[index] }
        for g in dz2.indices { dz2[g] *= e.gates[g] * (1 - e.gates[g]) }
        var dw1 = [Double](repeating: 0, count: r * c), dw2 = dw1, db1 = [Double](repeating: 0, count: r)
        var db2 = [Double](repeating: 0, count: c), dMeans = [Double](repeating: 0, count: batch * c)
        for n in 0..<batch {
            var dz1 = [Double](repeating: 0, count: r)
            for i in 0..<c {
                db2[i] += dz2[n * c + i]
                for j in 0..<r {
                    dw2[i * r + j] += dz2[n * c + i] * e.activated[n * r + j]
                    dz1[j] += dz2[n * c + i] * w2[i * r + j]
                }
            }
            for j in 0..<r {
                dz1[j] *= innerActivation.derivative(e.hidden[n * r + j])
                db1[j] += dz1[j]
                for i in 0..<c {
                    dw1[j * c + i] += dz1[j] * e.means[n * c + i]
                    dMeans[n * c + i] += dz1[j] * w1[j * c + i]
                }
            }
        }
        let dx = x.indices.map { dy[$0] * e.gates[$0 / pixels] + dMeans[$0 / pixels] / Double(pixels) }
        return (dx, dw1, db1, dw2, db2)
    }
}
