import Foundation
import Images
import Kernels
import Testing

@testable import Training

private struct RandAugmentFixture: Decodable {
    struct Case: Decodable { let image, operation: String; let argument: Double?; let pixels: String }
    struct Level: Decodable { let operation: String; let level, argument: Double }
    let inputs: [String: String]
    let sizes: [String: [Int]]
    let cases: [Case]
    let levels: [Level]

    func image(_ name: String) throws -> RGBImage {
        let bytes = try #require(Data(base64Encoded: inputs[name] ?? ""))
        let size = try #require(sizes[name])
        return RGBImage(width: size[0], height: size[1], pixels: [UInt8](bytes))
    }
}

private func fixture() throws -> RandAugmentFixture {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/randaugment.json")
    return try JSONDecoder().decode(RandAugmentFixture.self, from: Data(contentsOf: url))
}

@Test("every RandAugment operation gives timm 0.3's bytes over PIL at fixed arguments (bicubic, mean fill)")
func randAugmentOperationsMatchPIL() throws {
    let fixture = try fixture()
    #expect(fixture.cases.count == 50)
    for item in fixture.cases {
        let operation = try #require(
            AugmentOperation(rawValue: item.operation), "an operation timm has and this engine lacks: \(item.operation)"
        )
        let out = operation.apply(
            try fixture.image(item.image), argument: item.argument ?? 0, fill: TrainingTransform.meanFill)
        let expected = [UInt8](try #require(Data(base64Encoded: item.pixels)))
        let differing = zip(out.pixels, expected).filter { $0 != $1 }.count
        #expect(
            out.pixels == expected,
            "\(item.operation)(\(item.argument.map { "\($0)" } ?? "")) on \(item.image): \(differing) bytes differ")
    }
}

@Test("RandAugment's levels map to timm's arguments; policies parse as timm parses them or are refused")
func randAugmentLevelsAndPolicies() throws {
    for level in try fixture().levels {
        let increasing = level.operation.hasSuffix("Increasing")
        let name = increasing ? String(level.operation.dropLast("Increasing".count)) : level.operation
        let operation = try #require(AugmentOperation(rawValue: name))
        var argument = operation.argument(level: level.level, increasing: increasing)
        if increasing && operation.enhances { argument += 1 }
        #expect(abs(argument - level.argument) <= 1e-12, "\(level.operation) at \(level.level)")
    }
    let authors = try RandAugment(policy: "rand-m9-mstd0.5-inc1")
    #expect(try RandAugment(policy: "rand-mx") == RandAugment(policy: "rand"))  // no number: timm passes it over
    #expect(authors == (try RandAugment(policy: "rand-mstd0.5-m9-n2-inc0")))  // timm reads inc0 as on
    #expect(authors.magnitude == 9 && authors.layers == 2 && authors.magnitudeSTD == 0.5 && authors.increasing)
    for refused in ["v0", "original", "augmix-m5", "rand-m9-w0", "rand-q3", "rand-m9.5"] {
        #expect(throws: TrainingError.self, "\(refused)") { try RandAugment(policy: refused) }
    }
    // Posterize to 0 bits (level 10 of PosterizeIncreasing) blacks the image, as Pillow before 10 did.
    let photo = try fixture().image("photo")
    #expect(AugmentOperation.posterize.apply(photo, argument: 0, fill: [0, 0, 0]).pixels.allSatisfy { $0 == 0 })
}

@Test("RandAugment and colour jitter change images, differently per draw, and the same for the same seed")
func randAugmentDraws() throws {
    let photo = try fixture().image("photo")
    let policy = try RandAugment(policy: "rand-m9-mstd0.5-inc1")
    var outputs: Set<[UInt8]> = []
    for seed in 0..<12 {
        var random = SeededRandom(seed: UInt64(seed)), again = SeededRandom(seed: UInt64(seed))
        let out = policy.apply(photo, fill: TrainingTransform.meanFill, using: &random)
        #expect(out == policy.apply(photo, fill: TrainingTransform.meanFill, using: &again))
        outputs.insert(out.pixels)
        var jitterRandom = SeededRandom(seed: UInt64(seed))
        outputs.insert(ColorJitter(strength: 0.4).apply(photo, using: &jitterRandom).pixels)
    }
    #expect(outputs.count >= 20, "12 seeds of each gave only \(outputs.count) distinct images")
    var random = SeededRandom(seed: 1)
    #expect(ColorJitter(strength: 0).apply(photo, using: &random) == photo)
}

@Test("the recipe's transform takes RandAugment by default, colour jitter when --aa none, as timm chooses")
func recipeTransformChoosesAugmentation() throws {
    var recipe = TrainingRecipe(model: "bossnet_T0", dataPath: "unused")
    recipe.inputSize = 32
    let authors = try recipe.transform()
    #expect(
        authors.randAugment == (try RandAugment(policy: "rand-m9-mstd0.5-inc1")) && authors.colorJitter.strength == 0)
    recipe.aa = "none"
    let jittered = try recipe.transform()
    #expect(jittered.randAugment == nil && jittered.colorJitter.strength == 0.4)
    recipe.colorJitter = 0
    let plain = try recipe.transform()
    // The same draws through each: the augmented tensors differ from the plain one for most seeds.
    let photo = try fixture().image("photo")
    var changed = (augmented: 0, jittered: 0)
    for seed in 0..<8 {
        func tensor(_ transform: TrainingTransform) throws -> [Float] {
            var random = SeededRandom(seed: UInt64(seed))
            return try transform.tensor(photo, using: &random)
        }
        let base = try tensor(plain)
        changed.augmented += try tensor(authors) != base ? 1 : 0
        changed.jittered += try tensor(jittered) != base ? 1 : 0
    }
    #expect(changed.augmented >= 4 && changed.jittered == 8, "\(changed)")
}
