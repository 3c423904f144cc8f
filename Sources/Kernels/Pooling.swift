import Foundation
import VulkanCompute

/// Max pooling, k x k, stride s, padding that never wins (PyTorch pads with -inf). Kernel: Shaders/maxpool.comp.
public struct MaxPool: Hashable, Sendable, Codable {
    public var batch: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    public var kernelSize: Int
    public var stride: Int
    public var padding: Int

    public init(
        batch: Int, channels: Int, height: Int, width: Int, kernelSize: Int = 3, stride: Int = 2, padding: Int = 1
    ) {
        precondition(padding < kernelSize, "maxpool: every window must hold an element (padding < kernel)")
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
    }

    public var outHeight: Int { windowOutputSize(height, kernel: kernelSize, stride: stride, padding: padding) }
    public var outWidth: Int { windowOutputSize(width, kernel: kernelSize, stride: stride, padding: padding) }
    public var inputCount: Int { batch * channels * height * width }
    public var outputCount: Int { batch * channels * outHeight * outWidth }

    /// The CPU reference.
    public func reference(input: [Float]) -> [Float] {
        precondition(input.count == inputCount, "maxpool: wrong input size")
        let (oh, ow) = (outHeight, outWidth)
        var output = [Float](repeating: 0, count: outputCount)
        for plane in 0..<(batch * channels) {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var best = -Float.infinity
                    for ky in 0..<kernelSize {
                        let iy = oy * stride - padding + ky
                        guard iy >= 0 && iy < height else { continue }
                        for kx in 0..<kernelSize {
                            let ix = ox * stride - padding + kx
                            guard ix >= 0 && ix < width else { continue }
                            best = max(best, input[(plane * height + iy) * width + ix])
                        }
                    }
                    output[(plane * oh + oy) * ow + ox] = best
                }
            }
        }
        return output
    }

    struct PushConstants: BitwiseCopyable {
        var planes, inHeight, inWidth, outHeight, outWidth, padding: UInt32
    }

    /// The dispatch and its bindings: the input, the output.
    public func steps<Resource>(input: Resource, output: Resource, config: KernelConfig = .texel) -> [KernelStep<
        Resource
    >] {
        [KernelStep(launch(), [.read(input), .write(output)]).on(config.dataPath)]
    }

    /// The dispatch alone.
    public func launch() -> KernelLaunch {
        let items = batch * channels * outHeight * ((outWidth + 3) / 4)
        return KernelLaunch(
            kernel: KernelName.maxpool,
            specialization: [
                ShaderConstants.maxpool.LOCAL_SIZE_X: .uint(64),
                ShaderConstants.maxpool.KSIZE: .uint(UInt32(kernelSize)),
                ShaderConstants.maxpool.STRIDE: .uint(UInt32(stride)),
            ],
            pushConstants: PushConstants(
                planes: UInt32(batch * channels), inHeight: UInt32(height), inWidth: UInt32(width),
                outHeight: UInt32(outHeight), outWidth: UInt32(outWidth), padding: UInt32(padding)),
            groups: Grid.flat(items: items, localSize: 64))
    }
}

/// Average pooling 2x2, stride 2, ceil_mode, windows over the edge averaging only what they cover
/// (count_include_pad = False): the shortcut's pooling. Kernel: Shaders/avgpool.comp.
public struct AvgPool: Hashable, Sendable, Codable {
    public var batch: Int
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(batch: Int, channels: Int, height: Int, width: Int) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
    }

    public var outHeight: Int { (height + 1) / 2 }
    public var outWidth: Int { (width + 1) / 2 }
    public var inputCount: Int { batch * channels * height * width }
    public var outputCount: Int { batch * channels * outHeight * outWidth }
    /// Whether the kernel reads four values per fetch (the input then bound as an RGBA32F view): every window whole
    /// (even sides) and every input row whole texels (W % 4 == 0).
    public var vec4Input: Bool { height % 2 == 0 && width % 4 == 0 }

    /// The CPU reference.
    public func reference(input: [Float]) -> [Float] {
        precondition(input.count == inputCount, "avgpool: wrong input size")
        let (oh, ow) = (outHeight, outWidth)
        var output = [Float](repeating: 0, count: outputCount)
        for plane in 0..<(batch * channels) {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var sum = 0.0
                    var count = 0
                    for iy in (2 * oy)..<min(2 * oy + 2, height) {
                        for ix in (2 * ox)..<min(2 * ox + 2, width) {
                            sum += Double(input[(plane * height + iy) * width + ix])
                            count += 1
                        }
                    }
                    output[(plane * oh + oy) * ow + ox] = Float(sum / Double(count))
                }
            }
        }
        return output
    }

    struct PushConstants: BitwiseCopyable {
        var planes, inHeight, inWidth, outHeight, outWidth: UInt32
    }

    /// The dispatch and its bindings: the input (RGBA32F when ``vec4Input``), the output.
    public func steps<Resource>(input: Resource, output: Resource, config: KernelConfig = .texel) -> [KernelStep<
        Resource
    >] {
        [
            KernelStep(launch(), [.read(input, vec4Input ? .rgba32Float : .r32Float), .write(output)]).on(
                config.dataPath)
        ]
    }

    /// The dispatch alone.
    public func launch() -> KernelLaunch {
        let items = batch * channels * outHeight * ((outWidth + 3) / 4)
        return KernelLaunch(
            kernel: KernelName.avgpool,
            specialization: [
                ShaderConstants.avgpool.LOCAL_SIZE_X: .uint(64), ShaderConstants.avgpool.VEC4_INPUT: .bool(vec4Input),
            ],
            pushConstants: PushConstants(
                planes: UInt32(batch * channels), inHeight: UInt32(height), inWidth: UInt32(width),
                outHeight: UInt32(outHeight), outWidth: UInt32(outWidth)),
            groups: Grid.flat(items: items, localSize: 64))
    }
}

