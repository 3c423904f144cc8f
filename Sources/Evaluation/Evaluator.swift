import Foundation
import Images
import Kernels
import NetworkGraph
import VulkanCompute

/// Where an evaluation stands, reported after every batch.
public struct EvaluationProgress: Sendable {
    /// Images finished in this run (classified or not readable).
    public let done: Int
    /// Images this run has to do (those a resumed run already holds excluded).
    public let total: Int
    /// Accuracy so far, over every finished image (a resumed run's earlier ones included).
    public let accuracy: AccuracyAccumulator
    /// Seconds since the run started.
    public let elapsed: Double

    /// Images per second in this run.
    public var imagesPerSecond: Double { elapsed > 0 ? Double(done) / elapsed : 0 }
    /// Seconds left at the current rate (nil before the first batch).
    public var secondsLeft: Double? { done > 0 ? Double(total - done) / imagesPerSecond : nil }
}

/// Opens the device of one session; nil runs the CPU reference. Called on the task that uses the device.
public typealias DeviceFactory = @Sendable () throws -> VulkanDevice?

/// Runs a labelled image set through a model and counts its top-1 and top-5 accuracy.
///
/// Images are decoded and preprocessed on CPU tasks, a batch at a time, while the device works on the batch before;
/// at most two batches per session wait decoded, so memory stays bounded whatever the set's size. With several
/// device factories, each runs its own session on its share of the batches (data parallel).
public struct Evaluator: Sendable {
    /// The images to evaluate.
    public let set: ImageSet
    /// The model's graph at the batch size and input size of the run.
    public let graph: Graph
    /// Whether an image that cannot be read stops the run (otherwise it is reported and counted apart).
    public let strict: Bool

    public init(set: ImageSet, graph: Graph, strict: Bool = false) {
        self.set = set
        self.graph = graph
        self.strict = strict
    }

    /// Evaluates every image of the set that `resumed` (the records a resumed run already holds) does not cover,
    /// calling `record` once per image, in no particular order, and `progress` after every batch. Returns the accuracy
    /// over the resumed records and the new ones, each session's device (none for the CPU reference), and what their validation layers
    /// reported.
    public func run(
        devices: [DeviceFactory], kernels: KernelChoice = .automatic, resumed: [PredictionRecord] = [],
        record: @escaping @Sendable (PredictionRecord) throws -> Void,
        progress: @escaping @Sendable (EvaluationProgress) -> Void = { _ in }
    ) async throws -> (accuracy: AccuracyAccumulator, devices: [DeviceInfo], validationMessages: [String]) {
        precondition(!devices.isEmpty, "at least one device (or nil for the CPU reference)")
        let skip = Set(resumed.map(\.path))
        let todo = set.images.filter { !skip.contains($0.path) }
        let sink = EvaluationSink(resumed: resumed, total: todo.count, record: record, progress: progress)
        let channel = BoundedChannel<DecodedBatch>(capacity: 2 * devices.count)
        let (graph, root, strict, batch) = (graph, set.root, strict, graph.batch)
        let inputSize = graph.shapes[graph.input].height
        var sessions: [(device: DeviceInfo?, messages: [String])] = []
        try await withThrowingTaskGroup(of: [(device: DeviceInfo?, messages: [String])].self) { group in
            group.addTask {
                // The producer: decode a batch at a time and hand it on; the channel closes when it is done.
                do {
                    for start in stride(from: 0, to: todo.count, by: batch) {
                        try Task.checkCancellation()
                        let chunk = Array(todo[start..<min(start + batch, todo.count)])
                        let decoded = await Self.decode(chunk, root: root, inputSize: inputSize)
                        var ready = DecodedBatch()
                        for (image, result) in zip(chunk, decoded) {
                            switch result {
                            case let .success(tensor):
                                ready.images.append(image)
                                ready.tensors.append(tensor)
                            case let .failure(error):
                                if strict { throw ImageSetError("\(image.path): \(error.reason) (--strict)") }
                                try await sink.add([
                                    PredictionRecord(path: image.path, label: image.label, error: error.reason)
                                ])
                            }
                        }
                        if !ready.images.isEmpty, await !channel.send(ready) { break }
                    }
                } catch {
                    await channel.close()
                    throw error
                }
                await channel.close()
                return []
            }
            for factory in devices {
                group.addTask {
                    let device = try factory()
                    let classifier = try Classifier(graph: graph, device: device, kernels: kernels)
                    while let ready = await channel.receive() {
                        let logits = try classifier.logits(ready.tensors)
                        let records = zip(ready.images, logits).map { image, row in
                            let best = Classifier.top(row, k: 5)
                            return PredictionRecord(
                                path: image.path, label: image.label, top5: best.indices,
                                probabilities: best.probabilities)
                        }
                        try await sink.add(records)
                    }
                    return [(device?.info, device?.instance.validationMessages.map { "\($0)" } ?? [])]
                }
            }
            do {
                for try await reported in group { sessions += reported }
            } catch {
                await channel.close()
                group.cancelAll()
                throw error
            }
        }
        return (await sink.accuracy, sessions.compactMap(\.device), sessions.flatMap(\.messages))
    }

