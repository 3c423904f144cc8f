import Foundation
import VulkanCompute

// The attention in training on the device (the references are in AttentionBackward.swift): the forward is the logits'
// product, their softmax and the product with v; the gradient recomputes the softmax from q and k (nothing of the
// forward's but its input is kept), then takes five products and the softmax's gradient, per image and head. Kernels: Shaders/gemm_train.comp, Shaders/softmax_rows.comp.

extension Attention {
    /// Floats of scratch the backward needs: the probabilities and their gradient, `[batch * heads][tokens][tokens]`.
    public var backwardScratchCounts: [Int] { [batch * heads * tokens * tokens, batch * heads * tokens * tokens] }

    /// One image and head's `[64][tokens]` slice of a tensor whose images hold `parts` such slices per head (3 for
    /// the to_qkv output, 1 for the attention's output), slice `part`: as a product's operand, with the channel as
    /// its free dimension or as its reduction.
    private func headLayout(part: Int = 0, of parts: Int, channelIsFree: Bool) -> MatrixLayout {
        let plane = Self.headChannels * tokens
        return MatrixLayout(
            free: channelIsFree ? tokens : 1, inner: channelIsFree ? 1 : tokens, batchInnerStride: plane,
            batchOuter: parts * heads * plane, base: part * heads * plane)
    }

    /// A `[tokens][tokens]` matrix per image and head; `transposed` reads it by columns.
    private func squareLayout(transposed: Bool) -> MatrixLayout {
        MatrixLayout(
            free: transposed ? tokens : 1, inner: transposed ? 1 : tokens, batchInnerStride: tokens * tokens,
            batchOuter: heads * tokens * tokens)
    }

    private func product(m: Int, n: Int, k: Int, a: MatrixLayout, b: MatrixLayout, c: MatrixLayout, alpha: Float = 1)
        -> TrainingGEMM
    {
        TrainingGEMM(m: m, n: n, k: k, batch: batch * heads, batchInner: heads, a: a, b: b, c: c, alpha: alpha)
    }

    /// Floats of scratch the forward needs: the probabilities, `[batch * heads][tokens][tokens]`.
    public var forwardScratchCounts: [Int] { [batch * heads * tokens * tokens] }

    /// The index of the to_qkv output's part: q, k, v.
    private enum Part: Int { case q = 0, k, v }

    /// An image and head's q, k or v, `[64][tokens]`, as an operand (``headLayout(part:of:channelIsFree:)``).
    private func qkvOperand(_ part: Part, channelIsFree: Bool) -> MatrixLayout {
        headLayout(part: part.rawValue, of: 3, channelIsFree: channelIsFree)
    }

    /// An image and head's `[64][tokens]` slice as a product's output: its `inner` stride is its rows' (the
    /// channels), `free` its columns' (the tokens).
    private func headOutput(_ part: Part, of parts: Int) -> MatrixLayout {
        headLayout(part: part.rawValue, of: parts, channelIsFree: false)
    }

    /// P = softmax(q^T k / 8) per image and head into `probabilities`.
    private func probabilitySteps<Resource>(qkv: Resource, probabilities: Resource) -> [KernelStep<Resource>] {
        let logits = product(
            m: tokens, n: tokens, k: Self.headChannels, a: qkvOperand(.q, channelIsFree: false),
            b: qkvOperand(.k, channelIsFree: false), c: squareLayout(transposed: false), alpha: 0.125)
        return logits.steps(a: qkv, b: qkv, c: probabilities) + softmaxSteps(probabilities, gradient: nil)
    }

    /// The training forward, without the BatchNorm and activation that follow: out[c][i] = sum_j v[c][j] P[i][j].
    public func trainingForwardSteps<Resource>(qkv: Resource, output: Resource, scratch: [Resource])
        -> [KernelStep<Resource>]
    {
        let out = product(
            m: Self.headChannels, n: tokens, k: tokens, a: qkvOperand(.v, channelIsFree: true),
            b: squareLayout(transposed: true), c: headOutput(.q, of: 1))
        return probabilitySteps(qkv: qkv, probabilities: scratch[0]) + out.steps(a: qkv, b: scratch[0], c: output)
    }

