import CVulkan
import Foundation
import Synchronization

/// One message from the Vulkan validation layer (or the loader) through the debug messenger.
public struct ValidationMessage: Sendable, CustomStringConvertible, Equatable {
    /// `error`, `warning`, `info` or `verbose`.
    public let severity: String
    /// The layer's message ID, such as `SYNC-HAZARD-READ-AFTER-WRITE` or a VUID.
    public let id: String
    public let text: String

    public var description: String { "[\(severity)] \(id): \(text)" }
}

/// Collects validation messages; the debug messenger's callback writes here from any thread.
final class ValidationLog: Sendable {
    private let messages = Mutex<[ValidationMessage]>([])

    func append(_ message: ValidationMessage) { messages.withLock { $0.append(message) } }
    var all: [ValidationMessage] { messages.withLock { $0 } }
}

/// How much checking the Vulkan validation layer should do.
public enum ValidationMode: Sendable {
    /// No layer.
    case off
    /// VK_LAYER_KHRONOS_validation with synchronization validation; fail if the layer is not installed.
    case required
}

/// A Vulkan instance: the loader, optionally the validation layer and its debug messenger, and the devices it sees.
///
/// With validation on, every message of warning or error severity is collected and can be read with
/// ``validationMessages``; tests assert that list is empty after their devices are gone.
public final class VulkanInstance {
    let handle: VkInstance
    private var messenger: VkDebugUtilsMessengerEXT?
    private let log = ValidationLog()
    private let logReference: Unmanaged<ValidationLog>
    /// Whether the validation layer (with synchronization validation) is active.
    public let validationEnabled: Bool
    /// The instance-level API version the loader offers.
    public let loaderVersion: UInt32
    /// The API version this instance asks for (the loader's, at most 1.3). A device is used at the lower of this and
    /// its own version.
    public let apiVersion: UInt32

    /// Creates an instance.
    /// - Parameter validation: whether to load VK_LAYER_KHRONOS_validation with synchronization validation.
    public init(validation: ValidationMode = .off) throws {
        var loaderVersion: UInt32 = vulkanVersion(1, 0)
        if let enumerate = vkGetInstanceProcAddr(nil, "vkEnumerateInstanceVersion") {
            let function = unsafeBitCast(enumerate, to: PFN_vkEnumerateInstanceVersion.self)
            try check(function(&loaderVersion), "vkEnumerateInstanceVersion")
        }
        self.loaderVersion = loaderVersion
        let apiVersion = min(loaderVersion & 0x0FFF_F000, vulkanVersion(1, 3))
        self.apiVersion = apiVersion
        if loaderVersion < vulkanVersion(1, 1) {
            throw VulkanSetupError.loaderTooOld(version: VulkanVersion(loaderVersion).description)
        }

        let validate: Bool
        switch validation {
        case .required:
            guard try Self.layerNames().contains("VK_LAYER_KHRONOS_validation") else {
                throw VulkanSetupError.validationLayerMissing
            }
            validate = true
        default:
            validate = false
        }
        self.validationEnabled = validate
        logReference = Unmanaged.passRetained(log)

        let available = try Self.extensionNames()
        var extensions: [String] = []
        if available.contains("VK_KHR_portability_enumeration") { extensions.append("VK_KHR_portability_enumeration") }
        if validate { extensions += ["VK_EXT_debug_utils", "VK_EXT_validation_features"] }
        let layers = validate ? ["VK_LAYER_KHRONOS_validation"] : []

        var instance: VkInstance?
        let result: VkResult = withCStringArray(layers) { layerNames in
            withCStringArray(extensions) { extensionNames in
                "bossnet".withCString { appName in
                    var application = VkApplicationInfo()
                    application.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO
                    application.pApplicationName = appName
                    application.pEngineName = appName
                    application.apiVersion = apiVersion
                    var enabledFeatures = [VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT]
                    return withUnsafePointer(to: &application) { applicationPointer in
                        enabledFeatures.withUnsafeMutableBufferPointer { featureList in
                            var features = VkValidationFeaturesEXT()
                            features.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT
                            features.enabledValidationFeatureCount = UInt32(featureList.count)
                            features.pEnabledValidationFeatures = UnsafePointer(featureList.baseAddress)
                            return withUnsafePointer(to: &features) { featuresPointer in
                                var info = VkInstanceCreateInfo()
                                info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
                                info.pApplicationInfo = applicationPointer
                                if extensions.contains("VK_KHR_portability_enumeration") {
                                    info.flags = VkInstanceCreateFlags(
                                        VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR.rawValue)
                                }
                                info.enabledLayerCount = UInt32(layers.count)
                                info.ppEnabledLayerNames = layerNames
                                info.enabledExtensionCount = UInt32(extensions.count)
                                info.ppEnabledExtensionNames = extensionNames
                                if validate { info.pNext = UnsafeRawPointer(featuresPointer) }
                                return vkCreateInstance(&info, nil, &instance)
                            }
                        }
                    }
                }
            }
        }
        if result == VK_ERROR_INCOMPATIBLE_DRIVER {
            logReference.release()
            throw VulkanSetupError.noDevice
        }
        do {
            try check(result, "vkCreateInstance")
        } catch {
            logReference.release()
            throw error
        }
        guard let instance else {
            logReference.release()
            throw VulkanError(call: "vkCreateInstance", result: VK_ERROR_INITIALIZATION_FAILED)
        }
        handle = instance
        // Every stored property is set now, so a throw from here on runs deinit, which destroys the instance.
        if validate { try installMessenger() }
    }

