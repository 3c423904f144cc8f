import Foundation

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
