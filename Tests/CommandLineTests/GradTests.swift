import Checkpoint
import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import Testing

/// An .npy file of int64 values, as NumPy writes `np.array(values, dtype=np.int64)`.
private func int64Array(_ values: [Int64]) -> Data {
    var header = "{'descr': '<i8', 'fortran_order': False, 'shape': (\(values.count),), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var data = Data(NumPyArray.magic) + Data([1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
    data += Data(header.utf8)
    for value in values { withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) } }
    return data
}

@Test("bossnet grad --cpu writes the loss, every gradient and the running statistics of the training reference")
func gradCommand() throws {
    let arch = "hytra:1-0-_-1"
    let model = Model(try Architecture.parse(arch))
    var random = SeededRandom(seed: 5)
    let input = random.floats(2 * 3 * 32 * 32, in: -2...2)
    let inputFile = temporary("x.npy"), labelFile = temporary("y.npy"), output = temporary("g.safetensors")
    defer { for file in [inputFile, labelFile, output] { try? FileManager.default.removeItem(at: file) } }
    try NumPyArray(shape: [2, 3, 32, 32], values: input).write(to: inputFile)
    try int64Array([3, 917]).write(to: labelFile)

    let result = try run([
        "grad", "--arch", arch, "--weights", "synthetic", "--input", inputFile.path, "--labels", labelFile.path,
        "--smoothing", "0.1", "--cpu", "--step", "adamw", "--lr", "1e-3", "--output", output.path,
    ])
    #expect(result.status == 0, "\(result.error)")
    let written = try SafeTensors.read(output)

    let graph = try model.graph(batch: 2, inputSize: 32, weights: SyntheticWeights(calibratedFor: model))
    let targets = CrossEntropy(batch: 2, classes: 1000).targets(labels: [3, 917], smoothing: 0.1)
    let step = try TrainingReference(graph).step(input: input, targets: targets)
    #expect(written["loss"]?.values == [Float(step.loss)])
    for declaration in graph.declarations where declaration.trainable {
        let tensor = try #require(written["grad.\(declaration.name)"], "no grad.\(declaration.name)")
        #expect(tensor.shape == declaration.shape)
        #expect(tensor.values == step.gradients[declaration.name]?.map(Float.init), "grad.\(declaration.name)")
        // One AdamW step from the weights (weight decay 0.05 where timm's groups give it).
        var parameter = try #require(graph.parameters[declaration.name]).map(Double.init)
        var state = AdamW.State(count: parameter.count)
        AdamW(learningRate: 1e-3, weightDecay: 0.05).step(
            &parameter, gradient: try #require(step.gradients[declaration.name]), state: &state,
            decays: takesWeightDecay(name: declaration.name, shape: declaration.shape))
        #expect(written["param.\(declaration.name)"]?.values == parameter.map(Float.init), "param.\(declaration.name)")
    }
    for (name, running) in step.runningStatistics {
        #expect(written[name]?.values == running.map(Float.init), "\(name)")
    }
    #expect(step.runningStatistics.count == 2 * graph.nodes.filter { $0.op.batchNorm != nil }.count)

    let refused = try run([
        "grad", "--arch", arch, "--input", inputFile.path, "--labels", labelFile.path, "--output", output.path,
        "--cpu", "--device", "0",
    ])
    #expect(refused.status != 0 && refused.error.contains("--device or --cpu"), "\(refused.error)")
}

private func relativeL2(_ actual: [Float], _ expected: [Double]) -> Double {
    let (difference, norm) = zip(actual, expected).reduce((0.0, 0.0)) { sums, pair in
        let d = Double(pair.0) - pair.1
        return (sums.0 + d * d, sums.1 + pair.1 * pair.1)
    }
    return norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot()
}

