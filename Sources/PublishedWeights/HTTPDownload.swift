import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// How far a download has come.
public struct DownloadProgress: Sendable {
    /// Bytes in the file so far (those of an earlier, interrupted attempt included).
    public let received: Int64
    /// The file's size, when the server says it.
    public let total: Int64?
    /// Bytes per second in this attempt.
    public let bytesPerSecond: Double
}

/// One HTTP GET streamed into a file, resumed with a `Range` request when the file already holds the start of it.
/// Redirects are followed (GitHub serves release assets from another host).
final class HTTPDownload: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    /// How one attempt ended.
    enum Outcome: Equatable {
        /// The whole file is there: `size` bytes.
        case complete(size: Int64)
        /// The transfer stopped early; the file keeps what arrived.
        case interrupted(received: Int64, expected: Int64?)
    }

    /// Why an attempt failed outright.
    enum Failure: Error {
        case status(Int)
        case unreachable(String)
        case file(String)
    }

    private let url: URL
    private let destination: URL
    private let progress: @Sendable (DownloadProgress) -> Void
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var handle: FileHandle?
    private var received: Int64 = 0
    private var receivedThisAttempt: Int64 = 0
    private var expected: Int64?
    private var failure: Failure?
    private var transportError: String?
    /// The partial file does not fit what the server has (it changed, or a mirror serves another): start over.
    private var restart = false
    private var started = Date()
    private var lastReport = Date.distantPast

    private init(url: URL, destination: URL, progress: @escaping @Sendable (DownloadProgress) -> Void) {
        self.url = url
        self.destination = destination
        self.progress = progress
    }

    /// Downloads `url` into `destination`, appending to what it already holds (a `Range` request; a server that
    /// ignores the range gets the file rewritten from the start). Blocks until the attempt ends.
    static func attempt(
        _ url: URL, into destination: URL, timeout: TimeInterval,
        progress: @escaping @Sendable (DownloadProgress) -> Void
    ) throws(Failure) -> Outcome {
        let task = HTTPDownload(url: url, destination: destination, progress: progress)
        return try task.run(timeout: timeout)
    }

    private func run(timeout: TimeInterval) throws(Failure) -> Outcome {
        let manager = FileManager.default
        if !manager.fileExists(atPath: destination.path) {
            guard manager.createFile(atPath: destination.path, contents: nil) else {
                throw .file("cannot create \(destination.path)")
            }
        }
        guard let handle = try? FileHandle(forUpdating: destination), let end = try? handle.seekToEnd() else {
            throw .file("cannot open \(destination.path) for writing")
        }
        self.handle = handle
        defer { try? handle.close() }
        received = Int64(end)

        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        if received > 0 { request.setValue("bytes=\(received)-", forHTTPHeaderField: "Range") }
        request.setValue("bossnet", forHTTPHeaderField: "User-Agent")
        let session = URLSession(configuration: .ephemeral, delegate: self, delegateQueue: nil)
        started = Date()
        session.dataTask(with: request).resume()
        done.wait()
        session.finishTasksAndInvalidate()

        let result: Result<Outcome, Failure> = lock.withLock {
            if let failure { return .failure(failure) }
            if restart { return .success(.interrupted(received: 0, expected: nil)) }
            if let expected, received >= expected { return .success(.complete(size: received)) }
            if expected == nil && transportError == nil { return .success(.complete(size: received)) }
            if receivedThisAttempt == 0, let transportError { return .failure(.unreachable(transportError)) }
            return .success(.interrupted(received: received, expected: expected))
        }
        return try result.get()
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        let disposition: URLSession.ResponseDisposition = lock.withLock {
            guard let http = response as? HTTPURLResponse else {
                failure = .unreachable("the answer is not HTTP")
                return .cancel
            }
            let length = response.expectedContentLength >= 0 ? response.expectedContentLength : nil
            switch http.statusCode {
            case 200:
                // The whole file from its start (a server that ignores ranges answers so too).
                if received > 0 && !emptyFile() { return .cancel }
                expected = length
                return .allow
            case 206:
                let range = Self.contentRange(http.value(forHTTPHeaderField: "Content-Range"))
                guard range?.start == received else { return startOver() }
                expected = range?.total ?? length.map { received + $0 }
                return .allow
            case 416 where received > 0:
                // Nothing past what the file holds: complete when the server's size is the file's.
                if let total = Self.contentRange(http.value(forHTTPHeaderField: "Content-Range"))?.total,
                    total == received
                {
                    expected = total
                    return .cancel
                }
                return startOver()
            default:
                failure = .status(http.statusCode)
                return .cancel
            }
        }
        completionHandler(disposition)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let report: DownloadProgress? = lock.withLock {
            guard failure == nil, let handle else { return nil }
            do { try handle.write(contentsOf: data) } catch {
                failure = .file(WeightsCache.describe(error))
                return nil
            }
            received += Int64(data.count)
            receivedThisAttempt += Int64(data.count)
            let now = Date()
            guard now.timeIntervalSince(lastReport) >= 0.2 || received == expected else { return nil }
            lastReport = now
            let seconds = now.timeIntervalSince(started)
            return DownloadProgress(
                received: received, total: expected,
                bytesPerSecond: seconds > 0 ? Double(receivedThisAttempt) / seconds : 0)
        }
        if let report { progress(report) } else if lock.withLock({ failure != nil }) { dataTask.cancel() }
    }

    /// Empties the partial file and ends this attempt so that the next one asks for the whole file (under the lock).
    private func startOver() -> URLSession.ResponseDisposition {
        restart = emptyFile()
        return .cancel
    }

    /// Truncates the partial file to nothing (under the lock); false, with the failure recorded, when it cannot be.
    private func emptyFile() -> Bool {
        do { try handle?.truncate(atOffset: 0) } catch {
            failure = .file(WeightsCache.describe(error))
            return false
        }
        received = 0
        return true
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        lock.withLock {
            if let error, failure == nil, (error as? URLError)?.code != .cancelled {
                transportError = (error as? URLError).map(Self.describe) ?? error.localizedDescription
            }
        }
        done.signal()
    }

    /// `bytes START-END/TOTAL` (or `bytes */TOTAL`) as numbers.
    static func contentRange(_ text: String?) -> (start: Int64?, total: Int64?)? {
        guard let text, text.hasPrefix("bytes ") else { return nil }
        let parts = text.dropFirst("bytes ".count).split(separator: "/", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        let start = parts[0] == "*" ? nil : parts[0].split(separator: "-").first.flatMap { Int64($0) }
        return (start, Int64(parts[1]))
    }

    /// A transport error in words.
    static func describe(_ error: URLError) -> String {
        switch error.code {
        case .notConnectedToInternet: "no network connection"
        case .cannotFindHost, .dnsLookupFailed: "the host name does not resolve (offline?)"
        case .cannotConnectToHost: "the connection was refused"
        case .timedOut: "the server did not answer in time"
        case .networkConnectionLost: "the connection was lost"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate:
            "the secure connection failed (\(error.localizedDescription))"
        default: error.localizedDescription
        }
    }
}