    /// The gradient with respect to the to_qkv output, from `qkv` and the output's gradient.
    public func backwardSteps<Resource>(
        qkv: Resource, outputGradient: Resource, inputGradient: Resource, scratch: [Resource]
    ) -> [KernelStep<Resource>] {
        let (d, t, probabilities, dP) = (Self.headChannels, tokens, scratch[0], scratch[1])
        let output = headLayout(of: 1, channelIsFree: true), outputByToken = headLayout(of: 1, channelIsFree: false)
        let square = squareLayout(transposed: false)
        // dv[c][j] = sum_i dO[c][i] P[i][j]; dP[i][j] = sum_c dO[c][i] v[c][j].
        let dv = product(m: d, n: t, k: t, a: output, b: square, c: headOutput(.v, of: 3))
        let dPProduct = product(m: t, n: t, k: d, a: outputByToken, b: qkvOperand(.v, channelIsFree: false), c: square)
        // dq[c][i] = sum_j k[c][j] dS[i][j] / 8; dk[c][j] = sum_i q[c][i] dS[i][j] / 8.
        let dq = product(
            m: d, n: t, k: t, a: qkvOperand(.k, channelIsFree: true), b: squareLayout(transposed: true),
            c: headOutput(.q, of: 3), alpha: 0.125)
        let dk = product(
            m: d, n: t, k: t, a: qkvOperand(.q, channelIsFree: true), b: square, c: headOutput(.k, of: 3),
            alpha: 0.125)
        return probabilitySteps(qkv: qkv, probabilities: probabilities)
            + dv.steps(a: outputGradient, b: probabilities, c: inputGradient)
            + dPProduct.steps(a: outputGradient, b: qkv, c: dP) + softmaxSteps(probabilities, gradient: dP)
            + dq.steps(a: qkv, b: dP, c: inputGradient) + dk.steps(a: qkv, b: dP, c: inputGradient)
    }

    /// The softmax of every row of `probabilities` in place, or, with `gradient`, its gradient in place of that.
    private func softmaxSteps<Resource>(_ probabilities: Resource, gradient: Resource?) -> [KernelStep<Resource>] {
        let rows = batch * heads * tokens
        let launch = KernelLaunch(
            kernel: gradient == nil ? KernelName.softmax_rows : KernelName.softmax_rows_backward,
            specialization: [ShaderConstants.softmax_rows.LOCAL_SIZE_X: .uint(64)],
            pushConstants: SIMD2<UInt32>(UInt32(rows), UInt32(tokens)), groups: Grid.flat(items: rows, localSize: 64))
        let bindings: [KernelBinding<Resource>] =
            gradient.map { [.readFloat32(probabilities), .readWrite($0)] } ?? [.readWrite(probabilities)]
        return [KernelStep(launch, bindings).on(.storage)]
    }

    /// Compares the training forward and the backward with ``trainingForward(qkv:)`` and
    /// ``backward(qkv:outputGradient:)`` on q and k spread as trained BossNet's are (logits of a few units), so the
    /// softmax is neither flat nor one-hot.
    public func backwardCheck() -> KernelCheck {
        KernelCheck(op: "attention_training", shape: shapeDescription) { runner, random in
            let qkv = random.floats(inputCount, in: -1.5...1.5), dy = random.floats(outputCount)
            let (qkvBuffer, y, dx) = (
                try runner.input(qkv), try runner.output(outputCount), try runner.output(inputCount)
            )
            runner.add(
                trainingForwardSteps(qkv: qkvBuffer, output: y, scratch: try forwardScratchCounts.map(runner.output)))
            runner.add(
                backwardSteps(
                    qkv: qkvBuffer, outputGradient: try runner.input(dy), inputGradient: dx,
                    scratch: try backwardScratchCounts.map(runner.output)))
            try runner.run()
            let q = qkv.map(Double.init)
            return .worst([
                "output": Comparison(try runner.read(y), trainingForward(qkv: q).map(Float.init)),
                "input": Comparison(
                    try runner.read(dx), backward(qkv: q, outputGradient: dy.map(Double.init)).map(Float.init)),
            ])
        }
    }
}
