import Foundation

/// A value of the pickle subset `torch.save` writes.
public indirect enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A class or function named by module and name (GLOBAL, STACK_GLOBAL).
    case global(module: String, name: String)
    /// Anything else the pickle builds (argparse.Namespace, ...): what built it, kept but not interpreted.
    case object(callable: PickleValue, arguments: [PickleValue])
    /// A tensor: `torch._utils._rebuild_tensor_v2` and `_rebuild_parameter`, resolved.
    case tensor(TensorReference)
    /// A storage, named by a persistent id.
    case storage(StorageReference)

    /// The string, if this is one.
    public var string: String? { if case let .string(s) = self { return s } else { return nil } }

    /// A short description for error messages.
    public var kind: String {
        switch self {
        case .none: "None"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .bytes: "bytes"
        case .tuple: "tuple"
        case .list: "list"
        case .dict: "dict"
        case let .global(module, name): "\(module).\(name)"
        case let .object(callable, _): "object built by \(callable.kind)"
        case .tensor: "tensor"
        case .storage: "storage"
        }
    }
}

/// A pickled list (a reference: the memo may hand out the same list twice).
public final class PickleList: @unchecked Sendable {
    public internal(set) var items: [PickleValue] = []
}

/// A pickled dict, in insertion order (a reference, like ``PickleList``).
public final class PickleDict: @unchecked Sendable {
    public internal(set) var entries: [(key: PickleValue, value: PickleValue)] = []

    /// The value under a string key.
    public subscript(key: String) -> PickleValue? {
        entries.last { $0.key.string == key }?.value
    }

    /// The string keys, in order.
    public var stringKeys: [String] { entries.compactMap(\.key.string) }
}

/// The element types storages can hold.
public enum StorageType: String, Sendable {
    case float32 = "FloatStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage", float64 = "DoubleStorage"
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage", uint8 = "ByteStorage"
    case bool = "BoolStorage"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }
}

/// A storage in the checkpoint's `data/` folder.
public struct StorageReference: Sendable {
    public let type: StorageType
    /// Its file name under `data/`.
    public let key: String
    /// Elements.
    public let count: Int
}

/// A tensor as a view of a storage.
public struct TensorReference: Sendable {
    public let storage: StorageReference
    /// Offset of the first element, in elements.
    public let offset: Int
    public let shape: [Int]
    /// Strides in elements.
    public let strides: [Int]
}

/// A pickle that cannot be read.
public struct PickleError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = "pickle: \(description)" }
}

/// Reads the pickle subset of `torch.save` (protocol 2; the opcodes of protocols 3 to 5 that appear in practice are
/// read too): containers, numbers, strings, the memo, globals, REDUCE of OrderedDict and the tensor rebuilders, and
/// persistent ids for storages. Everything else REDUCE, NEWOBJ or BUILD makes is kept as an opaque object. Any
/// malformed or truncated input throws; nothing is executed.
public struct Unpickler {
    private let bytes: [UInt8]
    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Runs the pickle and returns the object it builds.
    public static func load(_ bytes: [UInt8]) throws -> PickleValue {
        var unpickler = Unpickler(bytes)
        return try unpickler.run()
    }

