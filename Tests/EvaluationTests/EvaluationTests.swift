import Evaluation
import Foundation
import Models
import NetworkGraph
import Testing
import VulkanCompute

func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        .appendingPathComponent(name)
}

/// expected.json: what the authors' BossNet-T0 computes for the set (Tools/make_fixtures.py).
struct Expected: Decodable {
    struct Accuracy: Decodable {
        let images: Int
        let top1: Double
        let top5: Double
        let errors: [String]
    }
    let imagefolder: Accuracy
    let labels: Accuracy
    let top5: [String: [Int]]
}

func expected() throws -> Expected {
    try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixture("expected.json")))
}

/// A session on the default device with the validation layer required (its messages come back from the run).
let validatedDevice: DeviceFactory = { try VulkanDevice(instance: VulkanInstance(validation: .required)) }

/// A tiny HyTra network (`hytra:1-_-0-_,act=relu`), for the mechanics of evaluation (shards, merging, sessions).
let tinyModel = Model(
    Architecture(
        HyTraArchitecture(
            stages: [[.convolution], [], [.attention], []], activation: .relu, squeezeExcite: true, lastStride: 2)))

/// Runs the set (or a shard of it) through `model` (BossNet-T0 by default) at `inputSize` with the calibrated
/// synthetic weights.
func evaluate(
    _ set: ImageSet, model: Model? = nil, inputSize: Int = 64, devices: [DeviceFactory] = [validatedDevice],
    batch: Int = 4
) async throws -> (accuracy: AccuracyAccumulator, records: [PredictionRecord]) {
    let model = try model ?? Model(name: "bossnet_T0")
    let graph = try model.graph(
        batch: batch, inputSize: inputSize, weights: SyntheticWeights(calibratedFor: model))
    let collected = Collected()
    let result = try await Evaluator(set: set, graph: graph).run(devices: devices, record: { collected.append($0) })
    #expect(result.validationMessages.isEmpty, "\(result.validationMessages)")
    return (result.accuracy, collected.records.sorted { $0.path < $1.path })
}

final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [PredictionRecord] = []
    func append(_ record: PredictionRecord) { lock.withLock { items.append(record) } }
    var records: [PredictionRecord] { lock.withLock { items } }
}

@Test("the ImageFolder layout: classes in sorted order, images by extension, sorted by path")
func imageFolder() throws {
    let set = try ImageSet(imageFolder: fixture("set"))
    #expect(set.classes == ["cat", "dog", "fish"])
    #expect(set.images.count == 14)  // fish/README.txt is not an image
    #expect(set.images.map(\.path) == set.images.map(\.path).sorted())
    #expect(set.images.first == LabelledImage(path: "cat/cat_0.png", label: 0))
    #expect(set.images.contains(LabelledImage(path: "fish/actually_a_jpeg.png", label: 2)))
    #expect(throws: ImageSetError.self) { try ImageSet(imageFolder: fixture("set/cat")) }  // no class folders
    #expect(throws: ImageSetError.self) { try ImageSet(imageFolder: fixture("nothing here")) }
}

@Test("a labels file; its errors name the line")
func labelsFile() throws {
    let set = try ImageSet(root: fixture("set"), labelsFile: fixture("labels.txt"))
    #expect(set.images.count == 14 && set.classes.isEmpty)
    let bad = FileManager.default.temporaryDirectory.appendingPathComponent("bossnet-labels-\(UUID().uuidString).txt")
    defer { try? FileManager.default.removeItem(at: bad) }
    for (text, says) in [
        ("cat/cat_0.png 1000\n", "line 1"), ("cat/missing.png 3\n", "does not exist"), ("cat/cat_0.png\n", "line 1"),
        ("cat/cat_0.png 1\ncat/cat_0.png 2\n", "twice"),
    ] {
        try text.write(to: bad, atomically: true, encoding: .utf8)
        #expect(throws: ImageSetError.self) { try ImageSet(root: fixture("set"), labelsFile: bad) }
        do { _ = try ImageSet(root: fixture("set"), labelsFile: bad) } catch {
            #expect("\(error)".contains(says), "\(error)")
        }
    }
}

