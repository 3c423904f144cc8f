import COpenSSL
import Foundation

/// What identifies a model's weights: the SHA-256 of the values bound to the model. For every entry the model
/// declares (`num_batches_tracked` aside), in the model's state-dict order, the hash takes the name's UTF-8 bytes, a
/// zero byte, and the values as little-endian float32. The same weights give the same digest in any file that holds
/// them (a .pth, its safetensors conversion, a file written by `bossnet weights synthetic`); other weights under the
/// same file name give another.
public struct WeightsDigest: Hashable, Sendable, Codable, CustomStringConvertible {
    /// 64 lowercase hexadecimal digits.
    public let hex: String

    /// The first 12 digits, for people (the JSON outputs and predictions files carry all 64).
    public var short: String { String(hex.prefix(12)) }

    public var description: String { "sha256:\(short)" }

    public init(hex: String) { self.hex = hex }

    public init(from decoder: any Decoder) throws { hex = try decoder.singleValueContainer().decode(String.self) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }

    /// The digest of `tensors`, in the order given (see the type's documentation).
    public init(_ tensors: [NamedTensor]) throws {
        precondition(UInt32(1).littleEndian == 1, "the digest hashes float32 as this machine stores it: little-endian")
        guard let context = EVP_MD_CTX_new() else { throw DigestError("OpenSSL could not allocate a digest context") }
        defer { EVP_MD_CTX_free(context) }
        func check(_ result: Int32, _ call: String) throws {
            guard result == 1 else { throw DigestError("OpenSSL's \(call) failed") }
        }
        try check(EVP_DigestInit_ex(context, EVP_sha256(), nil), "EVP_DigestInit_ex")
        for tensor in tensors {
            let name = Array(tensor.name.utf8) + [0]
            try check(name.withUnsafeBytes { EVP_DigestUpdate(context, $0.baseAddress, $0.count) }, "EVP_DigestUpdate")
            try check(
                tensor.values.withUnsafeBytes { EVP_DigestUpdate(context, $0.baseAddress, $0.count) },
                "EVP_DigestUpdate")
        }
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        try check(EVP_DigestFinal_ex(context, &digest, &length), "EVP_DigestFinal_ex")
        hex = digest.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }
}

/// The digest could not be computed (OpenSSL failed).
struct DigestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
