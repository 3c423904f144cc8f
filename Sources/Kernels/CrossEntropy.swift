import Foundation
import VulkanCompute

/// The training loss, in Double: the mean over the batch of the cross-entropy between each image's target
/// distribution and the softmax of its logits. Class-index labels become targets with label smoothing s, (1 - s) on
/// the label plus s / classes on every class (timm's LabelSmoothingCrossEntropy); soft targets (mixup, cutmix) are
/// used as given (timm's SoftTargetCrossEntropy).
public struct CrossEntropy: Sendable {
    public var batch: Int
    public var classes: Int

    public init(batch: Int, classes: Int) { (self.batch, self.classes) = (batch, classes) }

    /// The targets of class-index `labels` with label smoothing `smoothing`, `[batch][classes]`.
    public func targets(labels: [Int], smoothing: Double) -> [Double] {
        precondition(labels.count == batch && labels.allSatisfy { (0..<classes).contains($0) }, "labels out of range")
        var targets = [Double](repeating: smoothing / Double(classes), count: batch * classes)
        for (n, label) in labels.enumerated() { targets[n * classes + label] += 1 - smoothing }
        return targets
    }

    /// timm's `mixup_target`: each image's targets with label smoothing times `lam`, plus those of the batch's
    /// flipped image (image `batch - 1 - n`) times `1 - lam`; `lam` 1 gives ``targets(labels:smoothing:)``.
    public func mixedTargets(labels: [Int], smoothing: Double, lam: Double) -> [Double] {
        let own = targets(labels: labels, smoothing: smoothing)
        let flipped = targets(labels: labels.reversed(), smoothing: smoothing)
        return zip(own, flipped).map { $0 * lam + $1 * (1 - lam) }
    }

    /// Each image's log-softmax, stabilised by its largest logit.
    private func logSoftmax(_ logits: [Double]) -> [Double] {
        (0..<batch).flatMap { n in
            let row = logits[(n * classes)..<((n + 1) * classes)]
            let largest = row.max() ?? 0
            let logTotal = log(row.reduce(0.0) { $0 + exp($1 - largest) }) + largest
            return row.map { $0 - logTotal }
        }
    }

    /// The loss and its gradient with respect to the logits, (softmax sum(target) - target) / batch: (softmax -
    /// target) / batch for targets that sum to 1 per image, as every target here does.
    public func lossAndGradient(logits: [Double], targets: [Double]) -> (loss: Double, gradient: [Double]) {
        precondition(logits.count == batch * classes && targets.count == logits.count, "cross-entropy: wrong sizes")
        let logProbabilities = logSoftmax(logits)
        let loss = zip(targets, logProbabilities).reduce(0.0) { $0 - $1.0 * $1.1 } / Double(batch)
        let mass = (0..<batch).map { n in targets[(n * classes)..<((n + 1) * classes)].reduce(0, +) }
        let gradient = logProbabilities.indices.map { index in
            (exp(logProbabilities[index]) * mass[index / classes] - targets[index]) / Double(batch)
        }
        return (loss, gradient)
    }
}

// MARK: - On the device

extension CrossEntropy {
    /// Each image's loss into `losses` (`[batch]`; the loss is their mean) and the logits' gradient into `gradient`,
    /// from `targets` (`[batch][classes]`, as ``targets(labels:smoothing:)`` makes them). Kernel:
    /// Shaders/cross_entropy.comp.
    public func steps<Resource>(logits: Resource, targets: Resource, gradient: Resource, losses: Resource)
        -> [KernelStep<Resource>]
    {
        let launch = KernelLaunch(
            kernel: KernelName.cross_entropy, specialization: [ShaderConstants.cross_entropy.LOCAL_SIZE_X: .uint(64)],
            pushConstants: SIMD2<UInt32>(UInt32(batch), UInt32(classes)), groups: Grid.flat(items: batch, localSize: 64)
        )
        let bindings: [KernelBinding<Resource>] = [
            .readFloat32(logits), .readFloat32(targets), .writeFloat32(gradient), .writeFloat32(losses),
        ]
        return [KernelStep(launch, bindings).on(.storage)]
    }

    /// Compares the losses and the gradient with ``lossAndGradient(logits:targets:)``, for targets with label
    /// smoothing `smoothing`, or soft targets (random distributions, as mixup and cutmix give) where `nil`.
    public func check(smoothing: Double?) -> KernelCheck {
        let kind = smoothing.map { "smoothing \($0)" } ?? "soft targets"
        return KernelCheck(op: "cross_entropy", shape: "n\(batch) \(classes) classes \(kind)") { runner, random in
            let logits = random.floats(batch * classes, in: -6...6)
            let targets: [Float]
            if let smoothing {
                let labels = (0..<batch).map { _ in Int.random(in: 0..<classes, using: &random) }
                targets = self.targets(labels: labels, smoothing: smoothing).map(Float.init)
            } else {
                let raw = random.floats(batch * classes, in: 0...1)
                targets = raw.indices.map { i in
                    raw[i] / raw[(i / classes * classes)..<(i / classes * classes + classes)].reduce(0, +)
                }
            }
            let gradient = try runner.output(batch * classes), losses = try runner.output(batch)
            runner.add(
                steps(
                    logits: try runner.input(logits), targets: try runner.input(targets), gradient: gradient,
                    losses: losses))
            try runner.run()
            let expected = lossAndGradient(logits: logits.map(Double.init), targets: targets.map(Double.init))
            let loss = try runner.read(losses).reduce(0.0) { $0 + Double($1) } / Double(batch)
            return .worst([
                "loss": Comparison([Float(loss)], [Float(expected.loss)]),
                "gradient": Comparison(try runner.read(gradient), expected.gradient.map(Float.init)),
            ])
        }
    }
}
