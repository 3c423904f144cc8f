import Kernels
import Testing
import TestSupport
import VulkanCompute

@Test("every embedded kernel is valid SPIR-V with a readable interface and builds a pipeline")
func everyKernelBuilds() throws {
    #expect(ShaderLibrary.names.contains("add"))
    try withValidatedDevice { device in
        for name in ShaderLibrary.names {
            let spirv = try ShaderLibrary.spirv(named: name)
            #expect(spirv.first == 0x0723_0203, "\(name) does not start with the SPIR-V magic number")
            let reflection = try SPIRVReflection(spirv: spirv)
            #expect(reflection.pushConstantSize <= 128, "\(name): push constants over the 128 bytes every device allows")
            _ = try ComputePipeline(device: device, name: name, spirv: spirv, pushConstantSize: reflection.pushConstantSize)
        }
    }
}

@Test("push-constant mirrors match their shaders and fit in 128 bytes")
func pushConstantMirrors() throws {
    let add = try SPIRVReflection(spirv: ShaderLibrary.spirv(named: "add"))
    #expect(add.pushConstantSize == MemoryLayout<Add.PushConstants>.size)
    #expect(MemoryLayout<Add.PushConstants>.size <= 128)
    #expect(add.bindings == [.uniformTexelBuffer, .uniformTexelBuffer, .storageBuffer])
}

@Test("an unknown kernel name is an error that names it")
func unknownKernel() {
    #expect(throws: VulkanSetupError.unknownKernel("no_such_kernel")) {
        try ShaderLibrary.spirv(named: "no_such_kernel")
    }
}
