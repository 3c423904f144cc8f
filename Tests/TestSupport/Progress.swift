import Foundation

/// Writes one line of a long test's progress to standard error, with the seconds since `start`, so that a `swift test`
/// run says what its heaviest tests are doing while they run (Swift Testing prints only when each test starts and
/// ends).
public func testProgress(_ text: String, since start: Date) {
    let seconds = String(format: "%.0f s", Date().timeIntervalSince(start))
    FileHandle.standardError.write(Data("  ... \(text) (\(seconds))\n".utf8))
}
