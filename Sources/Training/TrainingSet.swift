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

    /// The positions in `train` that epoch `epoch` trains on, in order. With `repeated` (the authors' RASampler on one
    /// device), a shuffled order with each image three times in a row, cut to `floor(n / 256) * 256` images; else a
    /// shuffled order of every image. The shuffle is drawn from `seed` and the epoch.
    public func epochOrder(epoch: Int, seed: UInt64, repeated: Bool) -> [Int] {
        var random = SeededRandom(seed: streamSeed(seed, UInt64(epoch), 0x5A17))
        let order = Array(train.images.indices).shuffled(using: &random)
        guard repeated else { return order }
        return Array(order.flatMap { [$0, $0, $0] }.prefix(train.images.count / 256 * 256))
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
