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

/// Every operation's steps: push constants the exact size of the shader's block and within the 128 bytes every
/// device allows; bindings, in order, of the kinds the shader declares. The steps are the one description of how
/// each kernel binds, used by both the executor and the checks.
@Test("each operation's steps match their shaders: push-constant size (at most 128 bytes) and binding kinds")
func stepsMatchShaders() throws {
    let se = SqueezeExcite(batch: 1, channels: 8, pixels: 4, reduced: 2, innerActivation: .relu)
    let steps: [KernelStep<Int>] =
        Add(count: 5).steps(a: 0, b: 1, output: 2)
        + Conv2D(batch: 1, inChannels: 3, height: 8, width: 8, outChannels: 8, kernelSize: 3, padding: 1)
            .steps(input: 0, weights: 1, affine: 2, residual: nil, output: 3)
        + Pointwise(batch: 1, inChannels: 8, pixels: 4, outChannels: 8).steps(input: 0, weights: 1, affine: 2, residual: 3, output: 4)
        + Depthwise(batch: 1, channels: 8, height: 8, width: 8, kernelSize: 3, padding: 1)
            .steps(input: 0, weights: 1, affine: 2, residual: nil, output: 3)
        + MaxPool(batch: 1, channels: 1, height: 8, width: 8).steps(input: 0, output: 1)
        + AvgPool(batch: 1, channels: 1, height: 8, width: 8).steps(input: 0, output: 1)
        + se.steps(input: 0, w1: 1, b1: 2, w2: 3, b2: 4, means: 5, gates: 6, residual: nil, output: 7)
        + Attention(batch: 1, heads: 1, tokens: 4).steps(qkv: 0, rows: 1, affine: 2, output: 3)
    #expect(Set(steps.map(\.launch.kernel)) == Set(ShaderLibrary.names))
    for step in steps {
        let reflection = try SPIRVReflection(spirv: ShaderLibrary.spirv(named: step.launch.kernel))
        #expect(reflection.pushConstantSize == step.launch.pushConstants.count, "\(step.launch.kernel)")
        #expect(step.launch.pushConstants.count <= 128, "\(step.launch.kernel)")
        #expect(reflection.bindings == step.bindings.map(\.kind), "\(step.launch.kernel)")
    }
}

@Test("an unknown kernel name is an error that names it")
func unknownKernel() {
    #expect(throws: VulkanSetupError.unknownKernel("no_such_kernel")) {
        try ShaderLibrary.spirv(named: "no_such_kernel")
    }
}
