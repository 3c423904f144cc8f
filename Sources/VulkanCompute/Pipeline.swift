import CVulkan
import Foundation

/// The kind of resource a shader binding reads or writes.
public enum BindingKind: Sendable, Equatable {
    /// `buffer` in GLSL: read and write.
    case storageBuffer
    /// `samplerBuffer` / `uniform textureBuffer` in GLSL, read with texelFetch.
    case uniformTexelBuffer
    /// `imageBuffer` in GLSL (a storage texel buffer), read with imageLoad.
    case storageTexelBuffer

    var descriptorType: VkDescriptorType {
        switch self {
        case .storageBuffer: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
        case .uniformTexelBuffer: VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
        case .storageTexelBuffer: VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER
        }
    }

    /// Whether a binding of this kind takes a texel view.
    public var takesTexelView: Bool { self != .storageBuffer }
}

/// A value for a specialization constant (`layout(constant_id = N) const ...` in GLSL); all are 32 bits wide.
public enum SpecializationValue: Sendable, Hashable {
    case int(Int32)
    case uint(UInt32)
    case float(Float)
    case bool(Bool)

    /// The type a shader must declare for this value.
    public var type: SpecializationType {
        switch self {
        case .int: .int
        case .uint: .uint
        case .float: .float
        case .bool: .bool
        }
    }

    var bits: UInt32 {
        switch self {
        case let .int(value): UInt32(bitPattern: value)
        case let .uint(value): value
        case let .float(value): value.bitPattern
        case let .bool(value): value ? 1 : 0
        }
    }
}

/// A compute pipeline: one SPIR-V kernel with its descriptor set layout, push-constant range and specialization.
public final class ComputePipeline {
    public let device: VulkanDevice
    /// The kernel's name, for errors and profiles.
    public let name: String
    /// What each binding (0, 1, ...) of descriptor set 0 holds.
    public let bindings: [BindingKind]
    /// Size in bytes of the push-constant block (0 for none).
    public let pushConstantSize: Int
    let setLayout: VkDescriptorSetLayout
    let layout: VkPipelineLayout
    let handle: VkPipeline

    /// The kernel's interface read from its SPIR-V, after checking that Swift's side agrees with it: the push-constant
    /// block's size, and every specialization constant's id and type.
    private static func checkedInterface(
        name: String, spirv: [UInt32], pushConstantSize: Int, specialization: [UInt32: SpecializationValue]
    ) throws -> SPIRVReflection {
        let reflection: SPIRVReflection
        do { reflection = try SPIRVReflection(spirv: spirv) } catch {
            throw VulkanSetupError.kernelInterfaceMismatch(kernel: name, .invalidSPIRV("\(error)"))
        }
        guard reflection.pushConstantSize == pushConstantSize else {
            throw VulkanSetupError.kernelInterfaceMismatch(
                kernel: name, .pushConstantSize(shader: reflection.pushConstantSize, given: pushConstantSize))
        }
        let declared = reflection.specializationConstants
        if let (id, value) = specialization.sorted(by: { $0.key < $1.key }).first(where: {
            declared[$0.key] != $0.value.type
        }) {
            throw VulkanSetupError.kernelInterfaceMismatch(
                kernel: name, .specialization(id: id, shader: declared[id], given: value.type))
        }
        return reflection
    }

