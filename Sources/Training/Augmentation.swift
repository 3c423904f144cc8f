import Foundation
import Images
import Kernels

/// The training transform of the authors' recipe (their `build_transform(is_train=True)`, timm's
/// `transforms_imagenet_train`): above 32 px a random resized crop (scale 0.08-1, ratio 3/4-4/3, bicubic), at 32 px and
/// below `RandomCrop(size, padding=4)`; then a horizontal flip half the time, RandAugment (``RandAugment``) or else
/// colour jitter (``ColorJitter``), ToTensor and Normalize, and random erasing (``RandomErasing``) with probability
/// `erasing`.
public struct TrainingTransform: Sendable, Equatable {
    /// The side of the images it makes, and the erasing it applies after normalising.
    public let inputSize: Int
    public let erasing: RandomErasing
    /// RandAugment's policy, or nil; colour jitter (applied only without RandAugment, as timm does).
    public let randAugment: RandAugment?
    public let colorJitter: ColorJitter

    /// timm's `img_mean`: the ImageNet mean in bytes, which RandAugment's geometric operations fill with.
    public static let meanFill: [UInt8] = [124, 116, 104]

    /// The transform for `inputSize`, erasing with probability `probability`.
    public init(
        inputSize: Int, erasing probability: Double = 0, randAugment: RandAugment? = nil, colorJitter: Double = 0
    ) {
        self.inputSize = inputSize
        erasing = RandomErasing(probability: probability)
        self.randAugment = randAugment
        self.colorJitter = ColorJitter(strength: colorJitter)
    }

    /// The augmented image as the network's input, `[3][size][size]`, from `random`'s draws.
    public func tensor(_ image: RGBImage, using random: inout SeededRandom) throws -> [Float] {
        var cropped: RGBImage
        if inputSize <= Preprocess.largestUnresizedSize {
            let padded = Self.padded(image, by: 4)
            guard padded.width >= inputSize && padded.height >= inputSize else {
                throw PreprocessError(
                    description:
                        "the image is \(image.width)x\(image.height); RandomCrop(\(inputSize), padding=4) needs at least \(inputSize - 8) pixels a side"
                )
            }
            let top = Int.random(in: 0...(padded.height - inputSize), using: &random)
            let left = Int.random(in: 0...(padded.width - inputSize), using: &random)
            cropped = Self.crop(padded, top: top, left: left, height: inputSize, width: inputSize)
        } else {
            let box = ResizedCropBox(width: image.width, height: image.height, using: &random)
            cropped = Preprocess.resize(
                Self.crop(image, top: box.top, left: box.left, height: box.height, width: box.width),
                width: inputSize, height: inputSize)
        }
        if Double.random(in: 0..<1, using: &random) < 0.5 { cropped = Self.mirrored(cropped) }
        if let randAugment {
            cropped = randAugment.apply(cropped, fill: Self.meanFill, using: &random)
        } else {
            cropped = colorJitter.apply(cropped, using: &random)
        }
        var tensor = Preprocess.tensor(cropped)
        erasing.apply(to: &tensor, size: inputSize, using: &random)
        return tensor
    }

