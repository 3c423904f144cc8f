import Foundation
import ZIPFoundation

/// A value as `torch.save` pickles it and `torch.load(..., weights_only=True)` accepts it back: plain Python values,
/// `collections.OrderedDict` (state dicts) and CPU tensors of float32 or int64.
public indirect enum TorchValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([TorchValue])
    case tuple([TorchValue])
    /// A plain `dict`, in this order.
    case dict([TorchEntry])
    /// A `collections.OrderedDict` (what `state_dict()` returns), in this order.
    case orderedDict([TorchEntry])
    /// A contiguous float32 tensor; `shape` `[]` is a scalar.
    case float32(shape: [Int], values: [Float])
    /// A contiguous int64 tensor (`num_batches_tracked`).
    case int64(shape: [Int], values: [Int64])

    /// A state dict of float32 tensors, in order.
    public static func stateDict(_ tensors: [NamedTensor]) -> TorchValue {
        .orderedDict(tensors.map { TorchEntry($0.name, .float32(shape: $0.shape, values: $0.values)) })
    }
}

/// One key and value of a pickled dict.
public struct TorchEntry: Sendable {
    /// The key (a string or an int in what training writes) and its value.
    public var key: TorchValue
    public var value: TorchValue

    /// An entry under any key.
    public init(_ key: TorchValue, _ value: TorchValue) { (self.key, self.value) = (key, value) }
    /// An entry under a string key.
    public init(_ key: String, _ value: TorchValue) { self.init(.string(key), value) }
}

/// Writes checkpoints as `torch.save` does (PyTorch 1.6 and later): a zip archive, its entries stored uncompressed
/// under one folder, holding `data.pkl` (pickle protocol 2), `byteorder`, `data/<key>` (one storage a tensor) and
/// `version`.
public enum TorchSave {
    /// Writes `value` to `url` atomically: the archive is written beside it under a temporary name, then renamed
    /// over it, so a crash mid-write leaves the previous file whole. The archive's folder is the file's base name, as
    /// torch.save names it.
    public static func write(_ value: TorchValue, to url: URL) throws {
        var pickler = TorchPickler()
        pickler.write(value)
        let folder = url.deletingPathExtension().lastPathComponent
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).partial")
        defer { try? FileManager.default.removeItem(at: temporary) }
        do {
            let archive = try Archive(url: temporary, accessMode: .create)
            try add(archive, "\(folder)/data.pkl", Data(pickler.bytes))
            try add(archive, "\(folder)/byteorder", Data("little".utf8))
            for (key, storage) in pickler.storages.enumerated() {
                try add(archive, "\(folder)/data/\(key)", storage)
            }
            try add(archive, "\(folder)/version", Data("3\n".utf8))
        } catch {
            throw CheckpointError.unreadable("\(temporary.path) could not be written: \(error)")
        }
        guard rename(temporary.path, url.path) == 0 else {
            throw CheckpointError.unreadable(
                "\(url.path) could not be replaced: \(String(cString: strerror(errno))) (the previous file is untouched)"
            )
        }
    }

    private static func add(_ archive: Archive, _ path: String, _ data: Data) throws {
        try archive.addEntry(
            with: path, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .none,
            provider: { position, size in data.subdata(in: Int(position)..<Int(position) + size) })
    }
}

/// The pickle protocol 2 stream of a ``TorchValue``, with each tensor's bytes set aside as a storage.
struct TorchPickler {
    private(set) var bytes: [UInt8] = [0x80, 2]
    private(set) var storages: [Data] = []

    mutating func write(_ value: TorchValue) {
        pickle(value)
        bytes.append(0x2E)  // STOP
    }

