import Foundation

/// A NumPy `.npy` array of float32: little-endian (`<f4`), C order.
public struct NumPyArray: Sendable, Equatable {
    public let shape: [Int]
    public let values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "npy: \(values.count) values for shape \(shape)")
        self.shape = shape
        self.values = values
    }

    /// Reads a version 1, 2 or 3 `.npy` file holding little-endian float32 in C order.
    public init(contentsOf url: URL) throws {
        guard let data = try? Data(contentsOf: url) else { throw ImageError("cannot read \(url.path)") }
        do { try self.init(data: data) } catch let error as ImageError {
            throw ImageError("\(url.lastPathComponent): \(error.description)")
        }
    }

    public init(data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else {
            throw ImageError("not a NumPy .npy file (bad magic)")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw ImageError("truncated .npy header") }
            headerLength = bytes[8..<12].reversed().reduce(0) { $0 << 8 | Int($1) }
            headerStart = 12
        default:
            throw ImageError(".npy version \(major) is not supported")
        }
        guard headerLength <= bytes.count - headerStart else { throw ImageError("truncated .npy header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard let descr = Self.field("descr", in: header), let order = Self.field("fortran_order", in: header),
              let shapeText = Self.field("shape", in: header) else {
            throw ImageError("the .npy header lacks descr, fortran_order or shape: \(header)")
        }
        guard descr == "'<f4'" || descr == "'float32'" else {
            throw ImageError("the array's dtype is \(descr); only little-endian float32 ('<f4') is supported")
        }
        guard order == "False" else { throw ImageError("the array is in Fortran order; save it in C order") }
        let shape = try shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() ")).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { text -> Int in
                guard let value = Int(text), value >= 0 else { throw ImageError("bad .npy shape \(shapeText)") }
                return value
            }
        let dataStart = headerStart + headerLength
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= bytes.count else { throw ImageError("the .npy shape \(shape) is larger than the file") }
            count = product
        }
        guard count <= (bytes.count - dataStart) / 4 else {
            throw ImageError("the file holds \((bytes.count - dataStart) / 4) values; its shape \(shape) needs \(count) (truncated?)")
        }
        let values = bytes.withUnsafeBytes { raw in
            (0..<count).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: dataStart + 4 * $0, as: UInt32.self).littleEndian) }
        }
        self.init(shape: shape, values: values)
    }

    /// The value of `key` in the header's Python dict literal (a string, a bool or a tuple, as text).
    static func field(_ key: String, in header: String) -> String? {
        guard let keyRange = header.range(of: "'\(key)':") else { return nil }
        let rest = header[keyRange.upperBound...].drop { $0 == " " }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        let end = rest.firstIndex { $0 == "," || $0 == "}" } ?? rest.endIndex
        return String(rest[..<end]).trimmingCharacters(in: .whitespaces)
    }

    /// The `.npy` bytes (version 1.0).
    public var data: Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad with spaces so the data starts on a 64-byte boundary; the header ends with a newline.
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }

    public func write(to url: URL) throws { try data.write(to: url, options: .atomic) }
}
