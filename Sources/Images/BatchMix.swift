import Foundation

/// One batch's mixup or cutmix, as timm's `Mixup` in its default mode (`batch`, what the authors' main.py builds)
/// applies it once its random draws are made: every image is mixed with the batch's flipped image (image
/// `batch - 1 - n`). Its targets are ``lam``-weighted (`CrossEntropy.mixedTargets` in Kernels).
public enum BatchMix: Sendable, Equatable {
    /// `x = x * lam + flipped * (1 - lam)`, in float32 as timm's in-place products and sum.
    case mixup(lam: Double)
    /// The box of every image replaced by the flipped image's.
    case cutmix(CutMixBox)

    /// The weight of each image's own target: mixup's lam, or cutmix's share of the image outside the box (timm's
    /// lambda correction for a box clipped by the image's border).
    public func lam(height: Int, width: Int) -> Double {
        switch self {
        case let .mixup(lam): lam
        case let .cutmix(box): 1 - Double(box.area) / Double(height * width)
        }
    }

    /// Mixes `images` (`[batch][channels][height][width]`) in place.
    public func apply(to images: inout [Float], batch: Int, channels: Int, height: Int, width: Int) {
        let perImage = channels * height * width
        precondition(images.count == batch * perImage, "mix: \(images.count) values are not \(batch) images")
        let original = images
        for n in 0..<batch {
            let own = n * perImage, other = (batch - 1 - n) * perImage
            switch self {
            case let .mixup(lam):
                let (kept, taken) = (Float(lam), Float(1 - lam))
                for i in 0..<perImage { images[own + i] = original[own + i] * kept + original[other + i] * taken }
            case let .cutmix(box):
                for c in 0..<channels {
                    for y in box.top..<box.bottom {
                        let row = c * height * width + y * width
                        for x in box.left..<box.right { images[own + row + x] = original[other + row + x] }
                    }
                }
            }
        }
    }
}

/// Cutmix's box, rows `top..<bottom` and columns `left..<right`: timm's `rand_bbox` for a centre already drawn.
public struct CutMixBox: Sendable, Equatable {
    public var top, bottom, left, right: Int

    /// A square of side `sqrt(1 - lam)` of the image's (each side truncated), centred on (`centreY`, `centreX`) and
    /// clipped to the image; the centre is drawn uniformly over the image.
    public init(height: Int, width: Int, lam: Double, centreY: Int, centreX: Int) {
        let ratio = (1 - lam).squareRoot()
        let (cutH, cutW) = (Int(Double(height) * ratio), Int(Double(width) * ratio))
        top = min(max(centreY - cutH / 2, 0), height)
        bottom = min(max(centreY + cutH / 2, 0), height)
        left = min(max(centreX - cutW / 2, 0), width)
        right = min(max(centreX + cutW / 2, 0), width)
    }

    /// Pixels inside the box.
    public var area: Int { (bottom - top) * (right - left) }
}
