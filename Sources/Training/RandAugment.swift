import Foundation
import Images
import Kernels

/// One of RandAugment's operations, as timm 0.3 names and scales them (`auto_augment.py`, the list its `inc1`
/// policies draw from when `increasing`).
public enum AugmentOperation: String, Sendable, CaseIterable {
    case autoContrast = "AutoContrast", equalize = "Equalize", invert = "Invert", rotate = "Rotate"
    case posterize = "Posterize", solarize = "Solarize", solarizeAdd = "SolarizeAdd", color = "Color"
    case contrast = "Contrast", brightness = "Brightness", sharpness = "Sharpness", shearX = "ShearX"
    case shearY = "ShearY", translateXRel = "TranslateXRel", translateYRel = "TranslateYRel"

    /// Whether it is one of `ImageEnhance`'s enhancers, whose argument is a blend factor.
    public var enhances: Bool { [.color, .contrast, .brightness, .sharpness].contains(self) }

    /// Whether the argument's sign is drawn (timm's `_randomly_negate`).
    public var signed: Bool {
        [.rotate, .shearX, .shearY, .translateXRel, .translateYRel].contains(self)
    }

    /// The argument at `level` (0-10) before any sign, by timm's `LEVEL_TO_ARG`; `increasing` picks the variants
    /// whose strength grows with the level (PosterizeIncreasing, SolarizeIncreasing, ColorIncreasing...). For the
    /// enhancers under `increasing` the argument is the distance from 1, whose sign is drawn.
    public func argument(level: Double, increasing: Bool) -> Double {
        let fraction = level / 10
        switch self {
        case .autoContrast, .equalize, .invert: return 0
        case .rotate: return fraction * 30
        case .posterize: return Double(increasing ? 4 - Int(fraction * 4) : Int(fraction * 4))
        case .solarize: return Double(increasing ? 256 - Int(fraction * 256) : Int(fraction * 256))
        case .solarizeAdd: return Double(Int(fraction * 110))
        case .color, .contrast, .brightness, .sharpness: return increasing ? fraction * 0.9 : fraction * 1.8 + 0.1
        case .shearX, .shearY: return fraction * 0.3
        case .translateXRel, .translateYRel: return fraction * 0.45
        }
    }

    /// The operation applied with `argument` (signed where timm signs it; an enhancer's factor), bicubic where it
    /// resamples, `fill` where it uncovers pixels.
    public func apply(_ image: RGBImage, argument: Double, fill: [UInt8]) -> RGBImage {
        switch self {
        case .autoContrast: image.autocontrasted()
        case .equalize: image.equalized()
        case .invert: image.inverted()
        case .rotate: image.rotated(degrees: argument, fill: fill)
        case .posterize: argument >= 8 ? image : image.posterized(keeping: Int(argument))
        case .solarize: image.solarized(threshold: Int(argument))
        case .solarizeAdd: image.solarizeAdded(Int(argument))
        case .color: image.enhanced(.color, factor: argument)
        case .contrast: image.enhanced(.contrast, factor: argument)
        case .brightness: image.enhanced(.brightness, factor: argument)
        case .sharpness: image.enhanced(.sharpness, factor: argument)
        case .shearX: image.affine([1, argument, 0, 0, 1, 0], fill: fill)
        case .shearY: image.affine([1, 0, 0, argument, 1, 0], fill: fill)
        case .translateXRel: image.affine([1, 0, argument * Double(image.width), 0, 1, 0], fill: fill)
        case .translateYRel: image.affine([1, 0, 0, 0, 1, argument * Double(image.height)], fill: fill)
        }
    }
}

/// timm's RandAugment (`rand_augment_transform`) for a policy such as the authors' `rand-m9-mstd0.5-inc1`: `layers`
/// operations drawn uniformly with replacement, each applied half the time at a magnitude drawn from
/// N(`magnitude`, `magnitudeSTD`) held to 0-10. The draws are this engine's (seeded), not Python's.
public struct RandAugment: Sendable, Equatable {
    public let magnitude: Double
    public let layers: Int
    public let magnitudeSTD: Double
    /// Whether the operations are the `inc` list (strength increasing with magnitude).
    public let increasing: Bool

