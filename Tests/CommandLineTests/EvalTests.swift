import Foundation
import Testing

/// The labelled set of Tests/EvaluationTests/Fixtures and what the authors' model computes for it.
func evaluationFixture(_ name: String) -> URL { sharedFixture("EvaluationTests", name) }

struct EvalOutput: Decodable {
    struct Failure: Decodable { let path: String; let reason: String }
    let images: Int
    let top1: Double
    let top5: Double
    let errors: [Failure]
    let resumed: Int
}

struct ExpectedLabels: Decodable {
    struct Accuracy: Decodable { let images: Int; let top1: Double; let top5: Double }
    let labels: Accuracy
}

/// A tiny HyTra network for the command's mechanics (the accuracy of the authors' model over the same set is checked
/// in EvaluationTests, through the same library).
let tinyEvalArch = "hytra:1-_-0-_,act=relu,se=yes"

/// Runs `bossnet eval` with the tiny network on the fixture set with its labels file at 40x40 and returns the JSON
/// summary.
func evalJSON(_ extra: [String]) throws -> (EvalOutput, String) {
    let result = try run(
        [
            "eval", "--arch", tinyEvalArch, "--weights", "synthetic", "--labels", evaluationFixture("labels.txt").path,
            "--input-size", "40", "--batch", "4", "--json",
        ]
            + extra + [evaluationFixture("set").path])
    #expect(result.status == 0, "\(result.error)")
    return (try JSONDecoder().decode(EvalOutput.self, from: Data(result.output.utf8)), result.error)
}

func recordLines(_ url: URL) throws -> [String] {
    try String(contentsOf: url, encoding: .utf8).split(separator: "\n").dropFirst().map(String.init).sorted()
}

@Test("bossnet eval: the set's summary, predictions, a resumed run equal to an uninterrupted one, shards merged")
func evalCommand() throws {
    let want = try JSONDecoder().decode(ExpectedLabels.self, from: Data(contentsOf: evaluationFixture("expected.json")))
        .labels
    let predictions = temporary("predictions.jsonl")
    var cleanup = [predictions]
    defer { for url in cleanup { try? FileManager.default.removeItem(at: url) } }

    let (whole, log) = try evalJSON(["--predictions", predictions.path])
    #expect(whole.images == want.images && (0...1).contains(whole.top1) && whole.top5 >= whole.top1, "\(whole)")
    #expect(whole.errors.map(\.path) == ["dog/broken.jpg"] && whole.resumed == 0)
    #expect(log.contains("eval: 14/14 images"), "progress lines on a pipe: \(log)")
    let lines = try recordLines(predictions)
    #expect(
        lines.count == 14 && lines.contains { $0.contains("\"path\":\"cat/cat_0.png\"") && $0.contains("\"top5\":[") })

    // Interrupted after 6 images, in the middle of a line: the run resumes and ends as the whole one did.
    let interrupted = temporary("interrupted.jsonl")
    cleanup.append(interrupted)
    let text = try String(contentsOf: predictions, encoding: .utf8).split(
        separator: "\n", omittingEmptySubsequences: false)
    try (text.prefix(7).joined(separator: "\n") + "\n" + text[7].prefix(20)).write(
        to: interrupted, atomically: true, encoding: .utf8)
    let (resumed, _) = try evalJSON(["--predictions", interrupted.path])
    #expect(resumed.resumed == 6)
    #expect(resumed.top1 == whole.top1 && resumed.top5 == whole.top5 && resumed.images == whole.images)
    #expect(try recordLines(interrupted) == lines)

    // Another run's file is refused before any work.
    let other = try run([
        "eval", "--arch", tinyEvalArch, "--weights", "synthetic", "--labels", evaluationFixture("labels.txt").path,
        "--input-size", "64", "--predictions", predictions.path, evaluationFixture("set").path,
    ])
    #expect(other.status == 1 && other.error.contains("another run"), "\(other.error)")

    // Two shards, merged.
    var shardFiles: [String] = []
    for index in 0..<2 {
        let file = temporary("shard\(index).jsonl")
        cleanup.append(file)
        shardFiles.append(file.path)
        let (part, _) = try evalJSON(["--shard", "\(index)/2", "--predictions", file.path])
        #expect(part.images + part.errors.count == 7)
    }
    let merged = try run(["eval", "merge", "--json"] + shardFiles)
    #expect(merged.status == 0, "\(merged.error)")
    let mergedSummary = try JSONDecoder().decode(EvalOutput.self, from: Data(merged.output.utf8))
    #expect(
        mergedSummary.top1 == whole.top1 && mergedSummary.top5 == whole.top5 && mergedSummary.images == whole.images)
    let missing = try run(["eval", "merge", shardFiles[0]])
    #expect(missing.status == 1 && missing.error.contains("missing"), "\(missing.error)")
    let twice = try run(["eval", "merge", shardFiles[0], shardFiles[0], shardFiles[1]])
    #expect(twice.status == 1 && twice.error.contains("twice"), "\(twice.error)")
}

@Test("bossnet eval --strict stops at the corrupt image, naming it")
func evalStrict() throws {
    // (Two sessions side by side are checked in EvaluationTests, with two factories of one device.)
    let strict = try run([
        "eval", "--arch", tinyEvalArch, "--weights", "synthetic", "--labels", evaluationFixture("labels.txt").path,
        "--input-size", "40", "--strict", evaluationFixture("set").path,
    ])
    #expect(strict.status == 1 && strict.error.contains("dog/broken.jpg"), "\(strict.error)")
}

/// Standard error of a running process, read as it comes.
private final class StreamedText: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ more: Data) { lock.withLock { data.append(more) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}

@Test("an interrupted eval says how many images its predictions file holds and how to resume; exit status 130")
func evalInterrupted() throws {
    let predictions = temporary("interrupted.jsonl")
    defer { try? FileManager.default.removeItem(at: predictions) }
    let process = Process()
    process.executableURL = try bossnet()
    // The CPU reference, one image a batch: slow enough (seconds an image in debug) to be interrupted mid-run.
    process.arguments = [
        "eval", "--model", "bossnet_T0", "--weights", "synthetic", "--input-size", "64", "--batch", "1", "--cpu",
        "--predictions", predictions.path, evaluationFixture("set").path,
    ]
    let error = Pipe(), stderr = StreamedText()
    process.standardError = error
    process.standardOutput = Pipe()
    error.fileHandleForReading.readabilityHandler = { stderr.append($0.availableData) }
    try process.run()
    // The first progress line comes once the first image is classified, with the interrupt handler in place.
    let deadline = Date().addingTimeInterval(300)
    while !stderr.text.contains("eval: ") && process.isRunning && Date() < deadline { usleep(100_000) }
    process.interrupt()
    process.waitUntilExit()
    error.fileHandleForReading.readabilityHandler = nil
    let text = stderr.text
    #expect(process.terminationStatus == 130, "\(text)")
    #expect(
        text.contains("of 14 images are in \(predictions.path); run the same command again to resume"), "\(text)")
    let lines = try String(contentsOf: predictions, encoding: .utf8).split(separator: "\n")
    #expect(lines.count >= 2 && lines.count < 15, "a header and the images done: \(lines.count) lines")
}
