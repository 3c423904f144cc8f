import CVulkan
import Foundation

/// A Vulkan call that returned an error code.
///
/// Every Vulkan call in this module goes through ``check(_:_:)``, so the error always names the call that failed and
/// the `VkResult` it returned.
public struct VulkanError: Error, CustomStringConvertible, Equatable {
    /// The Vulkan function that failed, for example `vkCreateDevice`.
    public let call: String
    /// The raw `VkResult` value.
    public let result: Int32

    public init(call: String, result: VkResult) {
        self.call = call
        self.result = result.rawValue
    }

    /// The `VkResult`'s name, such as `VK_ERROR_OUT_OF_DEVICE_MEMORY`.
    public var resultName: String { vkResultName(VkResult(rawValue: result)) }

    public var description: String { "\(call) failed with \(resultName) (\(result))" }

    /// Whether the call gave up waiting (`VK_TIMEOUT`).
    public var isTimeout: Bool { result == VK_TIMEOUT.rawValue }
    /// Whether the device was lost (`VK_ERROR_DEVICE_LOST`): a crash, a reset or a removed GPU.
    public var isDeviceLost: Bool { result == VK_ERROR_DEVICE_LOST.rawValue }
}

/// Errors in setting Vulkan up that are not a failed call: something missing on this machine, or a bad request.
public enum VulkanSetupError: Error, CustomStringConvertible, Equatable {
    /// The loader found no Vulkan device at all.
    case noDevice
    /// A device index that does not exist.
    case deviceIndexOutOfRange(index: Int, count: Int)
    /// Validation was required but the Khronos validation layer is not installed.
    case validationLayerMissing
    /// No memory type satisfies a buffer's needs.
    case noSuitableMemoryType(String)
    /// The device has no queue family that can run compute work.
    case noComputeQueue(device: String)
    /// A request past one of the device's limits (``DeviceLimits``): which limit, what was asked, what it allows, and
    /// what asked (a kernel, a buffer).
    case limitExceeded(limit: String, requested: Int, allowed: Int, by: String)
    /// A byte range that does not fit its buffer, or breaks the offset alignment.
    case badRange(buffer: String, offset: Int, bytes: Int, bufferBytes: Int, alignment: Int)
    /// A buffer of no bytes.
    case emptyBuffer(label: String)
    /// A dispatch's grid with an empty dimension, or past the device's workgroup count.
    case workgroupCountOutOfRange(kernel: String, groups: [Int], limits: [Int])
    /// Swift and a kernel's SPIR-V disagree on its interface: a defect in this package, not in the input.
    case kernelInterfaceMismatch(kernel: String, KernelMismatch)
    /// The Vulkan loader is older than 1.1.
    case loaderTooOld(version: String)
    /// The device has no timestamps on its compute queue.
    case noTimestamps(device: String)
    /// A kernel name with no embedded SPIR-V.
    case unknownKernel(String)
    /// A session needs more device memory than the device has (or than ``DeviceOptions/memoryBudgetBytes`` allows):
    /// found before anything is allocated. `largestBatch` is the largest batch that would fit (0: not even one).
    case outOfDeviceMemory(neededBytes: Int, availableBytes: Int, batch: Int, largestBatch: Int)
    /// An earlier submission failed (timed out, or the device was lost): the device takes no more work, since what
    /// it was given may still be pending. Open the device again.
    case deviceUnusable(after: VulkanError)
    /// A kernel needs device features that the device lacks or that were not enabled (or that the minimum-limits
    /// emulation turned off).
    case kernelNeedsFeatures(kernel: String, missing: [String])
    /// A buffer larger than the device allows in one allocation or buffer (``DeviceLimits/maxSingleBuffer``).
    case bufferTooLarge(label: String, bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .noDevice:
            return "No Vulkan device was found. Install a Vulkan driver: on Debian or Ubuntu, "
                + "`apt-get install mesa-vulkan-drivers` gives lavapipe, a Vulkan device that runs on the CPU "
                + "on a machine with a GPU, install its vendor's driver."
        case let .deviceIndexOutOfRange(index, count):
            return
                "Device \(index) does not exist: this machine has \(count) Vulkan device(s), numbered 0 to \(count - 1)."
        case .validationLayerMissing:
            return "VK_LAYER_KHRONOS_validation is not installed, but validation was asked for "
                + "(ValidationMode.required). On Debian or Ubuntu: `apt-get install vulkan-validationlayers`."
        case let .noSuitableMemoryType(what):
            return "No Vulkan memory type fits \(what)."
        case let .noComputeQueue(device):
            return "\(device) has no queue family that supports compute."
        case let .limitExceeded(limit, requested, allowed, by):
            return "\(by) asks for \(requested) where this device's \(limit) allows \(allowed)."
        case let .badRange(buffer, offset, bytes, bufferBytes, alignment):
            return "A range of \(bytes) bytes at offset \(offset) does not fit buffer '\(buffer)' (\(bufferBytes) bytes"
                + (alignment > 1 ? ", offsets a multiple of \(alignment))." : ").")
        case let .emptyBuffer(label):
            return "Buffer '\(label)' has size 0; a buffer needs at least one byte."
        case let .workgroupCountOutOfRange(kernel, groups, limits):
            return
                "Kernel '\(kernel)': \(groups) workgroups is outside this device's limits \(limits) (and each must be at least 1)."
        case let .kernelInterfaceMismatch(kernel, mismatch):
            return "Kernel '\(kernel)': \(mismatch)"
        case let .loaderTooOld(version):
            return
                "The Vulkan loader offers only version \(version); this program needs 1.1. Update the Vulkan loader (libvulkan1)."
        case let .noTimestamps(device):
            return "\(device) has no timestamps on its compute queue."
        case let .unknownKernel(name):
            return "No embedded kernel is named '\(name)'."
        case let .outOfDeviceMemory(needed, available, batch, largest):
            let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
            return
                "Batch \(batch) needs \(mib(needed)) of device memory (weights, activations, input and output); the device's "
                + "memory heap has \(mib(available)). "
                + (largest > 0
                    ? "The largest batch that fits is \(largest)."
                    : "Not even batch 1 fits: choose a smaller input size or a device with more memory.")
        case let .kernelNeedsFeatures(kernel, missing):
            return "Kernel '\(kernel)' needs \(missing.joined(separator: " and ")), which this device does not offer "
                + "(or the limits emulation turned off). Choose another family with --kernels."
        case let .bufferTooLarge(label, bytes, limit):
            return "Buffer '\(label)' would take \(bytes) bytes; this device allows at most \(limit) in one buffer "
                + "(maxMemoryAllocationSize / maxBufferSize). Use a smaller batch or input size."
        case let .deviceUnusable(after):
            let what = after.isTimeout ? "timed out" : after.isDeviceLost ? "lost the device" : "failed"
            return "The device takes no more work: an earlier submission \(what) (\(after)). Open the device again "
                + "(restart the program); with a timeout, allow more time (DeviceOptions.submitTimeoutSeconds)."
        }
    }
}

