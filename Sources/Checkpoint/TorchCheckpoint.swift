import Foundation
import ZIPFoundation

/// Reads the zip checkpoints `torch.save` writes (PyTorch 1.6 and later): `<folder>/data.pkl` (a pickle of the saved
/// object, whose tensors point at storages by persistent id) and `<folder>/data/<key>` (each storage's raw bytes).
/// The folder's name is whatever the file was called when saved, so it is found, not assumed.
public enum TorchCheckpoint {
    /// Reads the pickled object of a checkpoint, with a loader for its storages.
    public static func open(_ url: URL) throws -> (root: PickleValue, storages: StorageLoader) {
        try checkMagic(url)
        try ZipCheck.validate(url)
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw CheckpointError.malformed("not a readable zip archive (\(error))")
        }
        guard let pickle = archive.first(where: { $0.path.hasSuffix("data.pkl") && $0.type == .file }) else {
            throw CheckpointError.malformed("no data.pkl in the archive")
        }
        let folder = String(pickle.path.dropLast("data.pkl".count))
        if let byteorder = archive[folder + "byteorder"] {
            let order = String(decoding: try read(archive, byteorder, limit: 16), as: UTF8.self)
            guard order.hasPrefix("little") else {
                throw CheckpointError.malformed(
                    "the storages are \(order)-endian; only little-endian checkpoints are supported")
            }
        }
        let root = try Unpickler.load(try read(archive, pickle, limit: 1 << 30))
        return (root, StorageLoader(archive: archive, folder: folder))
    }

    /// Reads the state dict to run: `model` by default, `model_ema` when `ema`, else `state_dict`, else the file
    /// itself when it is a bare state dict; a leading `module.` is removed from every name.
    public static func stateDict(at url: URL, ema: Bool = false) throws -> StateDict {
        let (root, storages) = try open(url)
        guard case let .dict(top) = root else {
            throw CheckpointError.noStateDict("the checkpoint holds a \(root.kind), not a dict of tensors")
        }
        let chosen: PickleDict
        if ema {
            guard case let .dict(dict)? = top["model_ema"] else {
                throw CheckpointError.noStateDict(
                    "--ema asks for 'model_ema', which this checkpoint lacks (its keys: \(describe(top))).")
            }
            chosen = dict
        } else if case let .dict(dict)? = top["model"] {
            chosen = dict
        } else if case let .dict(dict)? = top["state_dict"] {
            chosen = dict
        } else if !top.entries.isEmpty,
            top.entries.allSatisfy({ if case .tensor = $0.value { return true } else { return false } })
        {
            chosen = top
        } else {
            throw CheckpointError.noStateDict(
                "found no state dict: the checkpoint has neither 'model' nor 'state_dict' and is not a dict of tensors (its keys: \(describe(top)))."
            )
        }
        var tensors: [NamedTensor] = []
        for (key, value) in chosen.entries {
            guard var name = key.string else {
                throw CheckpointError.malformed("a state-dict key is a \(key.kind), not a string")
            }
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }
            guard case let .tensor(reference) = value else {
                throw CheckpointError.malformed("state-dict entry \(name) is a \(value.kind), not a tensor")
            }
            tensors.append(try storages.tensor(reference, name: name))
        }
        return try StateDict(tensors, metadata: trainingModel(top).map { [StateDict.modelKey: $0] } ?? [:])
    }

    /// The model named by the training arguments saved beside the weights: `args.model`, whether `args` is an
    /// argparse.Namespace (the authors' main.py) or a plain dict.
    static func trainingModel(_ top: PickleDict) -> String? {
        switch top["args"] {
        case let .dict(arguments)?: return arguments["model"]?.string
        case let .object(_, _, .dict(attributes)?)?: return attributes["model"]?.string
        default: return nil
        }
    }

    static func describe(_ dict: PickleDict) -> String {
        let keys = dict.stringKeys
        return keys.isEmpty ? "none" : keys.prefix(12).joined(separator: ", ") + (keys.count > 12 ? ", ..." : "")
    }

    /// Tells zip checkpoints, legacy ones and other files apart by their first bytes.
    static func checkMagic(_ url: URL) throws {
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw CheckpointError.unreadable("\(url.path) cannot be opened")
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 4)) ?? Data())
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return }
        if head.first == 0x80 { throw CheckpointError.legacyFormat }
        throw CheckpointError.unknownFormat
    }

    static func read(_ archive: Archive, _ entry: Entry, limit: Int) throws -> [UInt8] {
        guard entry.uncompressedSize <= UInt64(limit) else {
            throw CheckpointError.malformed("\(entry.path) is larger than \(limit) bytes")
        }
        // The sizes as ZIPFoundation reads them (ZipCheck checked the directory's; this guards what is allocated):
        // no entry holds more than deflate can expand what it stores to.
        guard entry.uncompressedSize <= entry.compressedSize &* 1032 &+ 1024 else {
            throw CheckpointError.malformed("\(entry.path) claims to hold more than it can (the file is damaged)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(min(entry.uncompressedSize, 1 << 26)))
        let checksum: CRC32
        do {
            checksum = try archive.extract(entry) { chunk in bytes.append(contentsOf: chunk) }
        } catch {
            throw CheckpointError.malformed("\(entry.path) cannot be extracted (\(error))")
        }
        guard checksum == entry.checksum, bytes.count == Int(entry.uncompressedSize) else {
            throw CheckpointError.malformed("\(entry.path) fails its checksum: the file is damaged")
        }
        return bytes
    }
}

/// Loads storages from a checkpoint's archive, each once, and materialises tensor views of them.
public final class StorageLoader {
    private let archive: Archive
    private let folder: String
    private var cache: [String: [UInt8]] = [:]

    init(archive: Archive, folder: String) {
        self.archive = archive
        self.folder = folder
    }

    private func bytes(of storage: StorageReference) throws -> [UInt8] {
        if let cached = cache[storage.key] { return cached }
        guard let entry = archive[folder + "data/" + storage.key] else {
            throw CheckpointError.malformed("storage \(storage.key) is missing from the archive")
        }
        let bytes = try TorchCheckpoint.read(archive, entry, limit: 1 << 33)
        guard storage.count <= maximumElements, bytes.count >= storage.count * storage.type.size else {
            throw CheckpointError.malformed(
                "storage \(storage.key) holds \(bytes.count) bytes, fewer than its \(storage.count) elements need")
        }
        cache[storage.key] = bytes
        return bytes
    }

    /// The tensor's values in row-major order as float32, following its offset and strides into the storage.
    public func tensor(_ reference: TensorReference, name: String) throws -> NamedTensor {
        let storage = reference.storage
        guard let count = checkedProduct(reference.shape) else {
            throw CheckpointError.malformed("\(name) has an impossible shape \(reference.shape)")
        }
        // The furthest element the view touches must lie inside the storage (computed without overflowing).
        var furthest: Int? = reference.offset <= maximumElements ? reference.offset : nil
        for (size, stride) in zip(reference.shape, reference.strides) where size > 0 {
            guard let sum = furthest, stride <= maximumElements else { furthest = nil; break }
            let (step, overflow) = (size - 1).multipliedReportingOverflow(by: stride)
            furthest = overflow ? nil : sum + step
        }
        guard count == 0 || (furthest.map { $0 < storage.count } ?? false) else {
            throw CheckpointError.malformed(
                "\(name): the view (offset \(reference.offset), shape \(reference.shape), strides \(reference.strides)) runs past its storage of \(storage.count) elements"
            )
        }
        let raw = try bytes(of: storage)
        let decode: (Int) -> Float
        switch storage.type {
        case .float32:
            decode = { i in
                raw.withUnsafeBytes {
                    Float(bitPattern: $0.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian)
                }
            }
        case .float16: decode = { i in ElementDecoding.float16(UInt16(raw[2 * i]) | UInt16(raw[2 * i + 1]) << 8) }
        case .bfloat16: decode = { i in ElementDecoding.bfloat16(UInt16(raw[2 * i]) | UInt16(raw[2 * i + 1]) << 8) }
        case .float64:
            decode = { i in
                Float(
                    raw.withUnsafeBytes {
                        Double(bitPattern: $0.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self).littleEndian)
                    })
            }
        case .int64:
            decode = { i in
                Float(
                    raw.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
                )
            }
        case .int32:
            decode = { i in
                Float(
                    raw.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
                )
            }
        default:
            throw CheckpointError.malformed(
                "\(name) is stored as \(storage.type.rawValue), which is not a supported element type")
        }
        var values = [Float](repeating: 0, count: count)
        if count > 0 {
            let rank = reference.shape.count
            var index = [Int](repeating: 0, count: rank)
            var position = reference.offset
            for flat in 0..<count {
                values[flat] = decode(position)
                // Advance the multi-index in row-major order.
                var axis = rank - 1
                while axis >= 0 {
                    index[axis] += 1
                    position += reference.strides[axis]
                    if index[axis] < reference.shape[axis] { break }
                    position -= reference.strides[axis] * reference.shape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
        let typeName: String
        switch storage.type {
        case .float32: typeName = "float32"
        case .float16: typeName = "float16"
        case .bfloat16: typeName = "bfloat16"
        case .float64: typeName = "float64"
        case .int64: typeName = "int64"
        default: typeName = "int32"
        }
        return NamedTensor(name: name, shape: reference.shape, values: values, storedType: typeName)
    }
}
