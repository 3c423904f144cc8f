import Kernels
import TestSupport
import Testing
import VulkanCompute

@Test(
    "every embedded kernel is valid SPIR-V with a readable interface and builds a pipeline where the device can run it")
func everyKernelBuilds() throws {
    #expect(
        Set(ShaderLibrary.names).isSuperset(of: [
            "add", "conv2d", "pointwise", "depthwise", "maxpool", "avgpool", "global_avgpool", "squeeze_excite_gates",
            "squeeze_excite_scale",
            "attention", "attention_rows", "conv2d_tiled_storage", "conv2d_tiled_splitk_fp16",
            "conv2d_splitk_reduce_storage",
            "attention_tiled_fp16", "global_avgpool_subgroup_storage", "conv2d_coopmat_fp16", "pointwise_gemv_fp16",
        ]))
    try withValidatedDevice { device in
        var built = 0
        for name in ShaderLibrary.names {
            let spirv = try ShaderLibrary.spirv(named: name)
            #expect(spirv.first == 0x0723_0203, "\(name) does not start with the SPIR-V magic number")
            let reflection = try SPIRVReflection(spirv: spirv)
            #expect(
                reflection.pushConstantSize <= 128, "\(name): push constants over the 128 bytes every device allows")
            #expect(
                reflection.needs.float16Storage == name.hasSuffix("_fp16"),
                "\(name): 16-bit storage exactly on the fp16 path")
            #expect(reflection.needs.cooperativeMatrix == name.hasPrefix("conv2d_coopmat"), "\(name)")
            if reflection.needs.missing(features: device.enabledFeatures, limits: device.limits).isEmpty {
                _ = try ComputePipeline(
                    device: device, name: name, spirv: spirv, pushConstantSize: reflection.pushConstantSize)
                built += 1
            } else {
                // A pipeline the device cannot run is refused with an error that names what is missing.
                #expect(throws: VulkanSetupError.self) {
                    try ComputePipeline(
                        device: device, name: name, spirv: spirv, pushConstantSize: reflection.pushConstantSize)
                }
            }
        }
        // lavapipe has 16-bit storage, fp16 arithmetic and subgroup arithmetic: all but the cooperative-matrix kernels.
        #expect(built == ShaderLibrary.names.filter { !$0.hasPrefix("conv2d_coopmat") }.count)
    }
}