/// Throws a ``VulkanError`` naming `call` unless `result` is `VK_SUCCESS`.
@inline(__always)
func check(_ result: VkResult, _ call: @autoclosure () -> String) throws(VulkanError) {
    if result != VK_SUCCESS { throw VulkanError(call: call(), result: result) }
}

func vkResultName(_ result: VkResult) -> String {
    switch result {
    case VK_SUCCESS: return "VK_SUCCESS"
    case VK_NOT_READY: return "VK_NOT_READY"
    case VK_TIMEOUT: return "VK_TIMEOUT"
    case VK_EVENT_SET: return "VK_EVENT_SET"
    case VK_EVENT_RESET: return "VK_EVENT_RESET"
    case VK_INCOMPLETE: return "VK_INCOMPLETE"
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY"
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED"
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST"
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED"
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT"
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT"
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT"
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER"
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS"
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED"
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL"
    case VK_ERROR_UNKNOWN: return "VK_ERROR_UNKNOWN"
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY"
    case VK_ERROR_INVALID_EXTERNAL_HANDLE: return "VK_ERROR_INVALID_EXTERNAL_HANDLE"
    case VK_ERROR_FRAGMENTATION: return "VK_ERROR_FRAGMENTATION"
    case VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS: return "VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS"
    case VK_PIPELINE_COMPILE_REQUIRED: return "VK_PIPELINE_COMPILE_REQUIRED"
    case VK_ERROR_VALIDATION_FAILED_EXT: return "VK_ERROR_VALIDATION_FAILED_EXT"
    default: return "VkResult \(result.rawValue)"
    }
}

/// Calls `body` with a C array of C strings that stays valid for the call.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) throws -> R) rethrows -> R
{
    let pointers: [UnsafePointer<CChar>?] = strings.map { UnsafePointer(strdup($0)) }
    defer { for pointer in pointers { free(UnsafeMutablePointer(mutating: pointer)) } }
    return try pointers.withUnsafeBufferPointer { try body(strings.isEmpty ? nil : $0.baseAddress) }
}

/// Reads a fixed-size C character array (as Vulkan structs hold names) as a Swift string.
func string<T>(fromCArray tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Makes a Vulkan version number (VK_MAKE_API_VERSION, which Swift cannot import as a macro).
func vulkanVersion(_ major: UInt32, _ minor: UInt32, _ patch: UInt32 = 0) -> UInt32 {
    (major << 22) | (minor << 12) | patch
}

/// How Swift and a kernel's SPIR-V disagree (``VulkanSetupError/kernelInterfaceMismatch(kernel:_:)``).
public enum KernelMismatch: Sendable, Equatable, CustomStringConvertible {
    /// The push-constant block's size in the shader and the bytes Swift gives.
    case pushConstantSize(shader: Int, given: Int)
    /// The shader's bindings and the resources Swift binds ("storage buffer" or "texel view").
    case bindings(shader: [BindingKind], given: [String])
    /// SPIR-V the reflection cannot read.
    case invalidSPIRV(String)
    /// A texel view of a buffer made on another device.
    case foreignView
    /// Swift gives specialization constant `id` a value of type `given`; the shader declares it as `shader` (`nil`:
    /// no constant has that id).
    case specialization(id: UInt32, shader: SpecializationType?, given: SpecializationType)

    public var description: String {
        switch self {
        case let .pushConstantSize(shader, given):
            "the shader's push constants take \(shader) bytes but Swift gives \(given)."
        case let .bindings(shader, given): "the shader takes bindings \(shader) but was given \(given)."
        case let .invalidSPIRV(reason): "unreadable SPIR-V: \(reason)"
        case .foreignView: "a texel view belongs to another device."
        case let .specialization(id, shader?, given):
            "Swift gives specialization constant \(id) a \(given); the shader declares it a \(shader)."
        case let .specialization(id, nil, given):
            "Swift gives specialization constant \(id) a \(given); the shader declares no constant \(id)."
        }
    }
}
