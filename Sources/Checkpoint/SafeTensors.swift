import Foundation

/// Reads and writes safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's
/// dtype, shape and byte range, then the data.
public enum SafeTensors {
    /// Reads every tensor (F32, F16, BF16, F64 and I64 are converted to float32), in header order by offset.
    public static func read(_ url: URL) throws -> StateDict {
        guard let data = try? Data(contentsOf: url, options: .mappedIfSafe) else {
            throw CheckpointError.unreadable("\(url.path) cannot be opened")
        }
        return try read(data: data)
    }

    /// Whether `head` (a file's first bytes) starts as a safetensors file does: an 8-byte header length, then the
    /// header's opening brace.
    public static func hasSignature<Bytes: Collection<UInt8>>(_ head: Bytes) -> Bool {
        head.count >= 9 && head[head.index(head.startIndex, offsetBy: 8)] == UInt8(ascii: "{")
    }

    /// Reads a safetensors file held in memory.
    public static func read(data: Data) throws -> StateDict {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw CheckpointError.malformed("shorter than a safetensors header") }
        let headerLength = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard headerLength <= UInt64(bytes.count - 8), headerLength < 100_000_000 else {
            throw CheckpointError.malformed("safetensors header of \(headerLength) bytes does not fit the file")
        }
        let start = 8 + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[8..<start])) as? [String: Any] else {
            throw CheckpointError.malformed("the safetensors header is not a JSON object")
        }
        var tensors: [(offset: Int, tensor: NamedTensor)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2,
                shape.allSatisfy({ $0 >= 0 })
            else {
                throw CheckpointError.malformed("safetensors entry \(name) lacks dtype, shape or data_offsets")
            }
            guard let count = checkedProduct(shape) else {
                throw CheckpointError.malformed("safetensors entry \(name) has an impossible shape \(shape)")
            }
            let size: Int
            switch dtype {
            case "F32": size = 4
            case "F16", "BF16": size = 2
            case "F64", "I64": size = 8
            default: throw CheckpointError.malformed("\(name) has dtype \(dtype); supported: F32, F16, BF16, F64, I64")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= bytes.count - start, end - begin == count * size else {
                throw CheckpointError.malformed(
                    "\(name): its byte range \(begin)..<\(end) does not fit \(count) \(dtype) values in the file")
            }
            let base = start + begin
            let values: [Float] = bytes.withUnsafeBytes { raw in
                (0..<count).map { i in
                    let at = base + i * size
                    switch dtype {
                    case "F32":
                        return Float(bitPattern: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian)
                    case "F16":
                        return ElementDecoding.float16(
                            raw.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian)
                    case "BF16":
                        return ElementDecoding.bfloat16(
                            raw.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian)
                    case "F64":
                        return Float(
                            Double(bitPattern: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian))
                    default: return Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int64.self)))
                    }
                }
            }
            tensors.append((begin, NamedTensor(name: name, shape: shape, values: values, storedType: dtype)))
        }
        let metadata = (header["__metadata__"] as? [String: Any])?.compactMapValues { $0 as? String } ?? [:]
        return try StateDict(tensors.sorted { $0.offset < $1.offset }.map(\.tensor), metadata: metadata)
    }

    /// Writes `state` as float32 safetensors, names and order kept, with its metadata (and `format: pt`, which
    /// other readers expect) as the header's `__metadata__`.
    public static func write(_ state: StateDict, to url: URL) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt"].merging(state.metadata) { $1 }]
        var offset = 0
        for tensor in state.tensors {
            let bytes = tensor.values.count * 4
            header[tensor.name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var data = Data()
        data.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for tensor in state.tensors {
            tensor.values.withUnsafeBytes { raw in
                // Float32 is little-endian on every platform Swift runs this on; say so rather than assume.
                precondition(UInt32(1).littleEndian == 1, "safetensors writing assumes a little-endian machine")
                data.append(contentsOf: raw)
            }
        }
        try data.write(to: url, options: .atomic)
    }
}

/// Reads any supported weights file, telling the format by its content: a torch.save zip (.pth) or safetensors.
public enum WeightsFile {
    public static func read(_ url: URL, ema: Bool = false) throws -> StateDict {
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw CheckpointError.unreadable("\(url.path) cannot be opened")
        }
        let head = [UInt8]((try? handle.read(upToCount: 9)) ?? Data())
        try? handle.close()
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.first == 0x80 {
            return try TorchCheckpoint.stateDict(at: url, ema: ema)
        }
        if SafeTensors.hasSignature(head) {
            if ema {
                throw CheckpointError.noStateDict(
                    "--ema applies to .pth checkpoints; a safetensors file holds one state dict.")
            }
            return try SafeTensors.read(url)
        }
        throw CheckpointError.unknownFormat
    }
}