    /// The image with `border` black pixels added on every side (torchvision's constant padding, fill 0).
    static func padded(_ image: RGBImage, by border: Int) -> RGBImage {
        let (width, height) = (image.width + 2 * border, image.height + 2 * border)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<image.height {
            let from = y * image.width * 3, to = ((y + border) * width + border) * 3
            pixels.replaceSubrange(to..<(to + image.width * 3), with: image.pixels[from..<(from + image.width * 3)])
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Rows `top..<top + height`, columns `left..<left + width` (PIL's crop, inside the image).
    public static func crop(_ image: RGBImage, top: Int, left: Int, height: Int, width: Int) -> RGBImage {
        var pixels: [UInt8] = []
        pixels.reserveCapacity(width * height * 3)
        for y in top..<(top + height) {
            let start = (y * image.width + left) * 3
            pixels += image.pixels[start..<(start + width * 3)]
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Left and right swapped.
    static func mirrored(_ image: RGBImage) -> RGBImage {
        var pixels = image.pixels
        for y in 0..<image.height {
            for x in 0..<image.width {
                let (to, from) = ((y * image.width + x) * 3, (y * image.width + image.width - 1 - x) * 3)
                for c in 0..<3 { pixels[to + c] = image.pixels[from + c] }
            }
        }
        return RGBImage(width: image.width, height: image.height, pixels: pixels)
    }
}

/// timm's `RandomErasing` as the authors' transform builds it (`--reprob`, mode `pixel`, one box): with probability
/// `probability`, up to ten tries at a box of 2%-33% of the image with an aspect ratio between 0.3 and 1/0.3 (drawn
/// log-uniformly) that fits strictly inside; the first that fits has every value of every channel replaced by a
/// standard normal draw (the image is already normalised).
public struct RandomErasing: Sendable, Equatable {
    /// How often an image is erased (`--reprob`).
    public var probability: Double

    /// Erasing with probability `probability`.
    public init(probability: Double) { self.probability = probability }

    /// The box erased in an image of `height` x `width`, or nil.
    public func box(height: Int, width: Int, using random: inout SeededRandom) -> ResizedCropBox? {
        guard probability > 0, Double.random(in: 0..<1, using: &random) <= probability else { return nil }
        let area = Double(height * width)
        let (low, high) = (log(0.3), log(1 / 0.3))
        for _ in 0..<10 {
            let target = Double.random(in: 0.02...(1.0 / 3.0), using: &random) * area
            let ratio = exp(Double.random(in: low...high, using: &random))
            let h = Int((target * ratio).squareRoot().rounded(.toNearestOrEven))
            let w = Int((target / ratio).squareRoot().rounded(.toNearestOrEven))
            if w < width && h < height {
                let top = Int.random(in: 0...(height - h), using: &random)
                let left = Int.random(in: 0...(width - w), using: &random)
                return ResizedCropBox(top: top, left: left, height: h, width: w)
            }
        }
        return nil
    }

    /// Erases `tensor` (`[3][size][size]`) in place as drawn.
    public func apply(to tensor: inout [Float], size: Int, using random: inout SeededRandom) {
        guard let box = box(height: size, width: size, using: &random) else { return }
        for c in 0..<3 {
            for y in box.top..<(box.top + box.height) {
                for x in box.left..<(box.left + box.width) {
                    tensor[(c * size + y) * size + x] = Float(random.normal())
                }
            }
        }
    }
}

/// The box of torchvision's `RandomResizedCrop.get_params` (timm's `RandomResizedCropAndInterpolation`): up to ten
/// tries at an area of 8%-100% of the image and an aspect ratio between 3/4 and 4/3 (drawn log-uniformly) that fits,
/// else the whole image cropped to the nearest allowed ratio, centred.
public struct ResizedCropBox: Sendable, Equatable {
    /// Rows `top..<top + height`, columns `left..<left + width`.
    public var top, left, height, width: Int

    /// A box given by its corner and size.
    public init(top: Int, left: Int, height: Int, width: Int) {
        (self.top, self.left, self.height, self.width) = (top, left, height, width)
    }

    /// A box drawn for an image of `imageWidth` x `imageHeight`.
    public init(width imageWidth: Int, height imageHeight: Int, using random: inout SeededRandom) {
        let area = Double(imageWidth * imageHeight)
        let (low, high) = (log(3.0 / 4.0), log(4.0 / 3.0))
        for _ in 0..<10 {
            let target = area * Double.random(in: 0.08..<1, using: &random)
            let ratio = exp(Double.random(in: low..<high, using: &random))
            let w = Int((target * ratio).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / ratio).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= imageWidth && h > 0 && h <= imageHeight {
                let top = Int.random(in: 0...(imageHeight - h), using: &random)
                let left = Int.random(in: 0...(imageWidth - w), using: &random)
                self.init(top: top, left: left, height: h, width: w)
                return
            }
        }
        let ratio = Double(imageWidth) / Double(imageHeight)
        var (w, h) = (imageWidth, imageHeight)
        if ratio < 3.0 / 4.0 {
            h = Int((Double(w) / (3.0 / 4.0)).rounded(.toNearestOrEven))
        } else if ratio > 4.0 / 3.0 {
            w = Int((Double(h) * (4.0 / 3.0)).rounded(.toNearestOrEven))
        }
        self.init(top: (imageHeight - h) / 2, left: (imageWidth - w) / 2, height: h, width: w)
    }
}

/// timm's `Mixup` draws for one batch (`_params_per_batch` and `rand_bbox`, mode `batch`): with probability
/// `mixupProb` a mix, cutmix with probability `switchProb` when both are on, its lam from Beta(alpha, alpha), cutmix's
/// centre uniform over the image; nil when the batch is left as it is.
public func drawBatchMix(
    mixup: Double, cutmix: Double, mixupProb: Double, switchProb: Double, height: Int, width: Int,
    using random: inout SeededRandom
) -> BatchMix? {
    guard mixup > 0 || cutmix > 0, Double.random(in: 0..<1, using: &random) < mixupProb else { return nil }
    let useCutmix =
        mixup > 0 && cutmix > 0 ? Double.random(in: 0..<1, using: &random) < switchProb : cutmix > 0
    let alpha = useCutmix ? cutmix : mixup
    let lam = beta(alpha, using: &random)
    guard lam < 1 else { return nil }
    guard useCutmix else { return .mixup(lam: lam) }
    let centreY = Int.random(in: 0..<height, using: &random), centreX = Int.random(in: 0..<width, using: &random)
    return .cutmix(CutMixBox(height: height, width: width, lam: lam, centreY: centreY, centreX: centreX))
}

/// A draw from Beta(alpha, alpha): X / (X + Y) of two Gamma(alpha) draws.
func beta(_ alpha: Double, using random: inout SeededRandom) -> Double {
    let x = gamma(alpha, using: &random), y = gamma(alpha, using: &random)
    return x + y > 0 ? x / (x + y) : 0.5
}

/// A draw from Gamma(shape, 1): Marsaglia and Tsang's method, boosted by U^(1/shape) below shape 1.
func gamma(_ shape: Double, using random: inout SeededRandom) -> Double {
    if shape < 1 {
        return gamma(shape + 1, using: &random) * pow(Double.random(in: Double.ulpOfOne..<1, using: &random), 1 / shape)
    }
    let d = shape - 1.0 / 3.0, c = 1 / (9 * d).squareRoot()
    while true {
        var x = 0.0, v = 0.0
        repeat {
            x = random.normal()
            v = 1 + c * x
        } while v <= 0
        v = v * v * v
        let u = Double.random(in: 0..<1, using: &random)
        if u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
    }
}
