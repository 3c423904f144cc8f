import Kernels
import Testing
import TestSupport
import VulkanCompute

@Test("every embedded kernel is valid SPIR-V with a readable interface and builds a pipeline")
func everyKernelBuilds() throws {
    #expect(Set(ShaderLibrary.names).isSuperset(of: [
        "add", "conv2d", "pointwise", "depthwise", "maxpool", "avgpool", "global_avgpool", "se_excite", "channel_scale",
        "attention", "attention_rows",
    ]))
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

/// Every launch's push constants are the exact size of its shader's block and fit the 128 bytes every device allows;
/// its bindings are what the operation documents.
@Test("push-constant mirrors match their shaders and fit in 128 bytes")
func pushConstantMirrors() throws {
    let se = SqueezeExcite(batch: 1, channels: 8, pixels: 4, reduced: 2, innerActivation: .relu)
    let launches: [(KernelLaunch, [BindingKind])] = [
        (Add(count: 5).launch(), [.uniformTexelBuffer, .uniformTexelBuffer, .storageBuffer]),
        (Conv2D(batch: 1, inChannels: 3, height: 8, width: 8, outChannels: 8, kernelSize: 3, padding: 1).launch(),
         [.uniformTexelBuffer, .uniformTexelBuffer, .uniformTexelBuffer, .uniformTexelBuffer, .storageBuffer]),
        (Pointwise(batch: 1, inChannels: 8, pixels: 4, outChannels: 8).launch(),
         [.uniformTexelBuffer, .uniformTexelBuffer, .uniformTexelBuffer, .uniformTexelBuffer, .storageBuffer]),
        (Depthwise(batch: 1, channels: 8, height: 8, width: 8, kernelSize: 3, padding: 1).launch(),
         [.uniformTexelBuffer, .uniformTexelBuffer, .uniformTexelBuffer, .uniformTexelBuffer, .storageBuffer]),
        (MaxPool(batch: 1, channels: 1, height: 8, width: 8).launch(), [.uniformTexelBuffer, .storageBuffer]),
        (AvgPool(batch: 1, channels: 1, height: 8, width: 8).launch(), [.uniformTexelBuffer, .storageBuffer]),
        (se.squeeze.launch(), [.uniformTexelBuffer, .storageBuffer]),
        (se.exciteLaunch(), Array(repeating: .uniformTexelBuffer, count: 5) + [.storageBuffer]),
        (se.scaleLaunch(), [.uniformTexelBuffer, .uniformTexelBuffer, .uniformTexelBuffer, .storageBuffer]),
        (Attention(batch: 1, heads: 1, tokens: 4).rowsLaunch(), [.uniformTexelBuffer, .storageBuffer]),
        (Attention(batch: 1, heads: 1, tokens: 4).launch(),
         [.uniformTexelBuffer, .uniformTexelBuffer, .uniformTexelBuffer, .storageBuffer]),
    ]
    for (launch, bindings) in launches {
        let reflection = try SPIRVReflection(spirv: ShaderLibrary.spirv(named: launch.kernel))
        #expect(reflection.pushConstantSize == launch.pushConstants.count, "\(launch.kernel)")
        #expect(launch.pushConstants.count <= 128, "\(launch.kernel)")
        #expect(reflection.bindings == bindings, "\(launch.kernel)")
    }
}

@Test("an unknown kernel name is an error that names it")
func unknownKernel() {
    #expect(throws: VulkanSetupError.unknownKernel("no_such_kernel")) {
        try ShaderLibrary.spirv(named: "no_such_kernel")
    }
}
