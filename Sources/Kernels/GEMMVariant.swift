import Foundation
import VulkanCompute

/// How one GEMM-shaped operation (``GEMMOperation``) runs under a ``KernelConfig``: chosen in one place, its
/// `variant(_:)`, from its shape and the configuration's settings; its weights, scratch and steps follow from the
/// variant.
public enum GEMMVariant: Sendable {
    /// Register tiles per invocation (Shaders/conv2d.comp, Shaders/pointwise.comp; `_shuffle` where the subgroup
    /// shares fetches).
    case registerTiled
    /// Winograd transforms around a batched GEMM (3x3 stride-1 convolutions).
    case winograd(Winograd)
    /// Shared-memory tiles, split-K where the grid is small.
    case sharedMemoryTiled(TiledConvolution)
    /// A GEMV, four images a workgroup (linear layers, in every family).
    case gemv

    /// What profiles and `--verbose` plans show beside the kernel names ("winograd", "tiled medium split 4", "gemv");
    /// nothing for register tiles, whose kernel name says it.
    public var summary: String? {
        switch self {
        case .registerTiled: nil
        case .winograd: "winograd"
        case let .sharedMemoryTiled(tiled): tiled.summary
        case .gemv: "gemv"
        }
    }
}

extension Conv2D {
    /// The variant this convolution runs as under `config`: shared-memory tiles in the families of that strategy;
    /// Winograd where the convolution strategy asks for it and the convolution is 3x3 with stride 1; register tiles
    /// otherwise.
    public func variant(_ config: KernelConfig) -> GEMMVariant {
        if config.strategy == .sharedMemoryTiled { return .sharedMemoryTiled(TiledConvolution(self, config: config)) }
        if config.convolution == .winograd, let winograd = Winograd(self) { return .winograd(winograd) }
        return .registerTiled
    }
}

extension Pointwise {
    /// The variant this layer runs as under `config`: a GEMV for a linear layer (``usesGEMV``), else its 1x1
    /// convolution's (register or shared-memory tiles; Winograd is only for 3x3).
    public func variant(_ config: KernelConfig) -> GEMMVariant {
        usesGEMV ? .gemv : asConvolution.variant(config)
    }
}
