import Foundation

/// A named tensor read from a checkpoint, converted to float32 in row-major (C) order.
public struct NamedTensor: Sendable {
    public let name: String
    public let shape: [Int]
    public let values: [Float]
    /// The element type it was stored as ("float32", "float16", ...).
    public let storedType: String

    public init(name: String, shape: [Int], values: [Float], storedType: String = "float32") {
        precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
        self.name = name
        self.shape = shape
        self.values = values
        self.storedType = storedType
    }
}

/// A state dict: tensors by name, in the checkpoint's order.
public struct StateDict: Sendable {
    public let tensors: [NamedTensor]
    private let index: [String: Int]
    /// What the file says about the weights besides the tensors: safetensors' `__metadata__`, or from a .pth the
    /// training arguments' `model` (`args.model` in the authors' layout). ``modelKey`` names the model they are for.
    public let metadata: [String: String]

    /// The metadata key naming the model (a registry name such as `bossnet_T0`, or an architecture's text).
    public static let modelKey = "model"

    /// The model the file names, if it names one.
    public var model: String? { metadata[Self.modelKey] }

    public init(_ tensors: [NamedTensor], metadata: [String: String] = [:]) throws {
        self.metadata = metadata
        var index: [String: Int] = [:]
        for (position, tensor) in tensors.enumerated() {
            guard index[tensor.name] == nil else {
                throw CheckpointError.malformed("the name \(tensor.name) appears twice")
            }
            index[tensor.name] = position
        }
        self.tensors = tensors
        self.index = index
    }

    public subscript(name: String) -> NamedTensor? { index[name].map { tensors[$0] } }
    public var names: [String] { tensors.map(\.name) }
    public var count: Int { tensors.count }
}

/// A checkpoint that cannot be read.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case unreadable(String)
    case legacyFormat
    case unknownFormat
    case malformed(String)
    case noStateDict(String)

    public var description: String {
        switch self {
        case let .unreadable(why): "cannot read the checkpoint: \(why)"
        case .legacyFormat:
            "this is a PyTorch checkpoint in the legacy (pre-1.6) format, which is not supported. Load it in PyTorch and "
                + "save it again with torch.save(obj, path) (PyTorch 1.6 or later writes the zip format), or convert it to safetensors."
        case .unknownFormat:
            "not a PyTorch checkpoint (.pth zip archive) or a safetensors file"
        case let .malformed(why): "the checkpoint is damaged or not what torch.save writes: \(why)"
        case let .noStateDict(why): why
        }
    }
}

/// The most elements one tensor may have (2^28, a gigabyte of float32): a hundred times BossNet's largest tensor, and
/// a bound on what a hostile header can make the reader allocate.
let maximumElements = 1 << 28

/// The product of `values`, or `nil` when it overflows or passes ``maximumElements`` (a hostile header, say).
func checkedProduct(_ values: [Int]) -> Int? {
    var product = 1
    for value in values {
        guard value >= 0 else { return nil }
        let (result, overflow) = product.multipliedReportingOverflow(by: value)
        guard !overflow, result <= maximumElements else { return nil }
        product = result
    }
    return product
}

/// Float conversions of the storage element types.
enum ElementDecoding {
    static func float16(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa * 2^-24.
            let value = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -value : value
        }
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
    }

    static func bfloat16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}
