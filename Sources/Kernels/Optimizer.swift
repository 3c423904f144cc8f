import Foundation

// The optimizers of the authors' recipe as PyTorch defines them, in Double: the CPU references the device's optimizer
// kernels will be checked against. Each follows PyTorch's single-tensor code path operation by operation, so that in
// float64 the two agree to rounding.

/// Which parameters take weight decay, as timm's `add_weight_decay` (the authors' optimizer factory) decides: none for
/// 1-d parameters (BatchNorm's weights and biases) and names ending `.bias`.
public func takesWeightDecay(name: String, shape: [Int]) -> Bool {
    !(shape.count <= 1 || name.hasSuffix(".bias"))
}

/// AdamW (`torch.optim.AdamW`): decoupled weight decay, then Adam's step with bias correction.
public struct AdamW: Sendable, Hashable {
    public var learningRate: Double
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    public var weightDecay = 0.01

    public init(learningRate: Double, weightDecay: Double = 0.01, beta1: Double = 0.9, beta2: Double = 0.999) {
        (self.learningRate, self.weightDecay, self.beta1, self.beta2) = (learningRate, weightDecay, beta1, beta2)
    }

    /// One parameter's optimizer state: the moving averages of the gradient and of its square, and the steps taken.
    public struct State: Sendable {
        public var average: [Double]
        public var squareAverage: [Double]
        public var steps = 0

        public init(count: Int) {
            average = [Double](repeating: 0, count: count)
            squareAverage = average
        }
    }

    /// One step on `parameter` with `gradient`; `decays` as ``takesWeightDecay(name:shape:)`` says.
    public func step(_ parameter: inout [Double], gradient: [Double], state: inout State, decays: Bool) {
        precondition(parameter.count == gradient.count && state.average.count == gradient.count, "adamw: sizes differ")
        state.steps += 1
        let correction1 = 1 - pow(beta1, Double(state.steps))
        let correction2Root = (1 - pow(beta2, Double(state.steps))).squareRoot()
        let stepSize = learningRate / correction1
        let decay = decays ? weightDecay : 0
        for i in parameter.indices {
            parameter[i] *= 1 - learningRate * decay
            state.average[i] += (gradient[i] - state.average[i]) * (1 - beta1)  // lerp
            state.squareAverage[i] = state.squareAverage[i] * beta2 + (1 - beta2) * gradient[i] * gradient[i]
            let denominator = state.squareAverage[i].squareRoot() / correction2Root + epsilon
            parameter[i] += -stepSize * (state.average[i] / denominator)
        }
    }
}

/// SGD with momentum (`torch.optim.SGD`, dampening 0): weight decay added to the gradient, the momentum buffer set to
/// the first step's gradient, then `buffer = momentum buffer + gradient`, optionally Nesterov's.
public struct SGD: Sendable, Hashable {
    public var learningRate: Double
    public var momentum = 0.9
    public var weightDecay = 0.0
    public var nesterov = false

    public init(learningRate: Double, momentum: Double = 0.9, weightDecay: Double = 0, nesterov: Bool = false) {
        (self.learningRate, self.momentum, self.weightDecay, self.nesterov) =
            (learningRate, momentum, weightDecay, nesterov)
    }

    /// One step on `parameter`; `buffer` is nil before the first.
    public func step(_ parameter: inout [Double], gradient: [Double], buffer: inout [Double]?, decays: Bool) {
        precondition(parameter.count == gradient.count, "sgd: sizes differ")
        let decay = decays ? weightDecay : 0
        let direction = zip(gradient, parameter).map { $0 + decay * $1 }
        let updated = buffer.map { zip($0, direction).map { $0 * momentum + $1 } } ?? direction
        buffer = updated
        for i in parameter.indices {
            parameter[i] += -learningRate * (nesterov ? direction[i] + momentum * updated[i] : updated[i])
        }
    }
}

/// Scales every gradient by `maxNorm / (norm + 1e-6)` when the global L2 norm of all of them together passes
/// `maxNorm` (`torch.nn.utils.clip_grad_norm_`); returns that norm.
@discardableResult
public func clipByGlobalNorm(_ gradients: inout [String: [Double]], maxNorm: Double) -> Double {
    let norm = gradients.values.reduce(0.0) { total, gradient in gradient.reduce(total) { $0 + $1 * $1 } }
        .squareRoot()
    let coefficient = maxNorm / (norm + 1e-6)
    guard coefficient < 1 else { return norm }
    for name in gradients.keys { gradients[name] = gradients[name]?.map { $0 * coefficient } }
    return norm
}

/// The model EMA's update (timm's `ModelEma`, which the authors train with, decay 0.99996): every floating-point entry
/// of the state dict, parameters and BatchNorm statistics alike, moves to `decay ema + (1 - decay) value`.
public func updateAverage(_ average: inout [Double], toward values: [Double], decay: Double) {
    precondition(average.count == values.count, "ema: sizes differ")
    for i in average.indices { average[i] = average[i] * decay + (1 - decay) * values[i] }
}
