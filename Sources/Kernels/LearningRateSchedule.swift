import Foundation

/// The learning rate of each epoch as the authors' `main.py` sets it: timm's cosine schedule with linear warmup
/// (timm 0.3.2's `create_scheduler` with `--sched cosine`), from the base rate scaled by batch / 512 (their linear
/// scaling rule), stepped once after each epoch.
///
/// The schedule's value at epoch t is the warmup's `warmupRate + t (base - warmupRate) / warmupEpochs` below
/// `warmupEpochs`, then `minimumRate + (base - minimumRate) (1 + cos(pi t / epochs)) / 2` (t not shifted by the
/// warmup, as timm's default), and `minimumRate` from `epochs` on (the cooldown). Their loop calls
/// `lr_scheduler.step(epoch)` after training epoch `epoch`, so epoch e trains at the value of epoch e - 1, and epoch 0
/// at the warmup rate the scheduler starts from (``trainingRate(epoch:)``).
///
/// ```swift
/// let schedule = CosineSchedule(baseRate: CosineSchedule.scaled(5e-4, batch: 32), epochs: 8)
/// let rates = (0..<8).map { schedule.trainingRate(epoch: $0) }   // 1e-6, 1e-6, 7.05e-6, ...
/// ```
public struct CosineSchedule: Sendable, Equatable {
    /// The rate the cosine starts from: `--lr` scaled by ``scaled(_:batch:)``.
    public var baseRate: Double
    /// `--epochs`: the cosine's length.
    public var epochs: Int
    /// `--warmup-epochs`, `--warmup-lr`, `--min-lr`, `--cooldown-epochs`, with the authors' defaults.
    public var warmupEpochs: Int
    public var warmupRate: Double
    public var minimumRate: Double
    public var cooldownEpochs: Int

    public init(
        baseRate: Double, epochs: Int, warmupEpochs: Int = 5, warmupRate: Double = 1e-6, minimumRate: Double = 1e-5,
        cooldownEpochs: Int = 10
    ) {
        precondition(epochs > 0 && warmupEpochs >= 0 && cooldownEpochs >= 0, "a cosine schedule of at least one epoch")
        (self.baseRate, self.epochs, self.warmupEpochs) = (baseRate, epochs, warmupEpochs)
        (self.warmupRate, self.minimumRate, self.cooldownEpochs) = (warmupRate, minimumRate, cooldownEpochs)
    }

    /// The authors' linear scaling rule: `rate * batch / 512`, `batch` the images of one step over all devices.
    public static func scaled(_ rate: Double, batch: Int) -> Double { rate * Double(batch) / 512.0 }

    /// The epochs the schedule spans, its cooldown included (what timm's `create_scheduler` returns; the authors'
    /// loop runs `--epochs` only).
    public var totalEpochs: Int { epochs + cooldownEpochs }

    /// The schedule's value at epoch `t` (timm's `_get_lr`).
    public func value(at t: Int) -> Double {
        if t < warmupEpochs {
            return warmupRate + Double(t) * ((baseRate - warmupRate) / Double(warmupEpochs))
        }
        guard t < epochs else { return minimumRate }  // past the one cycle (timm's cycle_limit 1)
        return minimumRate + 0.5 * (baseRate - minimumRate) * (1 + cos(Double.pi * Double(t) / Double(epochs)))
    }

    /// The rate epoch `epoch` trains at in the authors' loop: the scheduler's starting rate for epoch 0 (the warmup
    /// rate, or the base rate without warmup), then the value of the epoch before.
    public func trainingRate(epoch: Int) -> Double {
        guard epoch > 0 else { return warmupEpochs > 0 ? warmupRate : baseRate }
        return value(at: epoch - 1)
    }
}
