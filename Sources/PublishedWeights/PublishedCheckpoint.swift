import Foundation

/// A checkpoint the BossNAS authors publish: a release asset of their repository (changlin31/BossNAS, tag v0.1), named
/// after the model it holds and its ImageNet top-1 accuracy.
public struct PublishedCheckpoint: Sendable, Codable, Equatable {
    /// The model it binds to, as `Model(name:)` takes it.
    public let model: String
    /// The release asset's file name, also its name in the cache.
    public let file: String
    /// ImageNet top-1 and top-5 accuracy (%) at 224 px, as the authors' README reports them.
    public let top1: Double
    public let top5: Double

    /// Where the authors publish their checkpoints: each one is this URL followed by its ``file``.
    public static let releaseURL = URL(string: "https://github.com/changlin31/BossNAS/releases/download/v0.1/")!

    /// Every published checkpoint, one per named model.
    public static let all: [PublishedCheckpoint] = [
        PublishedCheckpoint(model: "bossnet_T0", file: "BossNet-T0-80_8.pth", top1: 80.8, top5: 95.2),
        PublishedCheckpoint(model: "bossnet_T0_nose", file: "BossNet-T0-nose-80_5.pth", top1: 80.5, top5: 95.0),
        PublishedCheckpoint(model: "bossnet_T1", file: "BossNet-T1-81_9.pth", top1: 81.9, top5: 95.6),
    ]

    /// The published checkpoint of the model named `model`, or ``PublishedWeightsError/notPublished(model:published:)``.
    public static func of(model: String) throws(PublishedWeightsError) -> PublishedCheckpoint {
        guard let found = all.first(where: { $0.model == model }) else {
            throw .notPublished(model: model, published: all.map(\.model))
        }
        return found
    }

    /// The checkpoint's address under `source` (the authors' release by default; a mirror's folder otherwise).
    public func url(source: URL = PublishedCheckpoint.releaseURL) -> URL {
        source.appendingPathComponent(file, isDirectory: false)
    }
}
