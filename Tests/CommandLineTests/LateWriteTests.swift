// A write that fails after the work is done loses nothing: the results go to the temporary folder instead.
import Foundation
import Images
import Testing

@testable import bossnet

@Test("logits whose output fails once the work is done are written to the temporary folder instead")
func lateWriteKeepsResults() throws {
    let logits = NumPyArray(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
    // A folder that disappeared during the run: the check before the work passed, the write fails.
    let gone = temporary("gone").appendingPathComponent("logits.npy").path
    #expect(!saveKeepingResults(logits, to: gone))
    let fallback = FileManager.default.temporaryDirectory.appendingPathComponent("bossnet-\(getpid())-logits.npy")
    defer { try? FileManager.default.removeItem(at: fallback) }
    #expect(try NumPyArray(contentsOf: fallback) == logits)
    #expect(!FileManager.default.fileExists(atPath: gone))

    let kept = temporary("kept.npy")
    defer { try? FileManager.default.removeItem(at: kept) }
    #expect(saveKeepingResults(logits, to: kept.path))
    #expect(try NumPyArray(contentsOf: kept) == logits)
}
