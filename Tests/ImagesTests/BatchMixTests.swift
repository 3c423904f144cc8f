import Foundation
import Images
import Kernels
import Testing

/// timm's Mixup in batch mode with its draws fixed (Tools/make_training_fixtures.py).
private struct MixupFixture: Decodable {
    struct Case: Decodable {
        let lam: Double
        let centre: [Int]?
        let mixed_lam: Double
        let images: [Float]
        let targets: [Double]
    }
    let images: [Float]
    let labels: [Int]
    let classes: Int
    let smoothing: Double
    let mixup: Case
    let cutmix: Case
}

@Test("mixup and cutmix of a batch as timm's Mixup makes them: the images, the corrected lam, the mixed targets")
func batchMixMatchesTimm() throws {
    let fixture = try JSONDecoder().decode(MixupFixture.self, from: Data(contentsOf: fixture("mixup.json")))
    let centre = try #require(fixture.cutmix.centre)
    let box = CutMixBox(height: 8, width: 8, lam: fixture.cutmix.lam, centreY: centre[0], centreX: centre[1])
    for (mix, expected) in [(BatchMix.mixup(lam: fixture.mixup.lam), fixture.mixup), (.cutmix(box), fixture.cutmix)] {
        var images = fixture.images
        mix.apply(to: &images, batch: 4, channels: 3, height: 8, width: 8)
        // The same float32 products and sum as timm's in-place ones: equal to the bit.
        #expect(images == expected.images, "\(mix)")
        let lam = mix.lam(height: 8, width: 8)
        #expect(lam == expected.mixed_lam, "\(mix): lam \(lam) against \(expected.mixed_lam)")
        let targets = CrossEntropy(batch: 4, classes: fixture.classes).mixedTargets(
            labels: fixture.labels, smoothing: fixture.smoothing, lam: lam)
        let worst = zip(targets, expected.targets).map { abs($0 - $1) }.max() ?? .infinity
        #expect(targets.count == expected.targets.count && worst <= 1e-16, "\(mix): targets differ by \(worst)")
    }
    // The box clipped by the border: rows 0..<4, columns 5..<8 of a 5 x 5 square centred at (2, 7).
    #expect((box.top, box.bottom, box.left, box.right) == (0, 4, 5, 8))
    // Unclipped: the 5 x 5 square's sides at centre - 2 and centre + 2 (timm's cut // 2 on each side).
    let inside = CutMixBox(height: 8, width: 8, lam: 0.6, centreY: 5, centreX: 3)
    #expect((inside.top, inside.bottom, inside.left, inside.right) == (3, 7, 1, 5) && inside.area == 16)
}
