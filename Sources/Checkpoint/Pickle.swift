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
    /// Anything else the pickle builds (argparse.Namespace, ...): what built it and the state BUILD set on it (an
    /// argparse.Namespace's attributes are a dict of its state), kept but not interpreted.
    case object(callable: PickleValue, arguments: [PickleValue], state: PickleValue?)
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
        case let .object(callable, _, _): "object built by \(callable.kind)"
        case .tensor: "tensor"
        case .storage: "storage"
        }
    }
}

/// A pickled list (a reference: the memo may hand out the same list twice).
public final class PickleList: @unchecked Sendable {
    public internal(set) var items: [PickleValue] = []
    /// Nesting depth, kept up to date as items are appended.
    var depth = 1
}

/// A pickled dict, in insertion order (a reference, like ``PickleList``).
public final class PickleDict: @unchecked Sendable {
    public internal(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    /// Nesting depth, kept up to date as items are set.
    var depth = 1

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
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage", uint8 =
        "ByteStorage"
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
    /// A value on the stack or in the memo, with how deeply it nests.
    private typealias Entry = (value: PickleValue, depth: Int)

    private let bytes: [UInt8]
    private var position = 0
    private var stack: [Entry] = []
    private var marks: [Int] = []
    private var memo: [Int: Entry] = [:]
    /// Every list and dict made, so that a pickle whose containers refer to themselves can be refused and its
    /// cycles broken (reference counting would never free them).
    private var containers: [AnyObject] = []

    /// The deepest nesting accepted. State dicts nest a few levels; a pickle of a million nested tuples would
    /// otherwise overflow the stack when the value is freed.
    public static let maximumDepth = 100

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Runs the pickle and returns the object it builds.
    public static func load(_ bytes: [UInt8]) throws -> PickleValue {
        var unpickler = Unpickler(bytes)
        do {
            let value = try unpickler.run()
            if unpickler.hasCycle() {
                throw PickleError("a list or dict contains itself; torch.save never writes that")
            }
            return value
        } catch {
            unpickler.breakContainers()
            throw error
        }
    }

    /// Whether any list or dict made contains itself, directly or through others.
    private func hasCycle() -> Bool {
        var state: [ObjectIdentifier: Bool] = [:]  // false: being visited; true: done
        func containers(in value: PickleValue) -> [AnyObject] {
            var found: [AnyObject] = []
            var pending = [value]
            while let next = pending.popLast() {
                switch next {
                case let .list(list): found.append(list)
                case let .dict(dict): found.append(dict)
                case let .tuple(items): pending += items
                case let .object(callable, arguments, built):
                    pending += [callable] + arguments + (built.map { [$0] } ?? [])
                default: break
                }
            }
            return found
        }
        func children(_ container: AnyObject) -> [AnyObject] {
            if let list = container as? PickleList { return list.items.flatMap(containers(in:)) }
            if let dict = container as? PickleDict {
                return dict.entries.flatMap { containers(in: $0.key) + containers(in: $0.value) }
            }
            return []
        }
        for start in self.containers where state[ObjectIdentifier(start)] == nil {
            // Iterative depth-first search: a container met again while still being visited closes a cycle.
            var path: [(container: AnyObject, children: [AnyObject])] = [(start, children(start))]
            state[ObjectIdentifier(start)] = false
            while !path.isEmpty {
                if let child = path[path.count - 1].children.popLast() {
                    switch state[ObjectIdentifier(child)] {
                    case false?: return true
                    case true?: continue
                    case nil:
                        state[ObjectIdentifier(child)] = false
                        path.append((child, children(child)))
                    }
                } else {
                    state[ObjectIdentifier(path.removeLast().container)] = true
                }
            }
        }
        return false
    }

    /// Empties every list and dict made, so that cycles among them are freed.
    private func breakContainers() {
        for container in containers {
            (container as? PickleList)?.items = []
            (container as? PickleDict)?.entries = []
        }
    }

    /// Registers a new container (see ``containers``).
    private mutating func made<T: AnyObject>(_ container: T) -> T {
        containers.append(container)
        return container
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
        guard let end = bytes[position...].firstIndex(of: 0x0A) else {
            throw PickleError("unterminated line at byte \(position)")
        }
        let text = String(decoding: bytes[position..<end], as: UTF8.self)
        position = end + 1
        return text
    }

    /// The current depth of an entry (lists and dicts grow deeper as items are added).
    private func depth(_ entry: Entry) -> Int {
        switch entry.value {
        case let .list(list): max(entry.depth, list.depth)
        case let .dict(dict): max(entry.depth, dict.depth)
        default: entry.depth
        }
    }

    private func checked(_ depth: Int) throws -> Int {
        guard depth <= Self.maximumDepth else {
            throw PickleError("values nest deeper than \(Self.maximumDepth) levels")
        }
        return depth
    }

    private mutating func push(_ value: PickleValue, depth: Int = 1) throws {
        stack.append((value, try checked(depth)))
    }

    /// Pushes a container of `children`, one level deeper than the deepest of them.
    private mutating func push(_ value: PickleValue, containing children: [Entry]) throws {
        try push(value, depth: 1 + (children.map(depth).max() ?? 0))
    }

    private mutating func popEntry() throws -> Entry {
        guard let entry = stack.popLast() else { throw PickleError("stack underflow at byte \(position)") }
        if let mark = marks.last, stack.count < mark { throw PickleError("pop across a mark at byte \(position)") }
        return entry
    }

    private mutating func pop() throws -> PickleValue { try popEntry().value }

    private mutating func popToMark() throws -> [Entry] {
        guard let mark = marks.popLast(), mark <= stack.count else { throw PickleError("no mark at byte \(position)") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    private func top() throws -> Entry {
        guard let entry = stack.last else { throw PickleError("empty stack at byte \(position)") }
        return entry
    }

    private func string(_ slice: ArraySlice<UInt8>) throws -> String {
        guard let text = String(bytes: slice, encoding: .utf8) else {
            throw PickleError("invalid UTF-8 at byte \(position)")
        }
        return text
    }

    private func list(_ entry: Entry, for opcode: String) throws -> PickleList {
        guard case let .list(list) = entry.value else { throw PickleError("\(opcode) to a \(entry.value.kind)") }
        return list
    }

    private func dict(_ entry: Entry, for opcode: String) throws -> PickleDict {
        guard case let .dict(dict) = entry.value else { throw PickleError("\(opcode) on a \(entry.value.kind)") }
        return dict
    }

    /// Adds key-value pairs to a dict, deepening it as needed.
    private func insert(_ items: [Entry], into dict: PickleDict) throws {
        guard items.count % 2 == 0 else { throw PickleError("a dict given an odd number of items") }
        for index in stride(from: 0, to: items.count, by: 2) {
            dict.entries.append((items[index].value, items[index + 1].value))
            dict.depth = max(dict.depth, try checked(1 + max(depth(items[index]), depth(items[index + 1]))))
        }
    }

    private mutating func run() throws -> PickleValue {
        while true {
            let opcode = try byte()
            switch opcode {
            case 0x80: _ = try byte()  // PROTO
            case 0x95: _ = try take(8)  // FRAME
            case 0x2E:  // STOP
                guard stack.count == 1, marks.isEmpty else {
                    throw PickleError("STOP with \(stack.count) values on the stack")
                }
                return stack[0].value
            case 0x28: marks.append(stack.count)  // MARK
            case 0x30: _ = try popEntry()  // POP
            case 0x31: _ = try popToMark()  // POP_MARK
            case 0x32: stack.append(try top())  // DUP
            case 0x4E: try push(.none)  // NONE
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4A: try push(.int(Int(Int32(bitPattern: UInt32(try unsigned(4))))))  // BININT
            case 0x4B: try push(.int(Int(try byte())))  // BININT1
            case 0x4D: try push(.int(Int(try unsigned(2))))  // BININT2
            case 0x8A:  // LONG1
                let count = Int(try byte())
                guard count <= 8 else { throw PickleError("integer of \(count) bytes is too large") }
                let raw = try take(count)
                var value: Int64 = 0
                for (index, b) in raw.enumerated() { value |= Int64(b) << (8 * Int64(index)) }
                if count > 0 && count < 8 && raw.last.map({ $0 & 0x80 != 0 }) == true {
                    value -= Int64(1) << (8 * Int64(count))
                }
                try push(.int(Int(value)))
            case 0x49:  // INT (text)
                let text = try line()
                if text == "01" {
                    try push(.bool(true))
                } else if text == "00" {
                    try push(.bool(false))
                } else {
                    guard let value = Int(text) else { throw PickleError("bad INT '\(text)'") }
                    try push(.int(value))
                }
            case 0x47: try push(.float(Double(bitPattern: try unsigned(8).byteSwapped)))  // BINFLOAT (big-endian)
            case 0x58: try push(.string(try string(try take(Int(try unsigned(4))))))  // BINUNICODE
            case 0x8C: try push(.string(try string(try take(Int(try byte())))))  // SHORT_BINUNICODE
            case 0x8D:  // BINUNICODE8
                let count = try unsigned(8)
                guard count <= UInt64(bytes.count) else { throw PickleError("string longer than the file") }
                try push(.string(try string(try take(Int(count)))))
            case 0x55: try push(.string(String(decoding: try take(Int(try byte())), as: UTF8.self)))  // SHORT_BINSTRING
            case 0x54: try push(.string(String(decoding: try take(Int(try unsigned(4))), as: UTF8.self)))  // BINSTRING
            case 0x43: try push(.bytes(Array(try take(Int(try byte())))))  // SHORT_BINBYTES
            case 0x42: try push(.bytes(Array(try take(Int(try unsigned(4))))))  // BINBYTES
            case 0x29: try push(.tuple([]))  // EMPTY_TUPLE
            case 0x74:  // TUPLE
                let items = try popToMark()
                try push(.tuple(items.map(\.value)), containing: items)
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                var items: [Entry] = []
                for _ in 0..<Int(opcode - 0x84) { items.insert(try popEntry(), at: 0) }
                try push(.tuple(items.map(\.value)), containing: items)
            case 0x5D: try push(.list(made(PickleList())))  // EMPTY_LIST
            case 0x6C:  // LIST
                let items = try popToMark()
                let list = made(PickleList())
                list.items = items.map(\.value)
                list.depth = try checked(1 + (items.map(depth).max() ?? 0))
                try push(.list(list))
            case 0x61, 0x65:  // APPEND, APPENDS
                let items = opcode == 0x61 ? [try popEntry()] : try popToMark()
                let list = try list(try top(), for: "APPEND")
                list.items += items.map(\.value)
                list.depth = max(list.depth, try checked(1 + (items.map(depth).max() ?? 0)))
            case 0x7D: try push(.dict(made(PickleDict())))  // EMPTY_DICT
            case 0x64:  // DICT
                let items = try popToMark()
                let dict = made(PickleDict())
                try insert(items, into: dict)
                try push(.dict(dict))
            case 0x73:  // SETITEM
                let value = try popEntry(), key = try popEntry()
                try insert([key, value], into: try dict(try top(), for: "SETITEM"))
            case 0x75:  // SETITEMS
                let items = try popToMark()
                try insert(items, into: try dict(try top(), for: "SETITEMS"))
            case 0x71: memo[Int(try byte())] = try top()  // BINPUT
            case 0x72: memo[Int(try unsigned(4))] = try top()  // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let index = Int(opcode == 0x68 ? UInt64(try byte()) : try unsigned(4))
                guard let entry = memo[index] else { throw PickleError("memo \(index) is empty") }
                stack.append(entry)
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                try push(.global(module: module, name: name))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.string, let n = name.string else {
                    throw PickleError("STACK_GLOBAL needs two strings")
                }
                try push(.global(module: m, name: n))
            case 0x52, 0x81:  // REDUCE, NEWOBJ
                let arguments = try popEntry(), callable = try popEntry()
                guard case let .tuple(list) = arguments.value else {
                    throw PickleError("\(opcode == 0x52 ? "REDUCE" : "NEWOBJ") arguments are a \(arguments.value.kind)")
                }
                let result =
                    opcode == 0x52
                    ? try reduce(callable.value, list) : .object(callable: callable.value, arguments: list, state: nil)
                if case let .dict(dict) = result { _ = made(dict) }
                if case .object = result {
                    try push(result, containing: [arguments, callable])
                } else {
                    try push(result)
                }
            case 0x62:  // BUILD: the state is kept on an object; on anything else nothing here needs it
                let state = try popEntry(), object = try popEntry()
                if case let .object(callable, arguments, nil) = object.value {
                    try push(
                        .object(callable: callable, arguments: arguments, state: state.value),
                        containing: [object, state])
                } else {
                    stack.append(object)
                }
            case 0x51:  // BINPERSID
                try push(try persistentLoad(try pop()))
            default:
                throw PickleError(String(format: "unsupported opcode 0x%02X at byte %d", opcode, position - 1))
            }
        }
    }

    private func reduce(_ callable: PickleValue, _ arguments: [PickleValue]) throws -> PickleValue {
        guard case let .global(module, name) = callable else {
            return .object(callable: callable, arguments: arguments, state: nil)
        }
        switch (module, name) {
        case ("collections", "OrderedDict"):
            return .dict(PickleDict())
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            guard arguments.count >= 4, case let .storage(storage) = arguments[0], case let .int(offset) = arguments[1],
                case let .tuple(size) = arguments[2], case let .tuple(stride) = arguments[3]
            else {
                throw PickleError("\(name) with unexpected arguments")
            }
            let shape = try size.map { value -> Int in
                guard case let .int(v) = value, v >= 0 else {
                    throw PickleError("tensor size is not a list of non-negative ints")
                }
                return v
            }
            let strides = try stride.map { value -> Int in
                guard case let .int(v) = value, v >= 0 else {
                    throw PickleError("tensor stride is not a list of non-negative ints")
                }
                return v
            }
            guard shape.count == strides.count, offset >= 0 else {
                throw PickleError("tensor size and stride differ in rank")
            }
            return .tensor(TensorReference(storage: storage, offset: offset, shape: shape, strides: strides))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard let data = arguments.first else { throw PickleError("\(name) without data") }
            return data
        default:
            return .object(callable: callable, arguments: arguments, state: nil)
        }
    }

    private func persistentLoad(_ id: PickleValue) throws -> PickleValue {
        guard case let .tuple(parts) = id, parts.count >= 5, parts[0].string == "storage",
            case let .global(module, name) = parts[1], let key = parts[2].string, case let .int(count) = parts[4],
            count >= 0
        else {
            throw PickleError("unsupported persistent id (not a torch storage)")
        }
        guard module == "torch", let type = StorageType(rawValue: name) else {
            throw PickleError("unsupported storage type \(module).\(name)")
        }
        return .storage(StorageReference(type: type, key: key, count: count))
    }
}