    /// The policy `text` as timm parses it: `rand`, then sections `m<int>`, `n<int>`, `mstd<float>`, `inc<int>`
    /// (timm reads any `inc` value as on, `inc0` too, and so does this).
    ///
    /// - Throws: ``TrainingError`` for a policy timm would refuse, and for weighted choice (`w`) and AutoAugment
    ///   policies (`v0`, `original`), which this engine does not build.
    public init(policy text: String) throws {
        var sections = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard sections.first == "rand" else {
            throw TrainingError(
                "--aa \(text): only RandAugment policies (rand-...) are built; AutoAugment's v0 and original and AugMix are not. Use --aa rand-m9-mstd0.5-inc1 (the authors') or --aa none."
            )
        }
        sections.removeFirst()
        var (magnitude, layers, std, increasing) = (10.0, 2, 0.0, false)
        for section in sections {
            guard let digit = section.firstIndex(where: \.isNumber) else { continue }
            let (key, value) = (String(section[..<digit]), String(section[digit...]))
            switch key {
            case "mstd": std = try Self.number(value, section, text)
            case "inc": increasing = true
            case "m": magnitude = Double(try Self.integer(value, section, text))
            case "n": layers = try Self.integer(value, section, text)
            case "w":
                throw TrainingError("--aa \(text): weighted choice (\(section)) is not built; leave the w section out.")
            default: throw TrainingError("--aa \(text): unknown section \(section) (timm knows m, n, mstd, inc, w).")
            }
        }
        guard layers >= 0 && std >= 0 else {
            throw TrainingError("--aa \(text): n and mstd must not be negative.")
        }
        (self.magnitude, self.layers, magnitudeSTD, self.increasing) = (magnitude, layers, std, increasing)
    }

    private static func integer(_ value: String, _ section: String, _ text: String) throws -> Int {
        guard let number = Int(value) else { throw TrainingError("--aa \(text): \(section) needs an integer.") }
        return number
    }

    private static func number(_ value: String, _ section: String, _ text: String) throws -> Double {
        guard let number = Double(value), number.isFinite else {
            throw TrainingError("--aa \(text): \(section) needs a number.")
        }
        return number
    }

    /// The image after `layers` drawn operations, `fill` (the mean colour, as timm's `img_mean`) where a geometric
    /// one uncovers pixels.
    public func apply(_ image: RGBImage, fill: [UInt8], using random: inout SeededRandom) -> RGBImage {
        var image = image
        let operations = AugmentOperation.allCases
        for _ in 0..<layers {
            let operation = operations[Int.random(in: 0..<operations.count, using: &random)]
            guard Double.random(in: 0..<1, using: &random) <= 0.5 else { continue }
            var level = magnitude
            if magnitudeSTD > 0 { level += magnitudeSTD * random.normal() }
            level = min(10, max(0, level))
            var argument = operation.argument(level: level, increasing: increasing)
            if operation.signed || (operation.enhances && increasing) {
                if Double.random(in: 0..<1, using: &random) > 0.5 { argument = -argument }
            }
            if operation.enhances && increasing { argument += 1 }
            image = operation.apply(image, argument: argument, fill: fill)
        }
        return image
    }
}

/// torchvision's `ColorJitter(brightness, contrast, saturation)` as timm builds it from one strength (hue 0): the
/// three enhancers in a random order, each factor uniform in [max(0, 1 - strength), 1 + strength].
public struct ColorJitter: Sendable, Equatable {
    public let strength: Double

    public init(strength: Double) { self.strength = strength }

    public func apply(_ image: RGBImage, using random: inout SeededRandom) -> RGBImage {
        guard strength > 0 else { return image }
        // torchvision permutes four (hue's place included, skipped when hue is 0), then draws the factors.
        let order = [0, 1, 2, 3].shuffled(using: &random)
        let factors = (0..<3).map { _ in Double.random(in: max(0, 1 - strength)...(1 + strength), using: &random) }
        var image = image
        for index in order where index < 3 {
            let kind: RGBImage.Enhancement = [.brightness, .contrast, .color][index]
            image = image.enhanced(kind, factor: factors[index])
        }
        return image
    }
}
