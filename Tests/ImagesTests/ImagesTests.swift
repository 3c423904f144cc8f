import Foundation
import Images
import Testing

func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        .appendingPathComponent(name)
}

struct ExpectedImage: Decodable {
    let width: Int
    let height: Int
    let rgb: [UInt8]
}

@Test(
    "PNGs decode to the RGB PIL gives: RGB, palette, interlaced, RGBA, 16-bit gray",
    arguments: ["gradient.png", "palette.png", "interlaced.png", "rgba.png", "gray16.png"])
func decodesPNG(name: String) throws {
    let expected = try JSONDecoder().decode(
        [String: ExpectedImage].self, from: Data(contentsOf: fixture("png_expected.json")))
    let image = try RGBImage(contentsOf: fixture(name))
    let want = try #require(expected[name])
    #expect(image.width == want.width && image.height == want.height)
    #expect(image.pixels == want.rgb)
}

@Test("the evaluation preprocessing reproduces PIL's bicubic resize, center crop and normalisation")
func preprocessingMatchesPIL() throws {
    let image = try RGBImage(contentsOf: fixture("gradient.png"))
    let tensor = try Preprocess.evaluationTensor(image, inputSize: 64)
    let expected = try NumPyArray(contentsOf: fixture("gradient_64.npy"))
    #expect(expected.shape == [3, 64, 64])
    let worst = zip(tensor, expected.values).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst < 1e-5, "largest difference \(worst)")
}

@Test("PIL's resize weights: each output's weights sum to one, and enlarging keeps a 4-tap kernel")
func resizeCoefficients() {
    let image = RGBImage(width: 2, height: 1, pixels: [0, 0, 0, 255, 255, 255])
    #expect(Preprocess.resize(image, width: 2, height: 1) == image)
    #expect(Preprocess.resizeTarget(inputSize: 224) == 256)
    #expect(Preprocess.resizeTarget(inputSize: 288) == 329)
}

@Test("truncated and corrupted PNGs are errors, never crashes")
func corruptPNG() throws {
    let original = try Data(contentsOf: fixture("gradient.png"))
    for length in 0..<original.count {
        #expect(throws: ImageError.self, "truncated to \(length)") { try RGBImage(png: original.prefix(length)) }
    }
    for position in 8..<original.count {
        var bytes = [UInt8](original)
        bytes[position] ^= 0xFF
        // A flipped byte breaks a chunk's CRC, length or type: libpng must refuse it without crashing.
        _ = try? RGBImage(png: Data(bytes))
    }
    #expect(throws: ImageError.self) { try RGBImage(png: Data("GIF89a".utf8)) }
}

@Test("at 32 px and below the evaluation transform neither resizes nor crops (the authors' build_transform)")
func unresizedAtSmallSizes() throws {
    let image = RGBImage(width: 32, height: 32, pixels: (0..<(32 * 32 * 3)).map { UInt8(($0 * 5) % 256) })
    let tensor = try Preprocess.evaluationTensor(image, inputSize: 32)
    // Channel 1 of pixel (x 3, y 2): ToTensor then Normalize, nothing else.
    let value = Float(image.pixels[(2 * 32 + 3) * 3 + 1]) / 255
    #expect(tensor[(1 * 32 + 2) * 32 + 3] == (value - Preprocess.mean[1]) / Preprocess.std[1])
    // Above 32 the same image is resized (to 36) and center-cropped: different values.
    #expect(try Preprocess.evaluationTensor(image, inputSize: 33) != tensor.prefix(3 * 33 * 33).map { $0 })
    let large = RGBImage(width: 40, height: 32, pixels: [UInt8](repeating: 9, count: 40 * 32 * 3))
    #expect(throws: PreprocessError.self) { try Preprocess.evaluationTensor(large, inputSize: 32) }
}

