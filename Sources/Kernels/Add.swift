import Foundation
import VulkanCompute

/// The specialization constants of Shaders/add.comp, by name.
private typealias AddSpec = ShaderConstants.add

/// Elementwise add with a fused activation: `y[i] = act(a[i] + b[i])`. Kernel: Shaders/add.comp.
public struct Add: Hashable, Sendable, Codable {
    /// Elements.
    public var count: Int
    public var activation: Activation

    public init(count: Int, activation: Activation = .identity) {
        self.count = count
        self.activation = activation
    }

    /// The CPU reference, in Double.
    public func reference(_ a: [Float], _ b: [Float]) -> [Float] {
        precondition(a.count == count && b.count == count, "add: inputs differ from the count")
        return zip(a, b).map { Float(activation.apply(Double($0) + Double($1))) }
    }

    /// The kernel's push constants; mirrors `Push` in Shaders/add.comp.
    public struct PushConstants: BitwiseCopyable, Equatable {
        public var count: UInt32
    }

    /// vec4s each invocation handles.
    static let vec4PerInvocation = 4

    /// The dispatch and its bindings: `a` and `b` (RGBA32F views covering `count` rounded up to whole vec4s), the
    /// output.
    public func steps<Resource>(a: Resource, b: Resource, output: Resource, config: KernelConfig = .texel)
        -> [KernelStep<Resource>]
    {
        [KernelStep(launch(), [.read(a, .rgba32Float), .read(b, .rgba32Float), .write(output)]).on(config.dataPath)]
    }

    /// The dispatch alone.
    public func launch() -> KernelLaunch {
        KernelLaunch(
            kernel: KernelName.add,
            specialization: [
                AddSpec.LOCAL_SIZE_X: .uint(64), AddSpec.ACTIVATION: .uint(activation.rawValue),
                AddSpec.VEC4_PER_INVOCATION: .uint(UInt32(Self.vec4PerInvocation)),
            ],
            pushConstants: PushConstants(count: UInt32(count)),
            groups: (max(1, ((count + 3) / 4 + 64 * Self.vec4PerInvocation - 1) / (64 * Self.vec4PerInvocation)), 1, 1))
    }
}

extension Add: KernelOperation {
    public static let name = "add"
}

// MARK: - Check

extension Add {
    public var shapeDescription: String { "\(count) elements \(activation)" }

    /// Compares the kernel with its CPU reference at this shape, on random inputs (see ``KernelCheck``).
    public func check() -> KernelCheck {
        KernelCheck(op: Self.name, shape: shapeDescription) { runner, random in
            let a = runner.stored(random.floats(count, in: -4...4)), b = runner.stored(random.floats(count, in: -4...4))
            let y = try runner.output(count)
            runner.add(steps(a: try runner.input(a), b: try runner.input(b), output: y, config: runner.config))
            try runner.run()
            return Comparison(try runner.read(y), runner.reference(reading: [a, b]) { reference(a, b) })
        }
    }
}
