import Foundation
import Kernels
import VulkanCompute

/// What a training run keeps between steps, read from a session and given back to one: the weights, the optimizer's
/// state and the model average, so that a run can stop and resume where it was.
extension TrainingSession {
    /// The optimizer's state: the steps taken, and each parameter's buffers by state-dict name (AdamW's `exp_avg`
    /// then `exp_avg_sq`, SGD's `momentum_buffer`).
    public struct OptimizerState: Sendable, Equatable {
        /// Optimizer steps taken, and each parameter's state buffers by state-dict name.
        public var steps: Int
        public var buffers: [String: [[Float]]]

        /// A state of `steps` steps with these buffers.
        public init(steps: Int, buffers: [String: [[Float]]]) { (self.steps, self.buffers) = (steps, buffers) }
    }

    /// Every trainable parameter's values now, by state-dict name.
    public func parameters() throws -> [String: [Float]] {
        var values: [String: [Float]] = [:]
        for declaration in graph.declarations where declaration.trainable {
            values[declaration.name] = try buffers.parameter(declaration.name).hostBuffer()
                .download(Float.self, count: declaration.count)
        }
        return values
    }

    /// Every BatchNorm's running mean and variance now, by state-dict name.
    public func runningStatistics() throws -> [String: [Float]] {
        try Self.split(running.map { ($0.norm, try $0.buffer.download(Float.self, count: 2 * channels($0.norm))) })
    }

    /// The optimizer's state now (no steps and no buffers before the first).
    public func optimizerState() throws -> OptimizerState {
        var state: [String: [[Float]]] = [:]
        for (name, arrays) in optimizerBuffers {
            state[name] = try arrays.map { try $0.hostBuffer().download(Float.self, count: $0.count) }
        }
        return OptimizerState(steps: optimizerSteps, buffers: state)
    }

    /// Puts back an optimizer's state read by ``optimizerState()`` (a resumed run's): its steps and every
    /// parameter's buffers, which must be those `optimizer` keeps (two for AdamW, one for SGD), of the parameter's size.
    public func restore(_ state: OptimizerState, for optimizer: TrainingOptimizer, forwardSteps: Int) throws {
        let arrays: Int
        switch optimizer {
        case .adamw: arrays = 2
        case .sgd: arrays = 1
        }
        for declaration in graph.declarations where declaration.trainable && state.steps > 0 {
            guard let values = state.buffers[declaration.name], values.count == arrays,
                values.allSatisfy({ $0.count == declaration.count })
            else {
                throw ParameterError(
                    "The optimizer's state lacks \(declaration.name)'s \(arrays) buffer(s) of \(declaration.count) values."
                )
            }
            optimizerBuffers[declaration.name] = try values.map {
                try buffers.holding($0, label: "optimizer state of \(declaration.name)")
            }
        }
        optimizerSteps = state.steps
        self.forwardSteps = forwardSteps
    }

    /// Starts a model average (timm's ModelEma: every parameter and running statistic, updated after each optimizer
    /// step as `average decay + (1 - decay) value`) from `values` (a resumed run's, by state-dict name), or from the
    /// weights now.
    public func startAverage(_ average: ModelAverage, from values: [String: [Float]]? = nil, forwardSteps: Int64 = 0)
        throws
    {
        let start = try values ?? parameters().merging(runningStatistics()) { first, _ in first }
        var averages: [String: TrainingBuffer] = [:]
        for declaration in graph.declarations where declaration.trainable {
            averages[declaration.name] = try buffers.holding(
                try Self.values(start, declaration.name, count: declaration.count),
                label: "average of \(declaration.name)")
        }
        for (norm, _) in runningBuffers {
            let count = channels(norm)
            let both =
                try Self.values(start, norm.runningMean, count: count)
                + Self.values(start, norm.runningVariance, count: count)
            averages[norm.runningMean] = try buffers.holding(both, label: "average of \(norm.name)'s statistics")
        }
        self.averages = averages
        self.average = average
        averagedForwardSteps = forwardSteps
    }

    /// The model average's parameters and running statistics now, by state-dict name, and its
    /// `num_batches_tracked`; nil without an average.
    public func averaged() throws -> (values: [String: [Float]], forwardSteps: Int64)? {
        guard average != nil else { return nil }
        var values: [String: [Float]] = [:]
        for declaration in graph.declarations where declaration.trainable {
            values[declaration.name] = try averages[declaration.name]?.hostBuffer()
                .download(Float.self, count: declaration.count)
        }
        let statistics = try runningBuffers.map { norm, _ in
            (norm, try averages[norm.runningMean]?.hostBuffer().download(Float.self, count: 2 * channels(norm)) ?? [])
        }
        return (values.merging(Self.split(statistics)) { first, _ in first }, averagedForwardSteps)
    }

    /// The model average's update after an optimizer step; `num_batches_tracked` follows it as PyTorch's integer
    /// copy does (the float32 average truncated toward zero).
    func averageSteps() -> [KernelStep<TrainingBuffer>] {
        guard let average else { return [] }
        var steps: [KernelStep<TrainingBuffer>] = []
        for declaration in graph.declarations where declaration.trainable {
            guard let target = averages[declaration.name], let values = try? buffers.parameter(declaration.name)
            else { continue }
            steps += average.steps(average: target, values: values, range: ElementRange(count: declaration.count))
        }
        for (norm, buffer) in runningBuffers {
            guard let target = averages[norm.runningMean] else { continue }
            steps += average.steps(average: target, values: buffer, range: ElementRange(count: buffer.count))
        }
        let decay = Float(average.decay)
        averagedForwardSteps = Int64(Float(averagedForwardSteps) * decay + (1 - decay) * Float(forwardSteps))
        return steps
    }

    private func channels(_ norm: BatchNorm) -> Int { graph.parameters.required(norm.runningMean).count }

    private static func values(_ values: [String: [Float]], _ name: String, count: Int) throws -> [Float] {
        guard let found = values[name], found.count == count else {
            throw ParameterError("The model average lacks \(name) (\(count) values).")
        }
        return found
    }

    /// Each BatchNorm's mean-then-variance values split under their state-dict names.
    private static func split(_ statistics: [(BatchNorm, [Float])]) -> [String: [Float]] {
        var result: [String: [Float]] = [:]
        for (norm, both) in statistics {
            result[norm.runningMean] = Array(both.prefix(both.count / 2))
            result[norm.runningVariance] = Array(both.suffix(both.count / 2))
        }
        return result
    }
}
