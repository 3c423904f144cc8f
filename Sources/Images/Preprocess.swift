import Foundation

/// The evaluation preprocessing of BossNet's (and DeiT's) validation transform:
/// Resize(int(256 / 224 * size), bicubic) . CenterCrop(size) . ToTensor . Normalize(ImageNet mean and std).
///
/// The resize reproduces PIL's `Image.resize(..., BICUBIC)` on 8-bit RGB: separable bicubic (a = -0.5) whose support
/// widens with the scale when shrinking (PIL's antialiasing), coefficients in 22-bit fixed point, horizontal pass
/// first, each pass rounded and clamped to 8 bits.
public enum Preprocess {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// The shorter side after resizing, for an input size: int(256 / 224 * size).
    public static func resizeTarget(inputSize: Int) -> Int { Int(256.0 / 224.0 * Double(inputSize)) }

    /// The largest input size at which the authors' transforms neither resize nor crop (their `build_transform`:
    /// `resize_im = input_size > 32`), as for CIFAR's 32-pixel images.
    public static let largestUnresizedSize = 32

    /// The image as the network's input: `[3][size][size]` floats, normalised. At ``largestUnresizedSize`` and
    /// below, the authors' evaluation transform is ToTensor . Normalize alone, so the image must already be
    /// `size` x `size` (``PreprocessError`` otherwise).
    ///
    /// Only the cropped window of the resized image is computed (the same pixels PIL would produce there), so a
    /// long, thin image cannot make the resize allocate its whole enlarged self.
    public static func evaluationTensor(_ image: RGBImage, inputSize size: Int) throws -> [Float] {
        if size <= largestUnresizedSize {
            guard image.width == size && image.height == size else { throw PreprocessError.unresized(image, size) }
            return tensor(image)
        }
        let (width, height) = resizedSize(image, shorterSide: resizeTarget(inputSize: size))
        // The shorter side becomes int(256/224 * size) >= size, so the window lies inside the resized image.
        let top = cropOffset(height, size), left = cropOffset(width, size)
        return tensor(
            resize(image, width: width, height: height, columns: left..<(left + size), rows: top..<(top + size)))
    }

    /// ToTensor . Normalize(ImageNet mean and std): `[3][height][width]` floats.
    public static func tensor(_ image: RGBImage) -> [Float] {
        let (width, height) = (image.width, image.height)
        var tensor = [Float](repeating: 0, count: 3 * width * height)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    let value = Float(image.pixels[(y * width + x) * 3 + c]) / 255
                    tensor[(c * height + y) * width + x] = (value - mean[c]) / std[c]
                }
            }
        }
        return tensor
    }

    /// torchvision's Resize(int): the shorter side becomes `target`, the longer int(target * long / short).
    public static func resizedSize(_ image: RGBImage, shorterSide target: Int) -> (width: Int, height: Int) {
        let (w, h) = (image.width, image.height)
        return w <= h
            ? (target, Int(Double(target) * Double(h) / Double(w)))
            : (Int(Double(target) * Double(w) / Double(h)), target)
    }

    /// CenterCrop's offset along one side: round((length - size) / 2), rounding half to even as Python does.
    static func cropOffset(_ length: Int, _ size: Int) -> Int {
        Int((Double(length - size) / 2).rounded(.toNearestOrEven))
    }

    /// PIL's bicubic resize of an 8-bit RGB image.
    public static func resize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        resize(image, width: width, height: height, columns: 0..<width, rows: 0..<height)
    }

    /// The window `columns` x `rows` of PIL's bicubic resize of `image` to `width` x `height`, computed alone.
    public static func resize(_ image: RGBImage, width: Int, height: Int, columns: Range<Int>, rows: Range<Int>)
        -> RGBImage
    {
        var current = image
        if width != image.width || columns != 0..<width {
            current = pass(current, outSize: width, outputs: columns, horizontal: true)
        }
        if height != image.height || rows != 0..<height {
            current = pass(current, outSize: height, outputs: rows, horizontal: false)
        }
        return current
    }

    static let precisionBits = 32 - 8 - 2

    /// The bicubic kernel PIL uses (a = -0.5), support 2.
    static func bicubic(_ value: Double) -> Double {
        let a = -0.5
        let x = abs(value)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// For each output position: the first input index and the fixed-point weights (PIL's precompute_coeffs and
    /// normalize_coeffs_8bpc).
    static func coefficients(inSize: Int, outSize: Int, outputs: Range<Int>) -> [(start: Int, weights: [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        return outputs.map { out in
            let center = (Double(out) + 0.5) * scale
            let start = max(Int(center - support + 0.5), 0)
            let end = min(Int(center + support + 0.5), inSize)
            var weights = (start..<end).map { bicubic((Double($0) - center + 0.5) / filterScale) }
            let total = weights.reduce(0, +)
            if total != 0 { weights = weights.map { $0 / total } }
            let one = Double(1 << precisionBits)
            return (start, weights.map { $0 < 0 ? Int32(-0.5 + $0 * one) : Int32(0.5 + $0 * one) })
        }
    }

    /// One pass of the resize along x or y, producing only the `outputs` of the `outSize` output positions.
    private static func pass(_ image: RGBImage, outSize: Int, outputs: Range<Int>, horizontal: Bool) -> RGBImage {
        let (inWidth, inHeight) = (image.width, image.height)
        let coefficients = coefficients(inSize: horizontal ? inWidth : inHeight, outSize: outSize, outputs: outputs)
        let (outWidth, outHeight) = horizontal ? (outputs.count, inHeight) : (inWidth, outputs.count)
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
        let rounding = Int64(1) << (precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { source in
            for y in 0..<outHeight {
                for x in 0..<outWidth {
                    let (start, weights) = coefficients[horizontal ? x : y]
                    for c in 0..<3 {
                        var sum = rounding
                        for (k, weight) in weights.enumerated() {
                            let (sx, sy) = horizontal ? (start + k, y) : (x, start + k)
                            sum += Int64(source[(sy * inWidth + sx) * 3 + c]) * Int64(weight)
                        }
                        out[(y * outWidth + x) * 3 + c] = UInt8(clamping: min(max(sum >> Int64(precisionBits), 0), 255))
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: out)
    }
}

/// An image the authors' transforms cannot take at the input size asked for.
public struct PreprocessError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(description: String) { self.description = description }

    static func unresized(_ image: RGBImage, _ size: Int) -> PreprocessError {
        PreprocessError(
            description:
                "the image is \(image.width)x\(image.height); at --input-size \(size) (32 and below) the authors' transforms do not resize or crop, so images must be \(size)x\(size) (or use an input size above 32)"
        )
    }
}
