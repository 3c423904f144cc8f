import Foundation
import JPEGDecoder
import PNGDecoder

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGB image: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// An image or array file that could not be read: what went wrong (``Kind``), the file when there is one, and the
/// decoder's own words.
public struct ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong.
    public enum Kind: String, Sendable, Equatable {
        /// No file at the path.
        case missing
        /// The file exists but cannot be read.
        case unreadable
        /// Neither a PNG nor a JPEG (a NumPy array, or unknown bytes).
        case notAnImage
        /// A PNG or JPEG its decoder refuses: damaged, truncated, or past the size limits.
        case undecodable
        /// A NumPy `.npy` that is malformed or holds an unsupported element type.
        case badArray
    }

    public let kind: Kind
    /// The file, when the error is about one.
    public let path: String?
    /// The decoder's or parser's own words.
    public let detail: String

    public init(_ kind: Kind, _ detail: String, path: String? = nil) {
        self.kind = kind
        self.detail = detail
        self.path = path
    }

    /// The same error, about the file at `path`.
    public func about(_ path: String) -> ImageError { ImageError(kind, detail, path: path) }

    public var description: String {
        switch (kind, path) {
        case (.missing, let path?): "\(path) does not exist"
        case (.unreadable, let path?): "cannot read \(path)"
        case (_, let path?): "\(path): \(detail)"
        case (_, nil): detail
        }
    }

    /// What went wrong, without the path (for reports that show the path beside it).
    public var reason: String {
        switch kind {
        case .missing: "does not exist"
        case .unreadable: "cannot be read"
        default: detail
        }
    }
}

extension RGBImage {
    /// The largest side accepted, so a hostile header cannot ask for gigabytes.
    public static let maximumSide: UInt32 = 32768
    /// The most pixels accepted (64 megapixels, 192 MiB of RGB).
    public static let maximumPixels: UInt64 = 1 << 26

    /// Decodes a PNG (8 or 16 bit; gray, gray+alpha, RGB, RGBA or palette; interlaced or not) to RGB the way PIL's
    /// `convert("RGB")` sees it: gray replicated, alpha dropped, 16-bit samples reduced to their high byte.
    public init(png data: Data) throws {
        try self.init(data, decoder: bossnet_png_decode, kind: "PNG")
    }

    /// The signature both C decoders share: data, size, limits, then the pixels, width and height out, and an error
    /// message buffer.
    private typealias Decoder = (
        UnsafePointer<UInt8>?, Int, UInt32, UInt64, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?,
        UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<CChar>?, Int
    ) -> Int32

    private init(_ data: Data, decoder: Decoder, kind: String) throws {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: UInt32 = 0, height: UInt32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { raw -> Int32 in
            decoder(
                raw.bindMemory(to: UInt8.self).baseAddress, raw.count, Self.maximumSide, Self.maximumPixels, &pixels,
                &width, &height,
                &message, message.count)
        }
        guard status == 0, let pixels else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageError(.undecodable, "cannot decode the \(kind): \(text.isEmpty ? "unknown error" : text)")
        }
        defer { free(pixels) }
        let count = Int(width) * Int(height) * 3
        self.init(
            width: Int(width), height: Int(height), pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    /// Decodes a JPEG (baseline or progressive; gray, YCbCr, RGB, CMYK or YCCK; any chroma subsampling) to RGB as
    /// PIL's `Image.open(f).convert("RGB")` does: libjpeg-turbo with its defaults (accurate integer IDCT, fancy
    /// upsampling), gray replicated, CMYK and YCCK read with Adobe's polarity and converted by PIL's formula.
    public init(jpeg data: Data) throws {
        try self.init(data, decoder: bossnet_jpeg_decode, kind: "JPEG")
    }

    /// Decodes a PNG or a JPEG, told apart by the first bytes (never by a file name).
    public init(encoded data: Data) throws {
        switch ImageFormat(signature: data) {
        case .png: try self.init(png: data)
        case .jpeg: try self.init(jpeg: data)
        case .npy: throw ImageError(.notAnImage, "this is a NumPy array (.npy), not an image")
        case nil: throw ImageError(.notAnImage, "not a PNG or JPEG image (unrecognised first bytes)")
        }
    }

    /// Reads and decodes a PNG or JPEG file, whatever its name.
    public init(contentsOf url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ImageError(.missing, "no such file", path: url.path)
        }
        guard let data = try? Data(contentsOf: url) else {
            throw ImageError(.unreadable, "cannot read", path: url.path)
        }
        do { try self.init(encoded: data) } catch let error as ImageError { throw error.about(url.path) }
    }
}

/// The kinds of input file the tools read, told apart by their first bytes.
public enum ImageFormat: String, Sendable {
    case png, jpeg, npy

    /// The format whose signature `data` starts with, or nil.
    public init?(signature data: Data) {
        let head = [UInt8](data.prefix(8))
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else if head.starts(with: [0xFF, 0xD8, 0xFF]) {
            self = .jpeg
        } else if head.starts(with: NumPyArray.magic) {
            self = .npy
        } else {
            return nil
        }
    }

    /// The format of the file at `url` by its first bytes, or nil (also when it cannot be read).
    public init?(contentsOf url: URL) {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 8) else { return nil }
        self.init(signature: head)
    }
}