    /// Decodes and preprocesses a batch's images in parallel, in order.
    static func decode(_ images: [LabelledImage], root: URL, inputSize: Int) async -> [Result<[Float], ImageError>] {
        await withTaskGroup(of: (Int, Result<[Float], ImageError>).self) { group in
            for (index, image) in images.enumerated() {
                group.addTask {
                    do {
                        let rgb = try RGBImage(contentsOf: root.appendingPathComponent(image.path))
                        return (index, .success(try Preprocess.evaluationTensor(rgb, inputSize: inputSize)))
                    } catch let error as ImageError {
                        return (index, .failure(error))
                    } catch {
                        return (index, .failure(ImageError(.undecodable, "\(error)", path: image.path)))
                    }
                }
            }
            var results = [Result<[Float], ImageError>?](repeating: nil, count: images.count)
            for await (index, result) in group { results[index] = result }
            return results.map { $0 ?? .failure(ImageError(.undecodable, "not decoded")) }
        }
    }
}

/// A batch of decoded images on its way to a device.
struct DecodedBatch: Sendable {
    var images: [LabelledImage] = []
    var tensors: [[Float]] = []
}

/// Collects records from every task: the running accuracy, the caller's record callback, progress.
actor EvaluationSink {
    private(set) var accuracy = AccuracyAccumulator()
    private var done = 0
    private let total: Int
    private let start = Date()
    private let record: @Sendable (PredictionRecord) throws -> Void
    private let progress: @Sendable (EvaluationProgress) -> Void

    init(
        resumed: [PredictionRecord], total: Int, record: @escaping @Sendable (PredictionRecord) throws -> Void,
        progress: @escaping @Sendable (EvaluationProgress) -> Void
    ) {
        for item in resumed { accuracy.add(item) }
        self.total = total
        self.record = record
        self.progress = progress
    }

    func add(_ records: [PredictionRecord]) throws {
        for item in records {
            try record(item)
            accuracy.add(item)
        }
        done += records.count
        progress(
            EvaluationProgress(done: done, total: total, accuracy: accuracy, elapsed: Date().timeIntervalSince(start)))
    }
}

/// A first-in first-out channel of bounded capacity between tasks: a sender waits while it is full, a receiver while
/// it is empty; after ``close()`` receivers drain what is left and then get nil, and senders get false.
actor BoundedChannel<Element: Sendable> {
    private var buffer: [Element] = []
    private let capacity: Int
    private var closed = false
    private var receivers: [CheckedContinuation<Element?, Never>] = []
    private var senders: [CheckedContinuation<Void, Never>] = []

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Sends `element`, waiting for room; false if the channel was closed.
    func send(_ element: Element) async -> Bool {
        while buffer.count >= capacity && !closed {
            await withCheckedContinuation { senders.append($0) }
        }
        guard !closed else { return false }
        if !receivers.isEmpty {
            receivers.removeFirst().resume(returning: element)
        } else {
            buffer.append(element)
        }
        return true
    }

    /// The next element, waiting for one; nil once the channel is closed and empty.
    func receive() async -> Element? {
        if !buffer.isEmpty {
            let element = buffer.removeFirst()
            if !senders.isEmpty { senders.removeFirst().resume() }
            return element
        }
        if closed { return nil }
        return await withCheckedContinuation { receivers.append($0) }
    }

    func close() {
        closed = true
        for receiver in receivers { receiver.resume(returning: nil) }
        receivers.removeAll()
        for sender in senders { sender.resume() }
        senders.removeAll()
    }
}