/// Every operation's steps, in every family: push constants the exact size of the shader's block and within the 128
/// bytes every device allows; bindings, in order, of the kinds the shader declares on that data path. The steps are
/// the one description of how each kernel binds, used by both the executor and the checks.
@Test(
    "each operation's steps match their shaders in every family: push-constant size (at most 128 bytes) and binding kinds"
)
func stepsMatchShaders() throws {
    let se = SqueezeExcite(batch: 1, channels: 8, pixels: 4, reduced: 2, innerActivation: .relu)
    var subgroups = DeviceLimits.vulkanMinimum
    subgroups.subgroupArithmetic = true
    subgroups.subgroupShuffle = true
    subgroups.subgroupSize = 8
    var steps: [KernelStep<Int>] = []
    for (family, limits) in KernelFamily.allCases.flatMap({ family in
        [(family, DeviceLimits.vulkanMinimum), (family, subgroups)]
    }) {
        let config = KernelConfig(family: family, limits: limits)
        steps +=
            Add(count: 5).steps(a: 0, b: 1, output: 2, config: config)
            // 3x3, stride 1: Winograd F(2x2, 3x3) in the register-tiled families; stride 2: the direct kernel.
            + Conv2D(batch: 1, inChannels: 3, height: 8, width: 8, outChannels: 8, kernelSize: 3, padding: 1)
            .steps(input: 0, weights: 1, affine: 2, residual: nil, output: 3, scratch: [4, 5], config: config)
            // F(4x4, 3x3) where an image has 16 tiles of 4x4.
            + Conv2D(batch: 2, inChannels: 3, height: 16, width: 16, outChannels: 8, kernelSize: 3, padding: 1)
            .steps(input: 0, weights: 1, affine: 2, residual: nil, output: 3, scratch: [4, 5], config: config)
            + Conv2D(batch: 1, inChannels: 3, height: 8, width: 8, outChannels: 8, kernelSize: 3, stride: 2, padding: 1)
            .steps(input: 0, weights: 1, affine: 2, residual: nil, output: 3, config: config)
            // A long reduction on a small grid: split-K in the tiled families.
            + Conv2D(batch: 1, inChannels: 512, height: 2, width: 2, outChannels: 64, kernelSize: 3, padding: 1)
            .steps(input: 0, weights: 1, affine: 2, residual: nil, output: 3, scratch: [4, 5], config: config)
            + Pointwise(batch: 1, inChannels: 8, pixels: 4, outChannels: 8).steps(
                input: 0, weights: 1, affine: 2, residual: 3,
                output: 4, config: config)
            + Pointwise.linear(batch: 1, inFeatures: 8, outFeatures: 8).steps(
                input: 0, weights: 1, affine: 2, residual: nil,
                output: 3, config: config)
            + Depthwise(batch: 1, channels: 8, height: 8, width: 8, kernelSize: 3, padding: 1)
            .steps(input: 0, weights: 1, affine: 2, residual: nil, output: 3, config: config)
            + MaxPool(batch: 1, channels: 1, height: 8, width: 8).steps(input: 0, output: 1, config: config)
            + AvgPool(batch: 1, channels: 1, height: 8, width: 8).steps(input: 0, output: 1, config: config)
            + se.steps(
                input: 0, w1: 1, b1: 2, w2: 3, b2: 4, means: 5, gates: 6, residual: nil, output: 7, config: config)
            + Attention(batch: 1, heads: 1, tokens: 4).steps(qkv: 0, rows: 1, affine: 2, output: 3, config: config)
    }
    steps += trainingSteps()
    // The texel family's kernels (and the training products) also run on the storage path where a view would pass
    // the texel limit.
    steps += steps.filter { $0.dataPath == .texel }.map { $0.on(.storage) }
    // Every kernel is reached by some operation in some family, but the cooperative-matrix GEMM (compiled and checked
    // by spirv-val for the devices that have it; not planned yet) and the fp16math variants on other data paths.
    let reached = Set(steps.map(\.launch.spirvName))
    let unplanned = Set(ShaderLibrary.names).subtracting(reached)
    #expect(
        unplanned.allSatisfy {
            $0.hasPrefix("conv2d_coopmat") || $0.hasPrefix("conv2d_tiled_fp16math") && $0.hasSuffix("_storage")
        },
        "kernels no operation uses: \(unplanned.sorted())")
    #expect(
        reached.isSubset(of: Set(ShaderLibrary.names)),
        "steps name kernels that are not embedded: \(reached.subtracting(ShaderLibrary.names))")
    for step in steps {
        let name = step.launch.spirvName
        let reflection = try SPIRVReflection(spirv: ShaderLibrary.spirv(named: name))
        #expect(reflection.pushConstantSize == step.launch.pushConstants.count, "\(name)")
        #expect(step.launch.pushConstants.count <= 128, "\(name)")
        #expect(reflection.bindings == step.bindings.map { $0.kind(on: step.dataPath) }, "\(name)")
        // Within what every device allows a shader stage: 4 storage buffers, 16 uniform and 4 storage texel buffers.
        #expect(
            reflection.bindings.filter { $0 == .storageBuffer }.count
                <= DeviceLimits.vulkanMinimum.maxPerStageDescriptorStorageBuffers, "\(name)")
        #expect(
            reflection.bindings.filter { $0 == .uniformTexelBuffer }.count
                <= DeviceLimits.vulkanMinimum.maxPerStageDescriptorSampledImages, "\(name)")
        #expect(
            reflection.bindings.filter { $0 == .storageTexelBuffer }.count
                <= DeviceLimits.vulkanMinimum.maxPerStageDescriptorStorageImages, "\(name)")
    }
}

@Test("an unknown kernel name is an error that names it")
func unknownKernel() {
    #expect(throws: VulkanSetupError.unknownKernel("no_such_kernel")) {
        try ShaderLibrary.spirv(named: "no_such_kernel")
    }
}

/// Specialization-constant ids are generated from the shaders (`ShaderConstants`), and a pipeline refuses a constant
/// the shader does not declare, or one of another type, naming both.
@Test("the SPIR-V's specialization constants are read with their types, and a pipeline refuses a wrong id or type")
func specializationChecked() throws {
    let add = try SPIRVReflection(spirv: ShaderLibrary.spirv(named: "add"))
    #expect(add.specializationConstants == [0: .uint, 1: .uint, 2: .uint])
    let tiled = try SPIRVReflection(spirv: ShaderLibrary.spirv(named: "conv2d_tiled_storage"))
    #expect(tiled.specializationConstants[4] == .bool && tiled.specializationConstants[9] == .uint)
    try withValidatedDevice { device in
        let spirv = try ShaderLibrary.spirv(named: "add")
        let push = add.pushConstantSize
        #expect(
            throws: VulkanSetupError.kernelInterfaceMismatch(
                kernel: "add", .specialization(id: 1, shader: .uint, given: .bool))
        ) {
            try ComputePipeline(
                device: device, name: "add", spirv: spirv, pushConstantSize: push, specialization: [1: .bool(true)])
        }
        #expect(
            throws: VulkanSetupError.kernelInterfaceMismatch(
                kernel: "add", .specialization(id: 7, shader: nil, given: .uint))
        ) {
            try ComputePipeline(
                device: device, name: "add", spirv: spirv, pushConstantSize: push, specialization: [7: .uint(1)])
        }
        _ = try ComputePipeline(
            device: device, name: "add", spirv: spirv, pushConstantSize: push,
            specialization: [0: .uint(64), 1: .uint(1), 2: .uint(4)])
    }
}