    private mutating func pickle(_ value: TorchValue) {
        switch value {
        case .none: bytes.append(0x4E)  // NONE
        case let .bool(flag): bytes.append(flag ? 0x88 : 0x89)  // NEWTRUE, NEWFALSE
        case let .int(number): integer(number)
        case let .float(number):
            bytes.append(0x47)  // BINFLOAT, big-endian
            withUnsafeBytes(of: number.bitPattern.bigEndian) { bytes.append(contentsOf: $0) }
        case let .string(text): string(text)
        case let .list(items):
            bytes.append(0x5D)  // EMPTY_LIST
            appending(items, opcode: 0x65)  // APPENDS
        case let .tuple(items): tuple(items)
        case let .dict(entries):
            bytes.append(0x7D)  // EMPTY_DICT
            setting(entries)
        case let .orderedDict(entries):
            reduce(module: "collections", name: "OrderedDict", arguments: [])
            setting(entries)
        case let .float32(shape, values):
            let data = values.withUnsafeBufferPointer { Data(buffer: $0) }
            tensor(storage: "FloatStorage", data: data, count: values.count, shape: shape)
        case let .int64(shape, values):
            let data = values.withUnsafeBufferPointer { Data(buffer: $0) }
            tensor(storage: "LongStorage", data: data, count: values.count, shape: shape)
        }
    }

    private mutating func integer(_ number: Int) {
        if let small = Int32(exactly: number) {
            bytes.append(0x4A)  // BININT, little-endian
            withUnsafeBytes(of: small.littleEndian) { bytes.append(contentsOf: $0) }
        } else {
            bytes.append(contentsOf: [0x8A, 8])  // LONG1, eight bytes two's complement little-endian
            withUnsafeBytes(of: Int64(number).littleEndian) { bytes.append(contentsOf: $0) }
        }
    }

    private mutating func string(_ text: String) {
        let utf8 = Array(text.utf8)
        bytes.append(0x58)  // BINUNICODE
        withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: utf8)
    }

    private mutating func tuple(_ items: [TorchValue]) {
        if items.isEmpty { return bytes.append(0x29) }  // EMPTY_TUPLE
        bytes.append(0x28)  // MARK
        for item in items { pickle(item) }
        bytes.append(0x74)  // TUPLE
    }

    private mutating func appending(_ items: [TorchValue], opcode: UInt8) {
        guard !items.isEmpty else { return }
        bytes.append(0x28)  // MARK
        for item in items { pickle(item) }
        bytes.append(opcode)
    }

    private mutating func setting(_ entries: [TorchEntry]) {
        guard !entries.isEmpty else { return }
        bytes.append(0x28)  // MARK
        for entry in entries {
            pickle(entry.key)
            pickle(entry.value)
        }
        bytes.append(0x75)  // SETITEMS
    }

    private mutating func global(module: String, name: String) {
        bytes.append(0x63)  // GLOBAL
        bytes.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
    }

    private mutating func reduce(module: String, name: String, arguments: [TorchValue]) {
        global(module: module, name: name)
        tuple(arguments)
        bytes.append(0x52)  // REDUCE
    }

    /// `torch._utils._rebuild_tensor_v2(storage, 0, shape, contiguous strides, False, OrderedDict())`, the storage
    /// named by the persistent id `('storage', torch.<Type>Storage, key, 'cpu', count)`.
    private mutating func tensor(storage type: String, data: Data, count: Int, shape: [Int]) {
        let key = storages.count
        storages.append(data)
        global(module: "torch._utils", name: "_rebuild_tensor_v2")
        bytes.append(0x28)  // MARK
        bytes.append(0x28)  // MARK: the persistent id
        string("storage")
        global(module: "torch", name: type)
        string(String(key))
        string("cpu")
        integer(count)
        bytes.append(0x74)  // TUPLE
        bytes.append(0x51)  // BINPERSID
        integer(0)
        tuple(shape.map(TorchValue.int))
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in shape.indices.dropLast().reversed() { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        tuple(strides.map(TorchValue.int))
        bytes.append(0x89)  // NEWFALSE: requires_grad
        reduce(module: "collections", name: "OrderedDict", arguments: [])
        bytes.append(0x74)  // TUPLE
        bytes.append(0x52)  // REDUCE
    }
}
