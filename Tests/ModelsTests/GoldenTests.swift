import Foundation
import Images
import Kernels
import Models
import NetworkGraph
import TestSupport
import Testing

func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        .appendingPathComponent(name)
}

/// gradient.png through the evaluation transform at 64.
func gradientInput() throws -> [Float] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ImagesTests/Fixtures/gradient.png")
    return try Preprocess.evaluationTensor(try RGBImage(contentsOf: url), inputSize: 64)
}

/// The published models whose logits the authors' own code computed (Tools/make_fixtures.py imports their
/// boss_models.py and runs it in float64), under the calibrated synthetic weights that both sides generate from the
/// formula documented on SyntheticWeights.
let goldenModels = ["bossnet_T0", "bossnet_T0_nose", "bossnet_T1"]

@Test(
    "the authors' models' logits on Vulkan, from .npy and through the PNG preprocessing (64x64)",
    arguments: goldenModels)
func golden(name: String) throws {
    let model = try Model(name: name)
    let graph = try model.graph(batch: 2, inputSize: 64, weights: SyntheticWeights(calibratedFor: model))
    let npy = try NumPyArray(contentsOf: fixture("input_64.npy")).values
    let png = try gradientInput()
    let expectedNPY = try NumPyArray(contentsOf: fixture("\(name)_logits_64.npy")).values
    let expectedPNG = try NumPyArray(contentsOf: fixture("\(name)_png_logits_64.npy")).values
    let logits = try withValidatedDevice { device in try InferenceSession(graph: graph, device: device).run(npy + png) }
    let fromNPY = Comparison(Array(logits[..<1000]), expectedNPY),
        fromPNG = Comparison(Array(logits[1000...]), expectedPNG)
    #expect(fromNPY.relativeL2 < 1e-4, "\(name), .npy input: \(fromNPY)")
    #expect(
        fromPNG.relativeL2 < 1e-4, "\(name), PNG input (PIL-exact preprocessing leaves only float rounding): \(fromPNG)"
    )
    // The weights keep the input alive to the logits: two different images give logits far apart.
    let between = Comparison(expectedPNG, expectedNPY).relativeL2
    #expect(between > 0.1, "\(name): two different inputs' logits differ by only \(between) relative")
    #expect(Comparison(Array(logits[1000...]), Array(logits[..<1000])).relativeL2 > 0.1)
}

/// The mean over softmax rows of the standard deviation of the attention logits, per attention node, as the CPU
/// reference computes them for `input`.
func attentionSpreads(_ graph: Graph, input: [Float]) -> [String: Double] {
    let values = CPUExecutor.runAll(graph, input: input)
    var spreads: [String: Double] = [:]
    for node in graph.nodes {
        guard let op = (node.op as? AttentionLayer)?.kernel else { continue }
        let qkv = values[node.inputs[0]], t = op.tokens
        var total = 0.0
        for n in 0..<op.batch {
            for h in 0..<op.heads {
                let logits = op.logits(qkv: qkv, image: n, head: h, softmax: false)
                for i in 0..<t {
                    let row = logits[(i * t)..<((i + 1) * t)]
                    let mean = row.reduce(0, +) / Double(t)
                    total += (row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(t)).squareRoot()
                }
            }
        }
        spreads[node.name] = total / Double(op.batch * op.heads * t)
    }
    return spreads
}

@Test(
    "the synthetic weights make every ResAtt layer's attention peaked, as the authors' model computes it",
    arguments: goldenModels)
func attentionIsPeaked(name: String) throws {
    let model = try Model(name: name)
    let graph = try model.graph(batch: 1, inputSize: 64, weights: SyntheticWeights(calibratedFor: model))
    let spreads = attentionSpreads(graph, input: try NumPyArray(contentsOf: fixture("input_64.npy")).values)
    let recorded = try JSONDecoder().decode(
        [String: [String: Double]].self, from: Data(contentsOf: fixture("attention_spread.json")))
    let expected = try #require(recorded[name])
    #expect(spreads.count == 9 && Set(spreads.keys) == Set(expected.keys), "\(spreads.keys.sorted())")
    for (layer, spread) in spreads {
        // Several units: attention far from uniform, where attn and its transpose differ.
        #expect(spread >= 2, "\(name) \(layer): logit spread \(spread)")
        let theirs = try #require(expected[layer])
        #expect(
            abs(spread - theirs) < 1e-3 * theirs, "\(name) \(layer): \(spread) here, \(theirs) in the authors' model")
    }
}

/// The earlier aggregation, `out = v @ attn` (the authors' code before their fix, and the search supernet): output
/// token j gathers sum_i v[c][i] attn[i][j].
func transposedAttention(_ op: Attention, qkv: [Float], scale: [Float], shift: [Float]) -> [Float] {
    let d = Attention.headChannels, t = op.tokens
    var output = [Float](repeating: 0, count: op.outputCount)
    for n in 0..<op.batch {
        for h in 0..<op.heads {
            let v = (n * 3 * op.heads + 2 * op.heads + h) * d * t
            let attn = op.logits(qkv: qkv, image: n, head: h, softmax: true)
            for c in 0..<d {
                let channel = h * d + c
                for j in 0..<t {
                    var sum = 0.0
                    for i in 0..<t { sum += Double(qkv[v + c * t + i]) * attn[i * t + j] }
                    output[((n * op.heads + h) * d + c) * t + j] =
                        Float(op.activation.apply(sum * Double(scale[channel]) + Double(shift[channel])))
                }
            }
        }
    }
    return output
}

@Test("the fixtures catch a transposed attention aggregation by far more than the tolerance")
func transposedAggregationIsCaught() throws {
    let model = try Model(name: "bossnet_T0")
    let graph = try model.graph(batch: 1, inputSize: 64, weights: SyntheticWeights(calibratedFor: model))
    let input = try NumPyArray(contentsOf: fixture("input_64.npy")).values
    let expected = try NumPyArray(contentsOf: fixture("bossnet_T0_logits_64.npy")).values
    var values = [[Float]](repeating: [], count: graph.shapes.count)
    values[graph.input] = input
    for node in graph.nodes {
        let inputs = node.inputs.map { values[$0] }
        if let layer = node.op as? AttentionLayer {
            let op = layer.kernel
            let p = graph.parameters.attentionAffine(layer.norm, channels: op.channels)
            values[node.output] = transposedAttention(op, qkv: inputs[0], scale: p.scale, shift: p.shift)
        } else {
            values[node.output] = CPUExecutor.evaluate(node, inputs: inputs, parameters: graph.parameters)
        }
    }
    let wrong = Comparison(values[graph.output], expected)
    #expect(wrong.relativeL2 > 100 * 1e-4, "the transposed aggregation misses the authors' logits by only \(wrong)")
    // And the right one, on the same CPU reference, meets them.
    let right = Comparison(CPUExecutor.run(graph, input: input), expected)
    #expect(right.relativeL2 < 1e-5, "\(right)")
}
