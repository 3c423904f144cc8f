import Foundation

/// One line of a predictions file: an image's label and top-5 classes with their probabilities, or why it could not
/// be read.
public struct PredictionRecord: Codable, Sendable, Equatable {
    /// The path relative to the set's folder.
    public let path: String
    public let label: Int
    /// The five most likely classes, best first (absent for an image that could not be read).
    public let top5: [Int]?
    /// Their softmax probabilities.
    public let probabilities: [Double]?
    /// Why the image could not be read (absent for a classified image).
    public let error: String?

    public init(path: String, label: Int, top5: [Int]? = nil, probabilities: [Double]? = nil, error: String? = nil) {
        self.path = path
        self.label = label
        self.top5 = top5
        self.probabilities = probabilities
        self.error = error
    }
}

/// Counts top-1 and top-5 hits over classified images; images that could not be read are kept apart (they count in
/// neither accuracy).
public struct AccuracyAccumulator: Sendable, Equatable {
    /// Images classified.
    public private(set) var images = 0
    public private(set) var top1Hits = 0
    public private(set) var top5Hits = 0
    /// Images that could not be read, with the reason.
    public private(set) var errors: [ImageFailure] = []

    public init() {}

    public mutating func add(_ record: PredictionRecord) {
        if let reason = record.error {
            errors.append(ImageFailure(path: record.path, reason: reason))
            return
        }
        images += 1
        let top5 = record.top5 ?? []
        if top5.first == record.label { top1Hits += 1 }
        if top5.prefix(5).contains(record.label) { top5Hits += 1 }
    }

    /// Top-1 accuracy as a fraction of the classified images (0 when there are none).
    public var top1: Double { images > 0 ? Double(top1Hits) / Double(images) : 0 }
    /// Top-5 accuracy as a fraction of the classified images.
    public var top5: Double { images > 0 ? Double(top5Hits) / Double(images) : 0 }
}

/// An image that could not be read.
public struct ImageFailure: Codable, Sendable, Equatable {
    public let path: String
    public let reason: String
}

/// The first line of a predictions file: what run the lines belong to, so a resumed run or a merge can check it.
public struct PredictionsHeader: Codable, Sendable, Equatable {
    public var format = Self.currentFormat
    public let model: String
    /// The weights as the user named them (a path, a published file's name, or `synthetic`).
    public let weights: String
    /// The SHA-256 of the weights as bound: what tells two runs of same-named weights apart.
    public let weights_sha256: String
    public let ema: Bool
    public let input_size: Int
    public let shard: Int
    public let shards: Int
    /// Images in this shard.
    public let images: Int
    /// Images in the whole set.
    public let set_images: Int

    /// The format this version writes and reads.
    public static let currentFormat = "bossnet-eval-predictions-2"

    public init(
        model: String, weights: String, weightsSHA256: String, ema: Bool, inputSize: Int, shard: Shard, images: Int,
        setImages: Int
    ) {
        self.model = model
        self.weights = weights
        weights_sha256 = weightsSHA256
        self.ema = ema
        input_size = inputSize
        self.shard = shard.index
        shards = shard.count
        self.images = images
        set_images = setImages
    }

    /// What differs between this run and `other`, each as "what: this (here) vs that (there)"; empty for the
    /// same run. Weights are compared by their digest alone: the same weights under another path are the same run. With `shard: false`, the shard's own number and size are not compared (shards of one run differ).
    public func differences(from other: PredictionsHeader, here: String, there: String, shard: Bool = true)
        -> [String]
    {
        var found: [String] = []
        func compare<T: Equatable>(_ what: String, _ mine: T, _ theirs: T, _ show: (T) -> String = { "\($0)" }) {
            if mine != theirs { found.append("\(what): \(show(mine)) (\(here)) vs \(show(theirs)) (\(there))") }
        }
        compare("model", model, other.model)
        compare("weights", weights_sha256, other.weights_sha256) { "sha256 \($0.prefix(12))" }
        compare("EMA", ema, other.ema)
        compare("input size", input_size, other.input_size)
        compare("set size", set_images, other.set_images) { "\($0) images" }
        compare("shards", shards, other.shards)
        if shard {
            compare("shard", self.shard, other.shard)
            compare("shard size", images, other.images) { "\($0) images" }
        }
        return found
    }
}

