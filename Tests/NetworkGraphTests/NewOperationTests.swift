import Foundation
import Kernels
import NetworkGraph
import TestSupport
import Testing

/// An operation the engine does not ship, added here through NetworkGraph's public API alone (no line of NetworkGraph
/// names it): a per-channel scale and bias, LayerScale's `y[n][c][p] = x[n][c][p] * weight[c] + bias[c]`, with its
/// parameters `<module>.weight` and `<module>.bias`, run by the depthwise kernel at 1x1.
struct ChannelScale: GraphOperation {
    var batch: Int
    var channels: Int
    var height: Int
    var width: Int
    var module: String
    /// A planted fault: the lowering leaves the bias out (the reference keeps it).
    var dropsBias = false

    var name: String { "channel_scale" }
    var madds: Int { batch * channels * height * width }
    var weightBytes: Int { 4 * 3 * channels }
    var parameterNames: [String] { ["\(module).weight", "\(module).bias"] }
    var kernelCheck: KernelCheck { kernel.check() }

    /// The kernel that runs it: a 1x1 depthwise convolution whose filters are the scales.
    var kernel: Depthwise {
        Depthwise(batch: batch, channels: channels, height: height, width: width, kernelSize: 1, stride: 1, padding: 0)
    }

    func withBatch(_ batch: Int, from old: Int) -> any GraphOperation {
        var resized = self
        resized.batch = batch
        return resized
    }

    func values(_ parameters: ParameterStore) -> (scale: [Float], bias: [Float]) {
        guard let scale = parameters["\(module).weight"], let bias = parameters["\(module).bias"] else {
            preconditionFailure("no values for \(module)")
        }
        return (scale, bias)
    }

    func reference(_ inputs: [[Float]], parameters: ParameterStore) -> [Float] {
        let (scale, bias) = values(parameters)
        let pixels = height * width
        return inputs[0].enumerated().map { index, x in
            let c = index / pixels % channels
            return Float(Double(x) * Double(scale[c]) + Double(bias[c]))
        }
    }

    func lower(_ lowering: inout OperationLowering) -> [KernelStep<PlanResource>] {
        let p = lowering.parameters.map(values)
        let ones = [Float](repeating: 1, count: channels), zeros = [Float](repeating: 0, count: channels)
        let filters = lowering.parameter(p?.scale, count: channels)
        let affine = lowering.parameter(
            p.map { Epilogue.packAffine(scale: ones, shift: dropsBias ? zeros : $0.bias) }, count: 2 * channels)
        return kernel.steps(
            input: lowering.inputs[0], weights: filters, affine: affine, residual: nil, output: lowering.output,
            config: lowering.config)
    }
}

/// conv 3x3 (3 to 8 channels, ReLU) . ChannelScale . global average pool, random weights, two 8x8 images.
func channelScaleGraph(dropsBias: Bool = false, values: Bool = true) throws -> Graph {
    var random = SeededRandom(seed: 11)
    let batch = 2
    var graph = Graph(input: TensorShape(batch: batch, channels: 3, height: 8, width: 8))
    let shape = TensorShape(batch: batch, channels: 8, height: 8, width: 8)
    let conv = Conv2D(
        batch: batch, inChannels: 3, height: 8, width: 8, outChannels: 8, kernelSize: 3, padding: 1,
        epilogue: Epilogue(activation: .relu))
    let x = graph.add(
        "conv", ConvolutionLayer(conv, try randomLayer(&graph, "conv", weight: [8, 3, 3, 3], random: &random)),
        inputs: [graph.input], output: shape)
    if values {
        try graph.declare("scale.weight", shape: [8], values: random.floats(8, in: 0.5...1.5))
        try graph.declare("scale.bias", shape: [8], values: random.floats(8, in: -0.5...0.5))
    } else {
        graph.declare("scale.weight", shape: [8])
        graph.declare("scale.bias", shape: [8])
    }
    let scale = ChannelScale(batch: batch, channels: 8, height: 8, width: 8, module: "scale", dropsBias: dropsBias)
    let y = graph.add("scale", scale, inputs: [x], output: shape)
    graph.add(
        "pool", GlobalAvgPool(batch: batch, channels: 8, pixels: 64), inputs: [y],
        output: TensorShape(batch: batch, channels: 8, height: 1, width: 1))
    return graph
}

@Test("an operation added outside NetworkGraph plans, runs on Vulkan like its CPU reference, and is checked")
func operationAddedOutsideTheEngine() throws {
    let graph = try channelScaleGraph()
    var random = SeededRandom(seed: 12)
    let input = random.floats(graph.shapes[graph.input].count)
    let expected = CPUExecutor.run(graph, input: input)
    // Its reference does what it says: the pool of the scaled conv output, by hand, for the first channel.
    let conv = CPUExecutor.runAll(graph, input: input)[1]
    let (scale, bias) = (try #require(graph.parameters["scale.weight"]), try #require(graph.parameters["scale.bias"]))
    let byHand = conv[0..<64].reduce(0.0) { $0 + Double($1) * Double(scale[0]) + Double(bias[0]) } / 64
    #expect(abs(Double(expected[0]) - byHand) < 1e-5)
    // The planner asks it for its parameters: without values, the plan names the missing one.
    #expect(throws: PlanError.parameterMissing(node: "scale", parameter: "scale.weight")) {
        try withValidatedDevice { device in
            _ = try InferenceSession(graph: try channelScaleGraph(values: false), device: device)
        }
    }
    #expect(Graph.distinctChecks(of: [graph]).map(\.node) == ["conv", "scale", "pool"])
    try withValidatedDevice { device in
        let comparison = Comparison(try InferenceSession(graph: graph, device: device).run(input), expected)
        #expect(comparison.passes, "\(comparison)")
        #expect(try GraphCheck.firstDivergence(graph: graph, device: device, input: input) == nil)
        // A lowering that leaves out the bias is caught, and pinned on the new node.
        let faulty = try channelScaleGraph(dropsBias: true)
        let divergence = try GraphCheck.firstDivergence(graph: faulty, device: device, input: input, reference: graph)
        #expect(divergence?.name == "scale")
    }
}
