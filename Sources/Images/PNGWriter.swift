import CPNG
import Foundation

extension RGBImage {
    /// Writes the image as an 8-bit RGB PNG at `url`, atomically: a temporary file beside it, then a rename, so that
    /// a reader never sees half a picture and a failed write leaves any previous file whole.
    ///
    /// - Throws: ``PNGWriteError`` (with libpng's or the system's words) when the file cannot be written.
    public func writePNG(to url: URL) throws {
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).partial")
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_RGB)
        let written = pixels.withUnsafeBytes { bytes in
            png_image_write_to_file(&image, temporary.path, 0, bytes.baseAddress, Int32(width * 3), nil)
        }
        let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        png_image_free(&image)
        guard written != 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw PNGWriteError(path: url.path, reason: message)
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw PNGWriteError(path: url.path, reason: reason)
        }
    }
}

/// A PNG that could not be written: the file, and libpng's or the system's words.
public struct PNGWriteError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public var description: String { "cannot write \(path): \(reason)" }
}