/// Predictions files (JSON Lines): a ``PredictionsHeader`` line, then one ``PredictionRecord`` per image.
public enum PredictionsFile {
    /// What a predictions file holds: its header, its complete records, and the byte length of those lines (a line
    /// cut short by an interrupted run is not counted).
    public struct Contents: Sendable {
        public let header: PredictionsHeader
        public let records: [PredictionRecord]
        public let completeLength: Int
    }

    /// Reads a predictions file; a last line cut short (an interrupted run) is ignored.
    public static func read(_ url: URL) throws -> Contents {
        guard let data = try? Data(contentsOf: url) else {
            throw ImageSetError("cannot read the predictions file \(url.path)")
        }
        let decoder = JSONDecoder()
        var header: PredictionsHeader?
        var records: [PredictionRecord] = []
        var start = data.startIndex, complete = 0, number = 0
        while start < data.endIndex {
            guard let newline = data[start...].firstIndex(of: 0x0A) else { break }  // no newline: cut short
            number += 1
            let line = data[start..<newline]
            if header == nil {
                header = try parseHeader(line, url: url)
            } else {
                guard let record = try? decoder.decode(PredictionRecord.self, from: line) else {
                    throw ImageSetError("\(url.path) line \(number) is not a prediction record")
                }
                records.append(record)
            }
            start = data.index(after: newline)
            complete = start - data.startIndex
        }
        guard let header else { throw ImageSetError("\(url.path) is empty: no header line") }
        return Contents(header: header, records: records, completeLength: complete)
    }

    /// The header line, or an error that says what the file is instead.
    static func parseHeader(_ line: Data, url: URL) throws -> PredictionsHeader {
        struct Format: Decodable { let format: String }
        if let parsed = try? JSONDecoder().decode(PredictionsHeader.self, from: line),
            parsed.format == PredictionsHeader.currentFormat
        {
            return parsed
        }
        if let other = try? JSONDecoder().decode(Format.self, from: line),
            other.format.hasPrefix("bossnet-eval-predictions-")
        {
            throw ImageSetError(
                "\(url.path) was written by another version of bossnet (format \(other.format), this one reads \(PredictionsHeader.currentFormat)): run the evaluation again into a new file"
            )
        }
        throw ImageSetError("\(url.path) is not a predictions file of bossnet eval (its first line is not the header)")
    }

    /// One JSON line (with its newline) for a header or a record.
    public static func line<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value) + Data([0x0A])
    }

    /// Combines the predictions of every shard of one run into its accuracy. Refuses files of different runs, a
    /// shard given twice or missing, an unfinished shard, and an image predicted twice.
    public static func merge(_ urls: [URL]) throws -> (header: PredictionsHeader, accuracy: AccuracyAccumulator) {
        guard !urls.isEmpty else { throw ImageSetError("give the predictions file of every shard") }
        let contents = try urls.map(read)
        let first = contents[0].header
        var byShard: [Int: URL] = [:]
        var paths = Set<String>()
        var accuracy = AccuracyAccumulator()
        for (url, file) in zip(urls, contents) {
            let h = file.header
            let differences = h.differences(from: first, here: url.path, there: urls[0].path, shard: false)
            guard differences.isEmpty else {
                throw ImageSetError(
                    "\(url.path) is from another run than \(urls[0].path); they differ in "
                        + differences.joined(separator: "; "))
            }
            if let other = byShard[h.shard] {
                throw ImageSetError("shard \(h.shard)/\(h.shards) is given twice: \(other.path) and \(url.path)")
            }
            byShard[h.shard] = url
            guard file.records.count == h.images else {
                throw ImageSetError(
                    "\(url.path) holds \(file.records.count) of its shard's \(h.images) images: finish it first (run the same command again to resume)"
                )
            }
            for record in file.records {
                guard paths.insert(record.path).inserted else {
                    throw ImageSetError("\(record.path) is predicted twice (\(url.path) overlaps another file)")
                }
                accuracy.add(record)
            }
        }
        let missing = (0..<first.shards).filter { byShard[$0] == nil }
        guard missing.isEmpty else {
            throw ImageSetError(
                "shard\(missing.count > 1 ? "s" : "") \(missing.map { "\($0)/\(first.shards)" }.joined(separator: ", ")) missing"
            )
        }
        guard paths.count == first.set_images else {
            throw ImageSetError("the shards hold \(paths.count) images but the set has \(first.set_images)")
        }
        return (first, accuracy)
    }
}
