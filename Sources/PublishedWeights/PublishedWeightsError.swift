import Foundation

/// Why the published weights of a model could not be had. Each case carries the addresses and paths a user needs to
/// act: where the file comes from and where the cache expects it, so that it can be downloaded by other means and
/// placed there by hand.
public enum PublishedWeightsError: Error, CustomStringConvertible, Equatable {
    /// The model has no published checkpoint (an `--arch` architecture, say).
    case notPublished(model: String, published: [String])
    /// The server could not be reached (offline, a name that does not resolve, a refused connection, a timeout).
    case unreachable(url: URL, cachePath: URL, reason: String)
    /// The server answered with an HTTP error status.
    case httpStatus(url: URL, status: Int, cachePath: URL)
    /// The transfer stopped early every time it was tried; what arrived is kept in `partialPath` and the next attempt
    /// resumes from there.
    case interrupted(url: URL, received: Int64, expected: Int64?, partialPath: URL)
    /// The downloaded file is not the model's checkpoint (not a torch.save archive, or one that does not bind to the
    /// model); it was deleted.
    case verificationFailed(url: URL, model: String, reason: String)
    /// The file in the cache does not load or does not bind to the model.
    case cachedFileInvalid(path: URL, model: String, reason: String)
    /// The cache folder or a file in it cannot be written.
    case cacheUnwritable(path: URL, reason: String)

    public var description: String {
        switch self {
        case let .notPublished(model, published):
            "\(model) has no published checkpoint (the authors publish \(published.joined(separator: ", "))); give its weights as a file."
        case let .unreachable(url, cachePath, reason):
            "cannot download \(url.absoluteString): \(reason). Download it by other means and place it at \(cachePath.path); "
                + "a file there is used without downloading."
        case let .httpStatus(url, status, cachePath):
            "cannot download \(url.absoluteString): the server answered HTTP \(status) "
                + "(\(HTTPURLResponseStatus.text(status))). Download it by other means and place it at \(cachePath.path)."
        case let .interrupted(url, received, expected, partialPath):
            "the download of \(url.absoluteString) stopped after \(received)"
                + (expected.map { " of \($0)" } ?? "") + " bytes, several times over. What arrived is kept in "
                + "\(partialPath.path); run again to resume from there."
        case let .verificationFailed(url, model, reason):
            "\(url.absoluteString) is not a checkpoint of \(model): \(reason). The download was deleted; check the source "
                + "(a mirror serving another file?)."
        case let .cachedFileInvalid(path, model, reason):
            "\(path.path) is not a checkpoint of \(model): \(reason). Delete it (or put the right file there) and run again."
        case let .cacheUnwritable(path, reason):
            "cannot write the weights cache at \(path.path): \(reason). Choose another folder for the cache."
        }
    }
}

/// Short texts for the HTTP statuses a download meets.
enum HTTPURLResponseStatus {
    static func text(_ status: Int) -> String {
        switch status {
        case 401, 403: "access refused"
        case 404: "no such file"
        case 408, 504: "timed out"
        case 429: "too many requests; wait and try again"
        case 500..<600: "a server error; try again later"
        default: "unexpected"
        }
    }
}