    private mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw PickleError("truncated at byte \(position)") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - position else {
            throw PickleError("truncated: \(count) bytes wanted at byte \(position) of \(bytes.count)")
        }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    private mutating func unsigned(_ count: Int) throws -> UInt64 {
        try take(count).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    private mutating func line() throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw PickleError("unterminated line at byte \(position)") }
        let text = String(decoding: bytes[position..<end], as: UTF8.self)
        position = end + 1
        return text
    }

    private mutating func pop() throws -> PickleValue {
        guard let value = stack.popLast() else { throw PickleError("stack underflow at byte \(position)") }
        if let mark = marks.last, stack.count < mark { throw PickleError("pop across a mark at byte \(position)") }
        return value
    }

    private mutating func popToMark() throws -> [PickleValue] {
        guard let mark = marks.popLast(), mark <= stack.count else { throw PickleError("no mark at byte \(position)") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    private func top() throws -> PickleValue {
        guard let value = stack.last else { throw PickleError("empty stack at byte \(position)") }
        return value
    }

    private func string(_ slice: ArraySlice<UInt8>) throws -> String {
        guard let text = String(bytes: slice, encoding: .utf8) else { throw PickleError("invalid UTF-8 at byte \(position)") }
        return text
    }

    private mutating func run() throws -> PickleValue {
        while true {
            let opcode = try byte()
            switch opcode {
            case 0x80: _ = try byte()  // PROTO
            case 0x95: _ = try take(8)  // FRAME
            case 0x2E:  // STOP
                guard stack.count == 1, marks.isEmpty else { throw PickleError("STOP with \(stack.count) values on the stack") }
                return stack[0]
            case 0x28: marks.append(stack.count)  // MARK
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popToMark()  // POP_MARK
            case 0x32: stack.append(try top())  // DUP
            case 0x4E: stack.append(.none)  // NONE
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: UInt32(try unsigned(4))))))  // BININT
            case 0x4B: stack.append(.int(Int(try byte())))  // BININT1
            case 0x4D: stack.append(.int(Int(try unsigned(2))))  // BININT2
            case 0x8A:  // LONG1
                let count = Int(try byte())
                guard count <= 8 else { throw PickleError("integer of \(count) bytes is too large") }
                let raw = try take(count)
                var value: Int64 = 0
                for (index, b) in raw.enumerated() { value |= Int64(b) << (8 * Int64(index)) }
                if count > 0 && count < 8 && raw.last.map({ $0 & 0x80 != 0 }) == true { value -= Int64(1) << (8 * Int64(count)) }
                stack.append(.int(Int(value)))
            case 0x49:  // INT (text)
                let text = try line()
                if text == "01" { stack.append(.bool(true)) } else if text == "00" { stack.append(.bool(false)) } else {
                    guard let value = Int(text) else { throw PickleError("bad INT '\(text)'") }
                    stack.append(.int(value))
                }
            case 0x47: stack.append(.float(Double(bitPattern: try unsigned(8).byteSwapped)))  // BINFLOAT (big-endian)
            case 0x58: stack.append(.string(try string(try take(Int(try unsigned(4))))))  // BINUNICODE
            case 0x8C: stack.append(.string(try string(try take(Int(try byte())))))  // SHORT_BINUNICODE
            case 0x8D:  // BINUNICODE8
                let count = try unsigned(8)
                guard count <= UInt64(bytes.count) else { throw PickleError("string longer than the file") }
                stack.append(.string(try string(try take(Int(count)))))
            case 0x55: stack.append(.string(String(decoding: try take(Int(try byte())), as: UTF8.self)))  // SHORT_BINSTRING
            case 0x54: stack.append(.string(String(decoding: try take(Int(try unsigned(4))), as: UTF8.self)))  // BINSTRING
            case 0x43: stack.append(.bytes(Array(try take(Int(try byte())))))  // SHORT_BINBYTES
            case 0x42: stack.append(.bytes(Array(try take(Int(try unsigned(4))))))  // BINBYTES
            case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
            case 0x74: stack.append(.tuple(try popToMark()))  // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))  // TUPLE1
            case 0x86:  // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(.tuple([a, b]))
            case 0x87:  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.tuple([a, b, c]))
            case 0x5D: stack.append(.list(PickleList()))  // EMPTY_LIST
            case 0x6C:  // LIST
                let list = PickleList()
                list.items = try popToMark()
                stack.append(.list(list))
            case 0x61:  // APPEND
                let value = try pop()
                guard case let .list(list) = try top() else { throw PickleError("APPEND to a \(try top().kind)") }
                list.items.append(value)
            case 0x65:  // APPENDS
                let values = try popToMark()
                guard case let .list(list) = try top() else { throw PickleError("APPENDS to a \(try top().kind)") }
                list.items += values
            case 0x7D: stack.append(.dict(PickleDict()))  // EMPTY_DICT
            case 0x64:  // DICT
                let values = try popToMark()
                guard values.count % 2 == 0 else { throw PickleError("DICT with an odd number of items") }
                let dict = PickleDict()
                for index in stride(from: 0, to: values.count, by: 2) { dict.entries.append((values[index], values[index + 1])) }
                stack.append(.dict(dict))
            case 0x73:  // SETITEM
                let value = try pop(), key = try pop()
                guard case let .dict(dict) = try top() else { throw PickleError("SETITEM on a \(try top().kind)") }
                dict.entries.append((key, value))
            case 0x75:  // SETITEMS
                let values = try popToMark()
                guard values.count % 2 == 0 else { throw PickleError("SETITEMS with an odd number of items") }
                guard case let .dict(dict) = try top() else { throw PickleError("SETITEMS on a \(try top().kind)") }
                for index in stride(from: 0, to: values.count, by: 2) { dict.entries.append((values[index], values[index + 1])) }
            case 0x71: memo[Int(try byte())] = try top()  // BINPUT
            case 0x72: memo[Int(try unsigned(4))] = try top()  // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let index = Int(opcode == 0x68 ? UInt64(try byte()) : try unsigned(4))
                guard let value = memo[index] else { throw PickleError("memo \(index) is empty") }
                stack.append(value)
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                stack.append(.global(module: module, name: name))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.string, let n = name.string else { throw PickleError("STACK_GLOBAL needs two strings") }
                stack.append(.global(module: m, name: n))
            case 0x52:  // REDUCE
                let arguments = try pop(), callable = try pop()
                guard case let .tuple(list) = arguments else { throw PickleError("REDUCE arguments are a \(arguments.kind)") }
                stack.append(try reduce(callable, list))
            case 0x81:  // NEWOBJ
                let arguments = try pop(), cls = try pop()
                guard case let .tuple(list) = arguments else { throw PickleError("NEWOBJ arguments are a \(arguments.kind)") }
                stack.append(.object(callable: cls, arguments: list))
            case 0x62:  // BUILD: the state is set on the object; nothing here needs it
                _ = try pop()
                _ = try top()
            case 0x51:  // BINPERSID
                stack.append(try persistentLoad(try pop()))
            default:
                throw PickleError(String(format: "unsupported opcode 0x%02X at byte %d", opcode, position - 1))
            }
        }
    }

    private func reduce(_ callable: PickleValue, _ arguments: [PickleValue]) throws -> PickleValue {
        guard case let .global(module, name) = callable else { return .object(callable: callable, arguments: arguments) }
        switch (module, name) {
        case ("collections", "OrderedDict"):
            return .dict(PickleDict())
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            guard arguments.count >= 4, case let .storage(storage) = arguments[0], case let .int(offset) = arguments[1],
                  case let .tuple(size) = arguments[2], case let .tuple(stride) = arguments[3] else {
                throw PickleError("\(name) with unexpected arguments")
            }
            let shape = try size.map { value -> Int in
                guard case let .int(v) = value, v >= 0 else { throw PickleError("tensor size is not a list of non-negative ints") }
                return v
            }
            let strides = try stride.map { value -> Int in
                guard case let .int(v) = value, v >= 0 else { throw PickleError("tensor stride is not a list of non-negative ints") }
                return v
            }
            guard shape.count == strides.count, offset >= 0 else { throw PickleError("tensor size and stride differ in rank") }
            return .tensor(TensorReference(storage: storage, offset: offset, shape: shape, strides: strides))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard let data = arguments.first else { throw PickleError("\(name) without data") }
            return data
        default:
            return .object(callable: callable, arguments: arguments)
        }
    }

    private func persistentLoad(_ id: PickleValue) throws -> PickleValue {
        guard case let .tuple(parts) = id, parts.count >= 5, parts[0].string == "storage",
              case let .global(module, name) = parts[1], let key = parts[2].string, case let .int(count) = parts[4], count >= 0 else {
            throw PickleError("unsupported persistent id (not a torch storage)")
        }
        guard module == "torch", let type = StorageType(rawValue: name) else {
            throw PickleError("unsupported storage type \(module).\(name)")
        }
        return .storage(StorageReference(type: type, key: key, count: count))
    }
}