    /// Creates the pipeline from SPIR-V words. The descriptor layout is read from the SPIR-V; `pushConstantSize`
    /// (the size of the Swift mirror of the shader's push-constant block) must equal the block's size in the SPIR-V.
    /// The device's pipeline cache makes creating the same pipeline again (also in a later process) cheap.
    public init(
        device: VulkanDevice, name: String, spirv: [UInt32], pushConstantSize: Int = 0,
        specialization: [UInt32: SpecializationValue] = [:]
    ) throws {
        let reflection = try Self.checkedInterface(
            name: name, spirv: spirv, pushConstantSize: pushConstantSize, specialization: specialization)
        try Self.checkFits(
            reflection, on: device, name: name, pushConstantSize: pushConstantSize,
            specialization: specialization)
        let bindings = reflection.bindings
        self.device = device
        self.name = name
        self.bindings = bindings
        self.pushConstantSize = pushConstantSize
        let vkDevice = device.handle

        // Shader module (needed only while the pipeline is created).
        var moduleInfo = VkShaderModuleCreateInfo()
        moduleInfo.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO
        var module: VkShaderModule?
        try spirv.withUnsafeBufferPointer { words in
            moduleInfo.codeSize = words.count * 4
            moduleInfo.pCode = words.baseAddress
            try check(vkCreateShaderModule(vkDevice, &moduleInfo, nil, &module), "vkCreateShaderModule(\(name))")
        }
        guard let module else {
            throw VulkanError(call: "vkCreateShaderModule", result: VK_ERROR_INITIALIZATION_FAILED)
        }
        defer { vkDestroyShaderModule(vkDevice, module, nil) }

        let setLayout = try Self.createSetLayout(bindings, device: vkDevice, name: name)

        var pushRange = VkPushConstantRange()
        pushRange.stageFlags = VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
        pushRange.size = UInt32(pushConstantSize)
        var pipelineLayout: VkPipelineLayout?
        var layoutInfo = VkPipelineLayoutCreateInfo()
        layoutInfo.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO
        var setLayouts: [VkDescriptorSetLayout?] = [setLayout]
        let layoutResult: VkResult = setLayouts.withUnsafeMutableBufferPointer { setLayoutList in
            withUnsafePointer(to: &pushRange) { pushPointer in
                layoutInfo.setLayoutCount = 1
                layoutInfo.pSetLayouts = UnsafePointer(setLayoutList.baseAddress)
                if pushConstantSize > 0 {
                    layoutInfo.pushConstantRangeCount = 1
                    layoutInfo.pPushConstantRanges = pushPointer
                }
                return vkCreatePipelineLayout(vkDevice, &layoutInfo, nil, &pipelineLayout)
            }
        }
        guard layoutResult == VK_SUCCESS, let pipelineLayout else {
            vkDestroyDescriptorSetLayout(vkDevice, setLayout, nil)
            throw VulkanError(call: "vkCreatePipelineLayout(\(name))", result: layoutResult)
        }

        var pipeline: VkPipeline?
        let pipelineResult = Self.createPipeline(
            module: module, layout: pipelineLayout, specialization: specialization, device: device, into: &pipeline)
        guard pipelineResult == VK_SUCCESS, let pipeline else {
            vkDestroyPipelineLayout(vkDevice, pipelineLayout, nil)
            vkDestroyDescriptorSetLayout(vkDevice, setLayout, nil)
            throw VulkanError(call: "vkCreateComputePipelines(\(name))", result: pipelineResult)
        }
        self.setLayout = setLayout
        self.layout = pipelineLayout
        self.handle = pipeline
    }

    /// Refuses a kernel the device cannot run: a push-constant block, workgroup or descriptor count past its limits,
    /// or a feature it lacks.
    private static func checkFits(
        _ reflection: SPIRVReflection, on device: VulkanDevice, name: String, pushConstantSize: Int,
        specialization: [UInt32: SpecializationValue]
    ) throws {
        let maxPush = device.limits.maxPushConstantsSize
        guard pushConstantSize <= maxPush else {
            throw VulkanSetupError.limitExceeded(
                limit: "maxPushConstantsSize", requested: pushConstantSize, allowed: maxPush,
                by: "kernel '\(name)'")
        }
        let missing = reflection.needs.missing(features: device.enabledFeatures, limits: device.limits)
        guard missing.isEmpty else {
            throw VulkanSetupError.kernelNeedsFeatures(kernel: name, missing: missing)
        }
        // Constant 0 is every kernel's workgroup size in x.
        if case let .uint(workgroup)? = specialization[0], Int(workgroup) > device.limits.maxWorkgroupX {
            throw VulkanSetupError.limitExceeded(
                limit: "maxComputeWorkGroupInvocations", requested: Int(workgroup),
                allowed: device.limits.maxWorkgroupX, by: "kernel '\(name)'")
        }
        let bindings = reflection.bindings
        let storageBuffers = bindings.filter { $0 == .storageBuffer }.count
        guard storageBuffers <= device.limits.maxPerStageDescriptorStorageBuffers else {
            throw VulkanSetupError.limitExceeded(
                limit: "maxPerStageDescriptorStorageBuffers", requested: storageBuffers,
                allowed: device.limits.maxPerStageDescriptorStorageBuffers, by: "kernel '\(name)'")
        }
        let texelBuffers = bindings.filter { $0 == .uniformTexelBuffer }.count
        guard texelBuffers <= device.limits.maxPerStageDescriptorSampledImages else {
            throw VulkanSetupError.limitExceeded(
                limit: "maxPerStageDescriptorSampledImages", requested: texelBuffers,
                allowed: device.limits.maxPerStageDescriptorSampledImages, by: "kernel '\(name)'")
        }
        let storageTexelBuffers = bindings.filter { $0 == .storageTexelBuffer }.count
        guard storageTexelBuffers <= device.limits.maxPerStageDescriptorStorageImages else {
            throw VulkanSetupError.limitExceeded(
                limit: "maxPerStageDescriptorStorageImages", requested: storageTexelBuffers,
                allowed: device.limits.maxPerStageDescriptorStorageImages, by: "kernel '\(name)'")
        }
    }

