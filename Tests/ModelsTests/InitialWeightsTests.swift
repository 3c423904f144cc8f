import Foundation
import Models
import NetworkGraph
import Testing

/// The authors' T0 as their main.py creates it to train (Tools/make_training_fixtures.py): each state-dict entry's
/// statistics.
private struct Initialization: Decodable {
    struct Entry: Decodable {
        let name: String
        let shape: [Int]
        let mean, std, min, max: Double
    }
    let classes: Int
    let entries: [Entry]
}

@Test("initial weights follow the authors' initialisation: constants exactly, each draw's spread and range as theirs")
func initialWeightsAsTheAuthors() throws {
    let want = try JSONDecoder().decode(
        Initialization.self, from: Data(contentsOf: fixture("bossnet_T0_initialization.json")))
    let model = Model(try Model(name: "bossnet_T0").architecture.with(classes: want.classes), name: "bossnet_T0")
    let weights = try InitialWeights(model: model, seed: 3)
    #expect(try model.stateDictEntries().map(\.name) == want.entries.map(\.name))
    var drawn = 0
    for entry in want.entries {
        let values = try weights.values(for: entry.name, shape: entry.shape).map(Double.init)
        let count = Double(values.count)
        guard entry.std > 0 else {
            // BatchNorm's 1 and 0 (the branches' last gamma 0), the statistics, num_batches_tracked.
            #expect(values.allSatisfy { $0 == entry.mean }, "\(entry.name): want every value \(entry.mean)")
            continue
        }
        drawn += 1
        let mean = values.reduce(0, +) / count
        let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / count).squareRoot()
        // Two samples of one distribution: their spreads differ by about std / sqrt(count).
        #expect(
            abs(std - entry.std) <= 6 * entry.std / count.squareRoot(), "\(entry.name): std \(std), want \(entry.std)")
        #expect(abs(mean) <= 6 * entry.std / count.squareRoot(), "\(entry.name): mean \(mean)")
        // The range tells a uniform draw (2 sqrt(3) = 3.46 standard deviations wide, of its spread as drawn) from a
        // normal one (wider than 5 of them at 256 values or more).
        if values.count >= 256 {
            let (width, wantWidth) = (
                ((values.max() ?? 0) - (values.min() ?? 0)) / std, (entry.max - entry.min) / entry.std
            )
            #expect(
                (width <= 4.5) == (wantWidth <= 4.5),
                "\(entry.name): \(width) standard deviations wide, want \(wantWidth)")
        }
    }
    #expect(drawn > 100)
    // Another seed draws other values; the same seed the same.
    let name = "layer1.0.conv2.weight", shape = [64, 64, 3, 3]
    #expect(
        try weights.values(for: name, shape: shape)
            == InitialWeights(model: model, seed: 3).values(for: name, shape: shape))
    #expect(
        try weights.values(for: name, shape: shape)
            != InitialWeights(model: model, seed: 4).values(for: name, shape: shape))
    #expect(throws: ArchitectureError.self) {
        try InitialWeights(
            model: Model(Architecture.parse("mbconv:" + Array(repeating: "6x3", count: 19).joined(separator: ","))),
            seed: 0)
    }
}