/// Global average pooling, `[N][C][H][W] -> [N][C]`. Kernel: Shaders/global_avgpool.comp.
public struct GlobalAvgPool: Hashable, Sendable, Codable {
    public var batch: Int
    public var channels: Int
    /// H * W.
    public var pixels: Int

    public init(batch: Int, channels: Int, pixels: Int) {
        self.batch = batch
        self.channels = channels
        self.pixels = pixels
    }

    public var inputCount: Int { batch * channels * pixels }
    public var outputCount: Int { batch * channels }
    /// Whether the kernel reads four values per fetch (the input must then be bound as an RGBA32F view).
    public var vec4Input: Bool { pixels % 4 == 0 }

    /// The CPU reference.
    public func reference(input: [Float]) -> [Float] {
        precondition(input.count == inputCount, "global_avgpool: wrong input size")
        return (0..<outputCount).map { plane in
            Float(input[(plane * pixels)..<((plane + 1) * pixels)].reduce(0.0) { $0 + Double($1) } / Double(pixels))
        }
    }

    struct PushConstants: BitwiseCopyable {
        var planes, pixels: UInt32
    }

    /// Whether `config` runs the subgroup reduction (Shaders/global_avgpool_subgroup.comp: one workgroup per plane,
    /// subgroupAdd, then shared memory across subgroups): the tiled family, where the device has subgroup arithmetic.
    public func usesSubgroups(_ config: KernelConfig) -> Bool {
        config.strategy == .sharedMemoryTiled && config.limits.subgroupArithmetic
    }

    /// The dispatch and its bindings: the input (RGBA32F when ``vec4Input``), the output.
    public func steps<Resource>(input: Resource, output: Resource, config: KernelConfig = .texel) -> [KernelStep<
        Resource
    >] {
        if usesSubgroups(config) {
            let launch = KernelLaunch(
                kernel: KernelName.global_avgpool_subgroup,
                specialization: [ShaderConstants.global_avgpool_subgroup.LOCAL_SIZE_X: .uint(UInt32(config.lanes))],
                pushConstants: PushConstants(planes: UInt32(batch * channels), pixels: UInt32(pixels)),
                groups: Grid.flat(items: batch * channels, localSize: 1))
            return [KernelStep(launch, [.read(input), .write(output)]).on(config.dataPath)]
        }
        return [
            KernelStep(launch(), [.read(input, vec4Input ? .rgba32Float : .r32Float), .write(output)]).on(
                config.dataPath)
        ]
    }

    /// The dispatch alone.
    public func launch() -> KernelLaunch {
        KernelLaunch(
            kernel: KernelName.global_avgpool,
            specialization: [
                ShaderConstants.global_avgpool.LOCAL_SIZE_X: .uint(64),
                ShaderConstants.global_avgpool.VEC4_INPUT: .bool(vec4Input),
            ],
            pushConstants: PushConstants(planes: UInt32(batch * channels), pixels: UInt32(pixels)),
            groups: Grid.flat(items: batch * channels, localSize: 64))
    }
}

extension MaxPool: KernelOperation {
    public static let name = "maxpool"
}

extension AvgPool: KernelOperation {
    public static let name = "avgpool"
}

extension GlobalAvgPool: KernelOperation {
    public static let name = "global_avgpool"
}

// MARK: - Check

extension MaxPool {
    public var shapeDescription: String {
        "n\(batch) c\(channels) \(height)x\(width) k\(kernelSize) s\(stride) p\(padding)"
    }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        // All negative: a zero from padding would win.
        singleInputCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount, range: -4...(-1),
            steps: { steps(input: $0, output: $1, config: $2) }, reference: { reference(input: $0) })
    }
}

// MARK: - Check

extension AvgPool {
    public var shapeDescription: String { "n\(batch) c\(channels) \(height)x\(width) 2x2 s2 ceil" }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        // All positive: counting padding in would show.
        singleInputCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount, range: 1...3,
            steps: { steps(input: $0, output: $1, config: $2) }, reference: { reference(input: $0) })
    }
}

// MARK: - Check

extension GlobalAvgPool {
    public var shapeDescription: String { "n\(batch) c\(channels) \(pixels)px" }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        // Post-activation values, as the pooled features are (SiLU's range): a mean near zero would make the
        // relative error of a long float32 sum meaningless.
        singleInputCheck(
            op: Self.name, shape: shapeDescription, inputCount: inputCount, outputCount: outputCount, range: -0.25...2,
            steps: { steps(input: $0, output: $1, config: $2) }, reference: { reference(input: $0) })
    }
}
