import Evaluation
import Foundation
import Images
import Kernels

/// The labelled images a run trains and validates on: an ImageFolder with `train/` and `val/` below one path (the
/// authors' IMNET layout), the same class folders in both.
public struct TrainingSet: Sendable {
    /// The images of `train/` and of `val/`, labelled by their class folder.
    public let train: ImageSet
    public let val: ImageSet
    /// The class folders' names, in class order.
    public var classes: [String] { train.classes }

    /// Lists `dataPath/train` and `dataPath/val`; throws where either is missing or their class folders differ.
    public init(dataPath: URL) throws {
        let (trainURL, valURL) = (dataPath.appendingPathComponent("train"), dataPath.appendingPathComponent("val"))
        for folder in [trainURL, valURL] where !FileManager.default.fileExists(atPath: folder.path) {
            throw ImageSetError(
                "\(folder.path) does not exist: --data-path takes a folder with train/ and val/ below it, each holding one folder of images per class."
            )
        }
        train = try ImageSet(imageFolder: trainURL)
        val = try ImageSet(imageFolder: valURL)
        guard train.classes == val.classes else {
            throw ImageSetError(
                "train/ and val/ hold different class folders (\(train.classes.count) and \(val.classes.count)); they must hold the same ones."
            )
        }
    }

    /// The positions in `train` that replica `rank` of `replicas` trains on in epoch `epoch`, in order. With
    /// `repeated` (the authors' RASampler), a shuffled order with each image three times in a row, padded from its
    /// start to a multiple of `replicas`, every `replicas`-th from `rank`, cut to `floor(n / 256) * 256 / replicas`
    /// images; else (torch's DistributedSampler) the shuffled order padded the same way and dealt out the same way.
    /// The shuffle is drawn from `seed` and the epoch, the same for every replica.
    public func epochOrder(epoch: Int, seed: UInt64, repeated: Bool, replicas: Int = 1, rank: Int = 0) -> [Int] {
        Self.epochOrder(
            count: train.images.count, epoch: epoch, seed: seed, repeated: repeated, replicas: replicas, rank: rank)
    }

    /// ``epochOrder(epoch:seed:repeated:replicas:rank:)`` of a set of `count` images.
    static func epochOrder(count: Int, epoch: Int, seed: UInt64, repeated: Bool, replicas: Int, rank: Int) -> [Int] {
        precondition(replicas >= 1 && (0..<replicas).contains(rank), "rank \(rank) of \(replicas) replicas")
        var random = SeededRandom(seed: streamSeed(seed, UInt64(epoch), 0x5A17))
        let order = Array(0..<count).shuffled(using: &random)
        var indices = repeated ? order.flatMap { [$0, $0, $0] } : order
        let total = (indices.count + replicas - 1) / replicas * replicas
        indices += indices.prefix(total - indices.count)
        let mine = stride(from: rank, to: total, by: replicas).map { indices[$0] }
        return repeated ? Array(mine.prefix(count / 256 * 256 / replicas)) : mine
    }
}

/// A seed for one stream of draws (an epoch's order, one image's augmentation, a step's masks), from the run's seed
/// and the stream's coordinates, so that a resumed run draws exactly what an uninterrupted one does.
public func streamSeed(_ parts: UInt64...) -> UInt64 {
    var random = SeededRandom(seed: 0x243F_6A88_85A3_08D3)
    var seed: UInt64 = 0
    for part in parts {
        random = SeededRandom(seed: random.next() ^ part)
        seed = random.next()
    }
    return seed
}