/// The training kernels' steps, one of each kind (most built for the texel path; the caller adds storage forms).
private func trainingSteps() -> [KernelStep<Int>] {
    func convolution(_ kernel: Int, stride: Int, depthwise: Bool) -> ConvolutionGeometry {
        ConvolutionGeometry(
            batch: 2, inChannels: 4, outChannels: 4, height: 6, width: 6, kernelSize: kernel, stride: stride,
            padding: kernel / 2, depthwise: depthwise)
    }
    var steps: [KernelStep<Int>] = []
    for geometry in [
        convolution(3, stride: 2, depthwise: false), convolution(1, stride: 1, depthwise: false),
        convolution(3, stride: 1, depthwise: true),
    ] {
        steps += geometry.forwardSteps(
            input: 0, weights: 1, bias: 2, output: 3, scratch: Array(4..<(4 + geometry.forwardScratchCounts.count)))
        for accumulate in [false, true] {
            steps += geometry.backwardSteps(
                ConvolutionGradients(
                    input: 0, weights: 1, outputGradient: 2, inputGradient: 3, weightGradient: 4, biasGradient: 5,
                    scratch: Array(6..<(6 + geometry.backwardScratchCounts.count)), accumulateInput: accumulate))
        }
    }
    let norm = BatchNormTraining(batch: 2, channels: 4, pixels: 9)
    steps += norm.statisticsSteps(input: 0, statistics: 1, running: 2)
    steps += norm.forwardSteps(input: 0, residual: 1, output: 2, statistics: 3, gamma: 4, beta: 5, activation: .silu)
    steps += norm.backwardSteps(
        input: 0, preGradient: 1, statistics: 2, gamma: 3, gammaGradient: 4, betaGradient: 5, inputGradient: 6)
    for batchNorm in [false, true] {
        let epilogue = EpilogueTraining(batch: 2, channels: 4, pixels: 9, activation: .relu, batchNorm: batchNorm)
        let normalisation = batchNorm ? (statistics: 5, gamma: 6, beta: 7) : nil
        for keep in [nil, 8] {  // with stochastic depth's masks, and without
            steps += epilogue.forwardSteps(input: 0, residual: 1, normalisation: normalisation, keep: keep, output: 2)
            steps += epilogue.backwardSteps(
                outputGradient: 0, input: 1, residual: 3, normalisation: normalisation, keep: keep, preGradient: 2)
        }
    }
    steps += Accumulate(count: 9).steps(0, into: 1) + Accumulate(count: 9, accumulate: false).steps(0, into: 1)
    steps += ImageScale(count: 8, batch: 2).steps(0, scale: 1, into: 2)
    steps += MaxPool(batch: 1, channels: 2, height: 8, width: 8).backwardSteps(
        input: 0, outputGradient: 1, inputGradient: 2, choices: 3)
    steps += AvgPool(batch: 1, channels: 2, height: 7, width: 7).backwardSteps(
        input: 0, outputGradient: 1, inputGradient: 2, accumulate: true)
    steps += GlobalAvgPool(batch: 1, channels: 2, pixels: 9).backwardSteps(
        input: 0, outputGradient: 1, inputGradient: 2)
    let attention = Attention(batch: 1, heads: 2, tokens: 5)
    steps += attention.trainingForwardSteps(qkv: 0, output: 1, scratch: [2])
    steps += attention.backwardSteps(qkv: 0, outputGradient: 1, inputGradient: 2, scratch: [3, 4])
    let se = SqueezeExcite(batch: 2, channels: 8, pixels: 9, reduced: 2, innerActivation: .relu)
    steps += se.trainingForwardSteps(
        input: 0, w1: 1, b1: 2, w2: 3, b2: 4, saved: [5, 6, 7, 8], scratch: [9], output: 10,
        config: KernelConfig(family: .storage, limits: .vulkanMinimum))
    steps += se.backwardSteps(
        SqueezeExciteGradients(
            input: 0, outputGradient: 1, means: 2, hidden: 3, activated: 4, gates: 5, w1: 6, w2: 7, inputGradient: 8,
            w1Gradient: 9, b1Gradient: 10, w2Gradient: 11, b2Gradient: 12, scratch: [13, 14, 15, 16]))
    steps += CrossEntropy(batch: 2, classes: 10).steps(logits: 0, targets: 1, gradient: 2, losses: 3)
    let range = ElementRange(count: 9)
    steps += AdamW(learningRate: 1e-3).steps(
        parameters: 0, gradients: 1, averages: 2, squareAverages: 3, range: range, step: 1, decays: true)
    steps += SGD(learningRate: 0.1, nesterov: true).steps(
        parameters: 0, gradients: 1, momentum: 2, range: range, firstStep: false, decays: true)
    steps += ModelAverage(decay: 0.99).steps(average: 0, values: 1, range: range)
    steps += GradientClipping(maxNorm: 1, ranges: [range]).steps(gradients: [0], partials: 1)
    return steps
}