@Test(
    "bossnet grad on the device, at the spec's minimum limits, validated, under stochastic depth: the reference's gradients, AdamW's step"
)
func gradOnDevice() throws {
    let arch = "hytra:1-0-1-1"
    let model = Model(try Architecture.parse(arch))
    var random = SeededRandom(seed: 6)
    let input = random.floats(4 * 3 * 64 * 64, in: -2...2)
    let inputFile = temporary("xd.npy"), labelFile = temporary("yd.npy"), output = temporary("gd.safetensors")
    defer { for file in [inputFile, labelFile, output] { try? FileManager.default.removeItem(at: file) } }
    try NumPyArray(shape: [4, 3, 64, 64], values: input).write(to: inputFile)
    try int64Array([3, 917, 0, 500]).write(to: labelFile)
    // Weights as the training fixtures take them (each block's last BatchNorm small, attention peaked): in train
    // mode, BossNet with every gamma near 1 is chaotic, and float32 cannot follow float64 through it.
    let graph = try model.graph(
        batch: 4, inputSize: 64, weights: SyntheticWeights(gains: model.architecture.family.syntheticGains))
    let weightsFile = temporary("wd.safetensors")
    defer { try? FileManager.default.removeItem(at: weightsFile) }
    try SafeTensors.write(
        try StateDict(
            graph.declarations.compactMap { declaration in
                graph.parameters[declaration.name].map {
                    NamedTensor(name: declaration.name, shape: declaration.shape, values: $0)
                }
            }), to: weightsFile)
    var environment = ProcessInfo.processInfo.environment
    (environment["BOSSNET_LIMITS"], environment["BOSSNET_VALIDATION"]) = ("minimum", "1")
    let result = try run(
        [
            "grad", "--arch", arch, "--weights", weightsFile.path, "--input", inputFile.path, "--labels",
            labelFile.path, "--smoothing", "0.1", "--step", "adamw", "--lr", "1e-3", "--drop-path", "0.9", "--seed",
            "3", "--output", output.path,
        ], environment: environment)
    #expect(result.status == 0, "\(result.error)")
    let written = try SafeTensors.read(output)
    // Stochastic depth at 0.9: layer3.0 drops with 0.12 and layer4.0 with 0.18 (blocks 2 and 3 of 15); the masks
    // written are those the seed draws, and this seed drops one image's branch.
    var seeded = SeededRandom(seed: 3)
    let masks = try model.stochasticDepth(rate: 0.9, graph: graph).masks(batch: 4, using: &seeded)
    #expect(Set(masks.keys) == ["layer3.0.se", "layer4.0.se"])
    for (node, mask) in masks {
        #expect(written["mask.\(node)"]?.values == mask.map(Float.init), "mask.\(node)")
    }
    #expect(masks.values.joined().contains(0), "\(masks)")
    let targets = CrossEntropy(batch: 4, classes: 1000).targets(labels: [3, 917, 0, 500], smoothing: 0.1)
    let step = try TrainingReference(graph).step(input: input, targets: targets, masks: masks)
    let loss = try #require(written["loss"]?.values.first)
    #expect(abs(Double(loss) - step.loss) <= 1e-5 * step.loss, "loss \(loss) against \(step.loss)")
    let names = graph.declarations.filter(\.trainable).map(\.name)
    let gradients = try names.map { try #require(written["grad.\($0)"]?.values, "no grad.\($0)") }
    let all = relativeL2(gradients.flatMap { $0 }, names.flatMap { step.gradients[$0] ?? [] })
    #expect(all <= 1e-4, "all gradients: relative L2 \(all)")
    for (declaration, gradient) in zip(graph.declarations.filter(\.trainable), gradients) {
        // AdamW's formula in float64 on the engine's own gradients; its first step moves each value by about the
        // learning rate, so 1e-6 relative is a test of the step, not of the rounding of the weights.
        var parameter = try #require(graph.parameters[declaration.name]).map(Double.init)
        var state = AdamW.State(count: parameter.count)
        AdamW(learningRate: 1e-3, weightDecay: 0.05).step(
            &parameter, gradient: gradient.map(Double.init), state: &state,
            decays: takesWeightDecay(name: declaration.name, shape: declaration.shape))
        let updated = try #require(written["param.\(declaration.name)"]?.values)
        #expect(relativeL2(updated, parameter) <= 1e-6, "param.\(declaration.name) \(relativeL2(updated, parameter))")
    }
    for (name, running) in step.runningStatistics {
        let error = relativeL2(try #require(written[name]?.values), running)
        #expect(error <= 1e-5, "\(name) \(error)")
    }
}
