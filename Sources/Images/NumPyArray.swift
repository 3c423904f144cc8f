import Foundation

/// A NumPy `.npy` array, held as float32 in C order. Files of float16, float32 or float64, in either byte order and
/// in C or Fortran order, are converted as NumPy's `astype(np.float32)` and `ascontiguousarray` would; files are
/// written as little-endian float32 (`<f4`) in C order.
public struct NumPyArray: Sendable, Equatable {
    public let shape: [Int]
    public let values: [Float]

    /// The first bytes of every `.npy` file: 0x93 then "NUMPY".
    public static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]

    public init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "npy: \(values.count) values for shape \(shape)")
        self.shape = shape
        self.values = values
    }

    /// Reads a version 1, 2 or 3 `.npy` file of float16, float32 or float64.
    public init(contentsOf url: URL) throws {
        guard let data = try? Data(contentsOf: url) else {
            throw ImageError(.unreadable, "cannot read", path: url.path)
        }
        do { try self.init(data: data) } catch let error as ImageError { throw error.about(url.path) }
    }

    public init(data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes.starts(with: Self.magic) else {
            throw ImageError(.badArray, "not a NumPy .npy file (bad magic)")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw ImageError(.badArray, "truncated .npy header") }
            headerLength = bytes[8..<12].reversed().reduce(0) { $0 << 8 | Int($1) }
            headerStart = 12
        default:
            throw ImageError(.badArray, ".npy version \(major) is not supported")
        }
        guard headerLength <= bytes.count - headerStart else { throw ImageError(.badArray, "truncated .npy header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard let descr = Self.field("descr", in: header), let order = Self.field("fortran_order", in: header),
            let shapeText = Self.field("shape", in: header)
        else {
            throw ImageError(.badArray, "the .npy header lacks descr, fortran_order or shape: \(header)")
        }
        guard let type = ElementType(descr: descr) else {
            throw ImageError(
                .badArray,
                "the array's dtype is \(descr); float16, float32, float64 and int64 (either byte order) are supported")
        }
        guard order == "False" || order == "True" else {
            throw ImageError(.badArray, "bad fortran_order \(order) in the .npy header")
        }
        let shape = try shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() ")).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { text -> Int in
                guard let value = Int(text), value >= 0 else {
                    throw ImageError(.badArray, "bad .npy shape \(shapeText)")
                }
                return value
            }
        let dataStart = headerStart + headerLength
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= bytes.count else {
                throw ImageError(.badArray, "the .npy shape \(shape) is larger than the file")
            }
            count = product
        }
        guard count <= (bytes.count - dataStart) / type.size else {
            throw ImageError(
                .badArray,
                "the file holds \((bytes.count - dataStart) / type.size) values; its shape \(shape) needs \(count) (truncated?)"
            )
        }
        // As NumPy's astype(float32): float64 rounds to nearest, float16 widens exactly.
        var values = bytes.withUnsafeBytes { raw in (0..<count).map { type.load(raw, at: dataStart + type.size * $0) } }
        if order == "True" { values = Self.cOrder(fortran: values, shape: shape) }
        self.init(shape: shape, values: values)
    }

    /// An element type NumPy writes: float16, float32 or float64 in either byte order.
    struct ElementType {
        let size: Int
        let bigEndian: Bool
        /// int64 (class-index labels), read as the nearest float32 (exact up to 2^24).
        var integer = false

        init?(descr: String) {
            let text = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
            switch text {
            case "float16": (size, bigEndian) = (2, false)
            case "float32": (size, bigEndian) = (4, false)
            case "float64": (size, bigEndian) = (8, false)
            case "int64", "<i8", "=i8": (size, bigEndian, integer) = (8, false, true)
            case ">i8": (size, bigEndian, integer) = (8, true, true)
            default:
                guard text.count == 3, let order = text.first, "<>=|".contains(order), text.dropFirst().first == "f",
                    let width = Int(text.suffix(1)), [2, 4, 8].contains(width)
                else { return nil }
                (size, bigEndian) = (width, order == ">")
            }
        }

        func load(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Float {
            if integer {
                let bits = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                return Float(Int64(bitPattern: bigEndian ? bits.byteSwapped : bits))
            }
            switch size {
            case 2:
                let bits = raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
                return Self.float(half: bigEndian ? bits.byteSwapped : bits)
            case 4:
                let bits = raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                return Float(bitPattern: bigEndian ? bits.byteSwapped : bits)
            default:
                let bits = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                return Float(Double(bitPattern: bigEndian ? bits.byteSwapped : bits))
            }
        }

        /// IEEE half to single precision, exactly (subnormals, infinities and NaN included).
        static func float(half bits: UInt16) -> Float {
            let sign = UInt32(bits & 0x8000) << 16
            let exponent = Int(bits >> 10) & 0x1F
            let mantissa = UInt32(bits & 0x3FF)
            if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
            if exponent == 0 {
                let magnitude = Float(mantissa) * 0x1p-24  // subnormal: mantissa * 2^-24, exact in float
                return sign != 0 ? -magnitude : magnitude
            }
            return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }

    /// Fortran-order values of `shape` in C order (the first index varies fastest in Fortran order).
    static func cOrder(fortran values: [Float], shape: [Int]) -> [Float] {
        guard shape.count > 1 else { return values }
        var result = [Float](repeating: 0, count: values.count)
        var fortranStrides = [Int](repeating: 1, count: shape.count)
        for axis in 1..<shape.count { fortranStrides[axis] = fortranStrides[axis - 1] * shape[axis - 1] }
        var index = [Int](repeating: 0, count: shape.count)
        for position in 0..<values.count {
            var source = 0
            for axis in 0..<shape.count { source += index[axis] * fortranStrides[axis] }
            result[position] = values[source]
            var axis = shape.count - 1  // advance the C-order multi-index
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return result
    }

    /// The position and value of the first NaN or infinity, if any.
    public var firstNonFinite: (index: [Int], value: Float)? {
        guard let flat = values.firstIndex(where: { !$0.isFinite }) else { return nil }
        var index = [Int](repeating: 0, count: shape.count), rest = flat
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return (index, values[flat])
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
        var data = Data(Self.magic + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }

    public func write(to url: URL) throws { try data.write(to: url, options: .atomic) }
}
