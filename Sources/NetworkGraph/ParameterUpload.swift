import Foundation
import Kernels
import VulkanCompute

/// One parameter array as the kernels read it (packed, with BatchNorm folded in), and the node it belongs to.
struct PackedParameter: Sendable {
    /// The values; empty in a dry lowering, which needs only the sizes.
    var values: [Float]
    let count: Int
    /// Bytes of one value on the device: the activations' size, or 4 for the arrays read as float32 on every path.
    var elementBytes: Int
    let node: Int

    var bytes: Int { count * elementBytes }
}

/// Where each parameter array lives on the device: the arrays one after another, each at a 16-byte-padded size and a
/// 256-byte-aligned end, a new buffer whenever the next array would pass `bufferLimit`.
struct ParameterLayout: Sendable {
    /// Each array's buffer and byte offset, in the order of the lowering's parameters.
    let places: [(buffer: Int, offset: Int)]
    /// Each buffer's size in bytes.
    let bufferSizes: [Int]
    /// Each array's bytes as bound (16-byte padded).
    let boundBytes: [Int]

    init(_ parameters: [PackedParameter], bufferLimit: Int) {
        var places: [(buffer: Int, offset: Int)] = []
        var sizes = [0]
        for parameter in parameters {
            let bytes = MemoryPlan.padded(parameter.bytes)
            if sizes[sizes.count - 1] + bytes > bufferLimit && sizes[sizes.count - 1] != 0 { sizes.append(0) }
            places.append((sizes.count - 1, sizes[sizes.count - 1]))
            sizes[sizes.count - 1] = MemoryPlan.aligned(sizes[sizes.count - 1] + bytes)
        }
        self.places = places
        bufferSizes = sizes
        boundBytes = parameters.map { MemoryPlan.padded($0.bytes) }
    }

    /// Bytes of all parameter buffers.
    var totalBytes: Int { bufferSizes.reduce(0, +) }

    /// Makes the buffers and writes each array straight into its buffer (or that buffer's one staging buffer), as
    /// float32 or as halves; the padding between arrays stays zero.
    func upload(_ parameters: [PackedParameter], to device: VulkanDevice) throws -> [VulkanBuffer] {
        try bufferSizes.enumerated().map { index, bytes in
            let buffer = try VulkanBuffer(
                device: device, size: max(bytes, MemoryPlan.alignment),
                label: bufferSizes.count > 1 ? "weights \(index)" : "weights")
            try buffer.write { memory in
                memory.initializeMemory(as: UInt8.self, repeating: 0)
                for (parameter, place) in zip(parameters, places) where place.buffer == index {
                    Self.copy(parameter, into: memory, at: place.offset)
                }
            }
            return buffer
        }
    }

    private static func copy(_ parameter: PackedParameter, into memory: UnsafeMutableRawBufferPointer, at offset: Int) {
        func copy(_ bytes: UnsafeRawBufferPointer) {
            UnsafeMutableRawBufferPointer(rebasing: memory[offset..<(offset + bytes.count)]).copyMemory(from: bytes)
        }
        if parameter.elementBytes == 2 {
            parameter.values.map(Half.bits).withUnsafeBytes(copy)
        } else {
            parameter.values.withUnsafeBytes(copy)
        }
    }
}
