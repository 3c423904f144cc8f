import Foundation
import VulkanCompute

// The pooling gradients on the device (the references are in PoolingBackward.swift), one kernel gathering per input
// element. Kernel: Shaders/pooling_backward.comp.

/// Mirrors `Push` in Shaders/pooling_backward.comp.
struct PoolingBackwardPush: BitwiseCopyable {
    var planes, height, width, outHeight, outWidth, ksize, stride, pad: UInt32
}

/// Which pooling a backward launch undoes: MODE in Shaders/pooling_backward.comp.
enum PoolingMode: UInt32 {
    case max = 0, average = 1, global = 2
    /// Max pooling's choices: the offset in its plane of the input each output picked.
    case maxChoices = 3
}

/// The launch and bindings of the pooling backward: `input` is read by max pooling only.
func poolingBackwardSteps<Resource>(
    _ mode: PoolingMode, _ push: PoolingBackwardPush, input: Resource, outputGradient: Resource,
    inputGradient: Resource, accumulate: Bool
) -> [KernelStep<Resource>] {
    typealias Spec = ShaderConstants.pooling_backward
    let items = Int(push.planes * (mode == .maxChoices ? push.outHeight * push.outWidth : push.height * push.width))
    let launch = KernelLaunch(
        kernel: KernelName.pooling_backward,
        specialization: [
            Spec.LOCAL_SIZE_X: .uint(64), Spec.MODE: .uint(mode.rawValue), Spec.ACCUMULATE: .uint(accumulate ? 1 : 0),
        ],
        pushConstants: push, groups: Grid.flat(items: items, localSize: 64))
    let output: KernelBinding = accumulate ? .readWrite(inputGradient) : .writeFloat32(inputGradient)
    return [KernelStep(launch, [.readFloat32(input), .readFloat32(outputGradient), output])]
}

extension MaxPool {
    /// Floats of scratch the backward needs: each output's choice.
    public var backwardScratchCount: Int { outputCount }

    /// The gradient of the input (added to `inputGradient` where `accumulate`): which input each output picked, into
    /// `choices` (``backwardScratchCount`` floats), then each input's gradient gathered from the outputs that picked it.
    public func backwardSteps<Resource>(
        input: Resource, outputGradient: Resource, inputGradient: Resource, choices: Resource, accumulate: Bool = false
    ) -> [KernelStep<Resource>] {
        let push = PoolingBackwardPush(
            planes: UInt32(batch * channels), height: UInt32(height), width: UInt32(width),
            outHeight: UInt32(outHeight), outWidth: UInt32(outWidth), ksize: UInt32(kernelSize),
            stride: UInt32(stride), pad: UInt32(padding))
        return poolingBackwardSteps(
            .maxChoices, push, input: input, outputGradient: outputGradient, inputGradient: choices, accumulate: false)
            + poolingBackwardSteps(
                .max, push, input: choices, outputGradient: outputGradient, inputGradient: inputGradient,
                accumulate: accumulate)
    }

    public func backwardCheck() -> KernelCheck {
        poolingBackwardCheck(
            op: "maxpool_backward", shape: shapeDescription, inputCount: inputCount, outputCount: outputCount
        ) { runner, x, dy, dx, accumulate in
            backwardSteps(
                input: x, outputGradient: dy, inputGradient: dx, choices: try runner.output(backwardScratchCount),
                accumulate: accumulate)
        } reference: {
            backward($0, outputGradient: $1)
        }
    }
}

extension AvgPool {
    /// The gradient of the input (added to `inputGradient` where `accumulate`); `input` is not read.
    public func backwardSteps<Resource>(
        input: Resource, outputGradient: Resource, inputGradient: Resource, accumulate: Bool = false
    ) -> [KernelStep<Resource>] {
        let push = PoolingBackwardPush(
            planes: UInt32(batch * channels), height: UInt32(height), width: UInt32(width),
            outHeight: UInt32(outHeight), outWidth: UInt32(outWidth), ksize: 2, stride: 2, pad: 0)
        return poolingBackwardSteps(
            .average, push, input: input, outputGradient: outputGradient, inputGradient: inputGradient,
            accumulate: accumulate)
    }

    public func backwardCheck() -> KernelCheck {
        poolingBackwardCheck(
            op: "avgpool_backward", shape: shapeDescription, inputCount: inputCount, outputCount: outputCount
        ) { _, x, dy, dx, accumulate in
            backwardSteps(input: x, outputGradient: dy, inputGradient: dx, accumulate: accumulate)
        } reference: {
            backward($0, outputGradient: $1)
        }
    }
}

extension GlobalAvgPool {
    /// The gradient of the input (added to `inputGradient` where `accumulate`); `input` is not read.
    public func backwardSteps<Resource>(
        input: Resource, outputGradient: Resource, inputGradient: Resource, accumulate: Bool = false
    ) -> [KernelStep<Resource>] {
        let push = PoolingBackwardPush(
            planes: UInt32(batch * channels), height: UInt32(pixels), width: 1, outHeight: 1, outWidth: 1, ksize: 1,
            stride: 1, pad: 0)
        return poolingBackwardSteps(
            .global, push, input: input, outputGradient: outputGradient, inputGradient: inputGradient,
            accumulate: accumulate)
    }

    public func backwardCheck() -> KernelCheck {
        poolingBackwardCheck(
            op: "global_avgpool_backward", shape: shapeDescription, inputCount: batch * channels * pixels,
            outputCount: batch * channels
        ) { _, x, dy, dx, accumulate in
            backwardSteps(input: x, outputGradient: dy, inputGradient: dx, accumulate: accumulate)
        } reference: {
            backward($0, outputGradient: $1)
        }
    }
}

/// The check the pooling backwards share: random input (with ties) and output gradient, the input gradient added to
/// random values.
private func poolingBackwardCheck(
    op: String, shape: String, inputCount: Int, outputCount: Int,
    steps:
        @escaping @Sendable (KernelRunner, VulkanBuffer, VulkanBuffer, VulkanBuffer, Bool) throws -> [KernelStep<
            VulkanBuffer
        >],
    reference: @escaping @Sendable ([Double], [Double]) -> [Double]
) -> KernelCheck {
    KernelCheck(op: op, shape: shape + " accumulate") { runner, random in
        // Inputs on a coarse grid, so that windows often hold ties (as after a ReLU): max pooling must pick the first.
        let x = random.floats(inputCount).map { ($0 * 2).rounded() / 2 }
        let dy = random.floats(outputCount), dx0 = random.floats(inputCount)
        let dx = try runner.inputOutput(dx0)
        runner.add(try steps(runner, try runner.input(x), try runner.input(dy), dx, true))
        try runner.run()
        let expected = zip(reference(x.map(Double.init), dy.map(Double.init)), dx0).map { Float($0 + Double($1)) }
        return Comparison(try runner.read(dx), expected)
    }
}