@Test("shards are disjoint, cover the set, and K/N is checked")
func shards() throws {
    let set = try ImageSet(imageFolder: fixture("set"))
    let parts = try (0..<3).map { set.shard(try Shard(index: $0, count: 3)).images }
    #expect(parts.map(\.count) == [5, 5, 4])
    #expect(Set(parts.flatMap { $0 }) == Set(set.images) && parts.flatMap { $0 }.count == set.images.count)
    #expect(throws: ImageSetError.self) { try Shard(parsing: "3/3") }
    #expect(throws: ImageSetError.self) { try Shard(parsing: "1-3") }
    #expect(try Shard(parsing: "2/8") == Shard(index: 2, count: 8))
}

@Test(
    "the set's top-1 and top-5 are what the authors' model computes over the same files; the corrupt file is reported")
func accuracyMatchesAuthors() async throws {
    let want = try expected()
    let set = try ImageSet(root: fixture("set"), labelsFile: fixture("labels.txt"))
    let (accuracy, records) = try await evaluate(set)
    #expect(accuracy.images == want.labels.images)
    #expect(accuracy.top1 == want.labels.top1 && accuracy.top5 == want.labels.top5, "\(accuracy)")
    #expect(accuracy.errors.map(\.path) == want.labels.errors)
    #expect(accuracy.errors.first?.reason.contains("truncated") == true, "\(accuracy.errors)")
    for record in records where record.error == nil {
        #expect(record.top5 == want.top5[record.path], "\(record.path)")
        let probabilities = record.probabilities ?? []
        #expect(probabilities.count == 5 && zip(probabilities, probabilities.dropFirst()).allSatisfy { $0 >= $1 })
    }
    // The folder labels give what the authors' model gives under them too.
    let (folder, _) = try await evaluate(try ImageSet(imageFolder: fixture("set")))
    #expect(
        folder.top1 == want.imagefolder.top1 && folder.top5 == want.imagefolder.top5
            && folder.images == want.imagefolder.images)
}

@Test("two shards merged equal the whole run; two sessions on one device equal one")
func shardsAndDevices() async throws {
    let set = try ImageSet(root: fixture("set"), labelsFile: fixture("labels.txt"))
    let (whole, wholeRecords) = try await evaluate(set, model: tinyModel, inputSize: 40)
    // Above 32 px the photos are resized as the authors' transform does; only the corrupt file fails.
    #expect(whole.errors.count == 1)
    var files: [URL] = []
    defer { for file in files { try? FileManager.default.removeItem(at: file) } }
    for index in 0..<2 {
        let shard = try Shard(index: index, count: 2)
        let part = set.shard(shard)
        let (_, records) = try await evaluate(part, model: tinyModel, inputSize: 40, batch: 3)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bossnet-shard-\(UUID().uuidString).jsonl")
        var data = try PredictionsFile.line(
            PredictionsHeader(
                model: tinyModel.name, weights: "synthetic", weightsSHA256: String(repeating: "0", count: 64),
                ema: false, inputSize: 40, shard: shard,
                images: part.images.count, setImages: set.images.count))
        for record in records { data += try PredictionsFile.line(record) }
        try data.write(to: url)
        files.append(url)
    }
    let merged = try PredictionsFile.merge(files)
    #expect(
        merged.accuracy.top1 == whole.top1 && merged.accuracy.top5 == whole.top5
            && merged.accuracy.images == whole.images)
    #expect(Set(merged.accuracy.errors.map(\.path)) == Set(whole.errors.map(\.path)))
    #expect(throws: ImageSetError.self) { try PredictionsFile.merge([files[0]]) }  // shard 1/2 missing
    #expect(throws: ImageSetError.self) { try PredictionsFile.merge([files[0], files[0], files[1]]) }  // given twice

    let (pair, pairRecords) = try await evaluate(
        set, model: tinyModel, inputSize: 40, devices: [validatedDevice, validatedDevice], batch: 2)
    #expect(pair == whole)
    #expect(pairRecords.map(\.path) == wholeRecords.map(\.path))
    #expect(pairRecords.map(\.top5) == wholeRecords.map(\.top5))
}

@Test("the embedded ImageNet class names are the 1000 of shared/data/imagenet_classes.txt, in class order")
func imageNetLabels() {
    let names = ImageNetLabels.names
    #expect(names.count == 1000 && Set(names).count == 1000)
    #expect(names.first == "tench" && names[1] == "goldfish" && names[281] == "tabby" && names.last == "toilet tissue")
}
