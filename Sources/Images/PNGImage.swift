import Foundation
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

/// An image that could not be read.
public struct ImageError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension RGBImage {
    /// The largest side accepted, so a hostile header cannot ask for gigabytes.
    public static let maximumSide: UInt32 = 32768
    /// The most pixels accepted (64 megapixels, 192 MiB of RGB).
    public static let maximumPixels: UInt64 = 1 << 26

    /// Decodes a PNG (8 or 16 bit; gray, gray+alpha, RGB, RGBA or palette; interlaced or not) to RGB the way PIL's
    /// `convert("RGB")` sees it: gray replicated, alpha dropped, 16-bit samples reduced to their high byte.
    public init(png data: Data) throws {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: UInt32 = 0, height: UInt32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { raw -> Int32 in
            bossnet_png_decode(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, Self.maximumSide, Self.maximumPixels, &pixels, &width, &height,
                               &message, message.count)
        }
        guard status == 0, let pixels else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw ImageError("cannot decode the PNG: \(text.isEmpty ? "unknown error" : text)")
        }
        defer { free(pixels) }
        let count = Int(width) * Int(height) * 3
        self.init(width: Int(width), height: Int(height), pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    /// Reads and decodes a PNG file.
    public init(pngFile url: URL) throws {
        guard let data = try? Data(contentsOf: url) else { throw ImageError("cannot read \(url.path)") }
        do { try self.init(png: data) } catch let error as ImageError {
            throw ImageError("\(url.lastPathComponent): \(error.description)")
        }
    }
}
