import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A small HTTP/1.1 server on 127.0.0.1 (a free port), for testing downloads without a network: each path answers
/// with a queue of behaviours, one per request, the last repeating. It understands `Range: bytes=N-`, and records
/// every request it gets.
public final class LoopbackHTTPServer: @unchecked Sendable {
    /// How the server answers one request.
    public enum Behaviour: Sendable {
        /// The file, honouring a `Range` request (206, or 416 past its end).
        case serve(Data)
        /// The file (or the range asked for), announced whole but cut off after `bytes` bytes of body.
        case interrupt(Data, afterBytes: Int)
        /// The file, ignoring any `Range` (200 and the whole file, as some servers do).
        case serveIgnoringRange(Data)
        /// A bare status with a short text body.
        case status(Int)
        /// A 302 to another path on this server.
        case redirect(to: String)
    }

    /// One request as it arrived.
    public struct Request: Sendable {
        public let path: String
        public let headers: [String: String]
        /// The `Range` header, when there was one.
        public var range: String? { headers["range"] }
    }

    /// The port it listens on.
    public let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var routes: [String: [Behaviour]]
    private var received: [Request] = []
    private var stopped = false

    /// Starts serving `routes` (path to behaviours, e.g. "/v0.1/file.pth").
    public init(routes: [String: [Behaviour]]) throws {
        self.routes = routes
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerError("socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw ServerError("bind/listen: \(String(cString: strerror(errno)))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        listener = fd
        Thread { [self] in serve() }.start()
    }

    /// `http://127.0.0.1:<port>/` followed by `path`.
    public func url(_ path: String = "") -> URL {
        URL(string: "http://127.0.0.1:\(port)/\(path)")!
    }

    /// The requests so far, in order.
    public var requests: [Request] { lock.withLock { received } }

    /// Replaces the behaviours of `path`.
    public func set(_ path: String, _ behaviours: [Behaviour]) {
        lock.withLock { routes[path] = behaviours }
    }

    /// Stops listening: wakes the serving thread, which closes the socket as it ends (closing it here could hand
    /// its number to another test's server while this thread still accepts on it). Call this when done: the thread
    /// holds the server until then.
    public func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private func serve() {
        defer { close(listener) }
        while !lock.withLock({ stopped }) {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else {
                if errno == EINTR { continue }
                return
            }
            handle(connection)
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var head = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while head.range(of: Data("\r\n\r\n".utf8)) == nil {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return }
            head.append(contentsOf: buffer[0..<count])
        }
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let requestLine = lines.first?.split(separator: " ") ?? []
        guard requestLine.count >= 2 else { return }
        let path = String(requestLine[1])
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        let request = Request(path: path, headers: headers)
        let behaviour: Behaviour? = lock.withLock {
            received.append(request)
            guard var queue = routes[path], let first = queue.first else { return nil }
            if queue.count > 1 { queue.removeFirst(); routes[path] = queue }
            return first
        }
        switch behaviour {
        case nil: respond(connection, status: 404, body: Data("not found".utf8))
        case let .status(code): respond(connection, status: code, body: Data("status \(code)".utf8))
        case let .redirect(target):
            respond(connection, status: 302, headers: ["Location": url(target).absoluteString], body: Data())
        case let .serveIgnoringRange(data): respond(connection, status: 200, body: data)
        case let .serve(data): serve(data, range: request.range, on: connection, cutAfter: nil)
        case let .interrupt(data, cut): serve(data, range: request.range, on: connection, cutAfter: cut)
        }
    }

    private func serve(_ data: Data, range: String?, on connection: Int32, cutAfter: Int?) {
        guard let range, range.hasPrefix("bytes="),
            let start = Int(range.dropFirst("bytes=".count).prefix { $0 != "-" })
        else {
            respond(connection, status: 200, body: data, announced: data.count, cutAfter: cutAfter)
            return
        }
        guard start < data.count else {
            respond(connection, status: 416, headers: ["Content-Range": "bytes */\(data.count)"], body: Data())
            return
        }
        let body = data.subdata(in: start..<data.count)
        respond(
            connection, status: 206, headers: ["Content-Range": "bytes \(start)-\(data.count - 1)/\(data.count)"],
            body: body, announced: body.count, cutAfter: cutAfter)
    }

    private func respond(
        _ connection: Int32, status: Int, headers: [String: String] = [:], body: Data,
        announced: Int? = nil, cutAfter: Int? = nil
    ) {
        var text = "HTTP/1.1 \(status) Status\r\nContent-Length: \(announced ?? body.count)\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        var bytes = Data(text.utf8)
        bytes.append(cutAfter.map { body.prefix($0) } ?? body)
        bytes.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                #if canImport(Glibc)
                    let count = send(connection, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                #else
                    let count = send(connection, raw.baseAddress! + sent, raw.count - sent, 0)
                #endif
                guard count > 0 else { return }
                sent += count
            }
        }
    }
}

/// A server that could not start.
public struct ServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