@Test("only the cropped window is resized: a 1-pixel-wide strip costs no more than a square image")
func thinImage() throws {
    // Resized naively, 1 x 3000 would become 256 x 768000 pixels; the window is 64 x 64.
    let strip = RGBImage(width: 1, height: 3000, pixels: (0..<9000).map { UInt8($0 % 251) })
    let tensor = try Preprocess.evaluationTensor(strip, inputSize: 64)
    #expect(tensor.count == 3 * 64 * 64)
    #expect(tensor.allSatisfy { $0.isFinite })
    // The window equals the same window cut from the full resize.
    let image = RGBImage(width: 37, height: 23, pixels: (0..<(37 * 23 * 3)).map { UInt8(($0 * 7) % 256) })
    let full = Preprocess.resize(image, width: 90, height: 56)
    let window = Preprocess.resize(image, width: 90, height: 56, columns: 13..<77, rows: 5..<50)
    for y in 0..<45 {
        for x in 0..<64 {
            for c in 0..<3 {
                #expect(window.pixels[(y * 64 + x) * 3 + c] == full.pixels[((y + 5) * 90 + x + 13) * 3 + c])
            }
        }
    }
}

@Test(".npy round-trips, and bad ones are errors")
func numpyFiles() throws {
    let array = NumPyArray(shape: [2, 3], values: [1, 2, 3, 4, 5, -6.5])
    #expect(try NumPyArray(data: array.data) == array)
    #expect(try NumPyArray(data: NumPyArray(shape: [4], values: [1, 2, 3, 4]).data).shape == [4])
    let data = array.data
    for length in [0, 5, 9, 20, data.count - 1] {
        #expect(throws: ImageError.self) { try NumPyArray(data: data.prefix(length)) }
    }
    var double = [UInt8](data)
    if let range = String(decoding: double, as: UTF8.self).range(of: "<f4") {
        let offset = String(decoding: double, as: UTF8.self).utf8.distance(
            from: String(decoding: double, as: UTF8.self).startIndex, to: range.lowerBound)
        double[offset + 2] = UInt8(ascii: "8")
    }
    #expect(throws: ImageError.self) { try NumPyArray(data: Data(double)) }
    let fortran = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "False", with: "True ")
    #expect(throws: ImageError.self) { try NumPyArray(data: Data(fortran.utf8)) }
    let huge = String(decoding: data, as: UTF8.self).replacingOccurrences(
        of: "(2, 3)", with: "(4294967296, 4294967296)")
    #expect(throws: ImageError.self) { try NumPyArray(data: Data(huge.utf8)) }
}

/// jpeg_expected.json: PIL's pixels for each JPEG fixture, and the versions of PIL and its libjpeg that made them.
struct ExpectedJPEGs: Decodable {
    let pil: String
    let images: [String: ExpectedImage]

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode([String: JSONValue].self)
        pil = raw["pil"]?.string ?? "?"
        images = try raw.compactMapValues { value in try value.image() }
    }
}

enum JSONValue: Decodable {
    case string(String), object(ExpectedImage)
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .string(text)
        } else {
            self = .object(try container.decode(ExpectedImage.self))
        }
    }
    var string: String? { if case let .string(text) = self { text } else { nil } }
    func image() throws -> ExpectedImage? { if case let .object(image) = self { image } else { nil } }
}

@Test(
    "JPEGs decode to the RGB PIL gives, byte for byte: 4:2:0, 4:2:2, 4:4:4, progressive, odd size, gray, CMYK",
    arguments: [
        "baseline_420.jpg", "baseline_422.jpg", "baseline_444.jpg", "progressive.jpg", "odd_17x9.jpg", "gray.jpg",
        "cmyk.jpg",
    ])
func decodesJPEG(name: String) throws {
    let expected = try JSONDecoder().decode(ExpectedJPEGs.self, from: Data(contentsOf: fixture("jpeg_expected.json")))
    let image = try RGBImage(contentsOf: fixture(name))
    let want = try #require(expected.images[name])
    #expect(image.width == want.width && image.height == want.height)
    // Equal to PIL's bytes (PIL \(expected.pil) with its own libjpeg-turbo build; this one is Debian's 2.1).
    let differences = zip(image.pixels, want.rgb).filter { $0 != $1 }.count
    #expect(differences == 0, "\(name): \(differences) of \(want.rgb.count) bytes differ from PIL \(expected.pil)")
}

