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
    ])
    #expect(refused.status != 0 && refused.error.contains("--cpu"))
}