    deinit {
        if let messenger, let destroy = vkGetInstanceProcAddr(handle, "vkDestroyDebugUtilsMessengerEXT") {
            unsafeBitCast(destroy, to: PFN_vkDestroyDebugUtilsMessengerEXT.self)(handle, messenger, nil)
        }
        vkDestroyInstance(handle, nil)
        logReference.release()
    }

    /// Every warning and error the validation layer has reported so far (empty when validation is off).
    public var validationMessages: [ValidationMessage] { log.all }

    private func installMessenger() throws {
        guard let create = vkGetInstanceProcAddr(handle, "vkCreateDebugUtilsMessengerEXT") else {
            throw VulkanError(
                call: "vkGetInstanceProcAddr(vkCreateDebugUtilsMessengerEXT)", result: VK_ERROR_EXTENSION_NOT_PRESENT)
        }
        var info = VkDebugUtilsMessengerCreateInfoEXT()
        info.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT
        info.messageSeverity = VkDebugUtilsMessageSeverityFlagsEXT(
            VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT.rawValue
                | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue)
        info.messageType = VkDebugUtilsMessageTypeFlagsEXT(
            VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT.rawValue
                | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT.rawValue
                | VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT.rawValue)
        info.pfnUserCallback = debugCallback
        info.pUserData = logReference.toOpaque()
        var messenger: VkDebugUtilsMessengerEXT?
        try check(
            unsafeBitCast(create, to: PFN_vkCreateDebugUtilsMessengerEXT.self)(handle, &info, nil, &messenger),
            "vkCreateDebugUtilsMessengerEXT")
        self.messenger = messenger
    }

    /// The names of the instance layers installed on this machine.
    public static func layerNames() throws -> Set<String> {
        var count: UInt32 = 0
        try check(vkEnumerateInstanceLayerProperties(&count, nil), "vkEnumerateInstanceLayerProperties")
        var layers = [VkLayerProperties](repeating: VkLayerProperties(), count: Int(count))
        try check(vkEnumerateInstanceLayerProperties(&count, &layers), "vkEnumerateInstanceLayerProperties")
        return Set(layers.prefix(Int(count)).map { string(fromCArray: $0.layerName) })
    }

    static func extensionNames() throws -> Set<String> {
        var count: UInt32 = 0
        try check(vkEnumerateInstanceExtensionProperties(nil, &count, nil), "vkEnumerateInstanceExtensionProperties")
        var properties = [VkExtensionProperties](repeating: VkExtensionProperties(), count: Int(count))
        try check(
            vkEnumerateInstanceExtensionProperties(nil, &count, &properties), "vkEnumerateInstanceExtensionProperties")
        return Set(properties.prefix(Int(count)).map { string(fromCArray: $0.extensionName) })
    }

    /// Every Vulkan device the loader sees, in the loader's order (the numbering `--device N` uses).
    public func physicalDevices() throws -> [PhysicalDevice] {
        var count: UInt32 = 0
        try check(vkEnumeratePhysicalDevices(handle, &count, nil), "vkEnumeratePhysicalDevices")
        var handles = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        try check(vkEnumeratePhysicalDevices(handle, &count, &handles), "vkEnumeratePhysicalDevices")
        return try handles.prefix(Int(count)).enumerated().compactMap { index, handle in
            try handle.map { try PhysicalDevice(handle: $0, index: index, instanceVersion: apiVersion) }
        }
    }
}

private func debugCallback(
    severity: VkDebugUtilsMessageSeverityFlagBitsEXT,
    types: VkDebugUtilsMessageTypeFlagsEXT,
    data: UnsafePointer<VkDebugUtilsMessengerCallbackDataEXT>?,
    userData: UnsafeMutableRawPointer?
) -> VkBool32 {
    guard let data, let userData else { return VkBool32(VK_FALSE) }
    let log = Unmanaged<ValidationLog>.fromOpaque(userData).takeUnretainedValue()
    let level: String
    switch severity {
    case VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT: level = "error"
    case VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT: level = "warning"
    case VK_DEBUG_UTILS_MESSAGE_SEVERITY_INFO_BIT_EXT: level = "info"
    default: level = "verbose"
    }
    let id = data.pointee.pMessageIdName.map { String(cString: $0) } ?? "\(data.pointee.messageIdNumber)"
    let text = data.pointee.pMessage.map { String(cString: $0) } ?? ""
    log.append(ValidationMessage(severity: level, id: id, text: text))
    return VkBool32(VK_FALSE)
}

/// A Vulkan version number, printed as major.minor.patch.
public struct VulkanVersion: CustomStringConvertible, Sendable, Equatable, Comparable {
    public let raw: UInt32
    public init(_ raw: UInt32) { self.raw = raw }
    public var major: UInt32 { (raw >> 22) & 0x7F }
    public var minor: UInt32 { (raw >> 12) & 0x3FF }
    public var patch: UInt32 { raw & 0xFFF }
    public var description: String { "\(major).\(minor).\(patch)" }
    public static func < (a: Self, b: Self) -> Bool { a.raw & 0x1FFF_FFFF < b.raw & 0x1FFF_FFFF }
}