@Test("a file's format comes from its first bytes, not its name; JPEG errors are errors, never crashes")
func jpegSignatureAndErrors() throws {
    // A JPEG under a .png name, and a PNG under a .jpg name, decode.
    let renamed = FileManager.default.temporaryDirectory.appendingPathComponent("bossnet-\(UUID().uuidString).png")
    try FileManager.default.copyItem(at: fixture("gray.jpg"), to: renamed)
    defer { try? FileManager.default.removeItem(at: renamed) }
    #expect(try RGBImage(contentsOf: renamed) == RGBImage(contentsOf: fixture("gray.jpg")))
    #expect(ImageFormat(contentsOf: renamed) == .jpeg && ImageFormat(contentsOf: fixture("gradient.png")) == .png)
    #expect(throws: ImageError.self) { try RGBImage(contentsOf: fixture("truncated.jpg")) }
    do {
        _ = try RGBImage(contentsOf: fixture("truncated.jpg"))
    } catch let error as ImageError {
        #expect(error.description.contains("truncated"), "\(error)")
        #expect(error.kind == .undecodable && error.path == fixture("truncated.jpg").path)
    }
    // Each failure says what went wrong and about which file.
    func kind(_ read: () throws -> Any) -> (ImageError.Kind, String?)? {
        do { _ = try read() } catch let error as ImageError { return (error.kind, error.path) } catch { return nil }
        return nil
    }
    let json = fixture("png_expected.json"), missing = fixture("no such file.jpg")
    #expect(kind { try RGBImage(contentsOf: json) } ?? (.missing, nil) == (.notAnImage, json.path))
    #expect(kind { try RGBImage(contentsOf: missing) } ?? (.undecodable, nil) == (.missing, missing.path))
    #expect(
        kind { try RGBImage(contentsOf: fixture("float64.npy")) } ?? (.missing, nil) == (
            .notAnImage, fixture("float64.npy").path
        ))
    #expect(kind { try NumPyArray(contentsOf: json) } ?? (.missing, nil) == (.badArray, json.path))
    // Every prefix and many single-byte corruptions of a JPEG: an error or an image, never a crash.
    let original = try Data(contentsOf: fixture("progressive.jpg"))
    for length in stride(from: 0, to: original.count, by: 7) {
        #expect(throws: ImageError.self, "truncated to \(length)") { try RGBImage(jpeg: original.prefix(length)) }
    }
    for position in stride(from: 2, to: original.count, by: 5) {
        var bytes = [UInt8](original)
        bytes[position] ^= 0x5A
        _ = try? RGBImage(jpeg: Data(bytes))
    }
}

@Test(
    ".npy in float64, float16, big-endian or Fortran order is converted as NumPy's astype(float32) in C order",
    arguments: ["float64", "float16", "big_endian_f4", "fortran_f4", "big_endian_fortran_f8"])
func npyConversions(name: String) throws {
    let array = try NumPyArray(contentsOf: fixture("\(name).npy"))
    let expected = try NumPyArray(contentsOf: fixture("\(name).expected.npy"))
    #expect(array.shape == expected.shape)
    #expect(array.values.map(\.bitPattern) == expected.values.map(\.bitPattern), "\(name)")
}

@Test("NaN in an array is found and named by its position")
func npyNonFinite() throws {
    let nan = try NumPyArray(contentsOf: fixture("nan.npy"))
    let bad = try #require(nan.firstNonFinite)
    #expect(bad.index == [1, 2] && bad.value.isNaN)
    #expect(try NumPyArray(contentsOf: fixture("float64.npy")).firstNonFinite == nil)
}