    /// The descriptor set layout: binding i of set 0 is bindings[i], for the compute stage.
    private static func createSetLayout(_ bindings: [BindingKind], device vkDevice: VkDevice, name: String) throws
        -> VkDescriptorSetLayout
    {
        let layoutBindings = bindings.enumerated().map { index, kind in
            var binding = VkDescriptorSetLayoutBinding()
            binding.binding = UInt32(index)
            binding.descriptorType = kind.descriptorType
            binding.descriptorCount = 1
            binding.stageFlags = VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
            return binding
        }
        var setLayout: VkDescriptorSetLayout?
        try layoutBindings.withUnsafeBufferPointer { list in
            var info = VkDescriptorSetLayoutCreateInfo()
            info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO
            info.bindingCount = UInt32(list.count)
            info.pBindings = list.baseAddress
            try check(
                vkCreateDescriptorSetLayout(vkDevice, &info, nil, &setLayout), "vkCreateDescriptorSetLayout(\(name))")
        }
        guard let setLayout else {
            throw VulkanError(call: "vkCreateDescriptorSetLayout", result: VK_ERROR_INITIALIZATION_FAILED)
        }
        return setLayout

    }

    /// Creates the compute pipeline through the device's pipeline cache; specialization constants sorted by id, so
    /// the same request always yields the same pipeline key.
    private static func createPipeline(
        module: VkShaderModule, layout pipelineLayout: VkPipelineLayout, specialization: [UInt32: SpecializationValue],
        device: VulkanDevice, into pipeline: inout VkPipeline?
    ) -> VkResult {
        let vkDevice = device.handle
        let constants = specialization.sorted { $0.key < $1.key }
        let entries = constants.enumerated().map { position, constant in
            VkSpecializationMapEntry(constantID: constant.key, offset: UInt32(position * 4), size: 4)
        }
        let data = constants.map(\.value.bits)
        return entries.withUnsafeBufferPointer { entryList in
            data.withUnsafeBytes { dataBytes in
                var specializationInfo = VkSpecializationInfo()
                specializationInfo.mapEntryCount = UInt32(entryList.count)
                specializationInfo.pMapEntries = entryList.baseAddress
                specializationInfo.dataSize = dataBytes.count
                specializationInfo.pData = dataBytes.baseAddress
                return withUnsafePointer(to: &specializationInfo) { specializationPointer in
                    "main".withCString { entryPoint in
                        var stage = VkPipelineShaderStageCreateInfo()
                        stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
                        stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
                        stage.module = module
                        stage.pName = entryPoint
                        stage.pSpecializationInfo = constants.isEmpty ? nil : specializationPointer
                        var info = VkComputePipelineCreateInfo()
                        info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
                        info.stage = stage
                        info.layout = pipelineLayout
                        return vkCreateComputePipelines(vkDevice, device.pipelineCache, 1, &info, nil, &pipeline)
                    }
                }
            }
        }
    }

    deinit {
        vkDestroyPipeline(device.handle, handle, nil)
        vkDestroyPipelineLayout(device.handle, layout, nil)
        vkDestroyDescriptorSetLayout(device.handle, setLayout, nil)
    }
}
