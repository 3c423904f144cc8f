import Foundation

/// What a compute kernel's SPIR-V declares about its interface: the bindings of descriptor set 0 and the size of its
/// push-constant block.
///
/// Pipelines take their descriptor layout from here, and the Swift mirror of a push-constant struct is checked
/// against ``pushConstantSize`` when the pipeline is made, so Swift and GLSL cannot drift apart silently.
public struct SPIRVReflection: Sendable, Equatable {
    /// Binding number to what it holds, for descriptor set 0 (binding numbers are dense from 0).
    public let bindings: [BindingKind]
    /// Bytes of the push-constant block (0 when there is none).
    public let pushConstantSize: Int
    /// The optional device features the module's capabilities need.
    public let needs: KernelNeeds
    /// The specialization constants the module declares, by constant id (`layout(constant_id = N)`; the workgroup
    /// size's `local_size_x_id` among them), with their types.
    public let specializationConstants: [UInt32: SpecializationType]

    /// Reads the interface from SPIR-V words. Throws on anything it does not understand.
    public init(spirv words: [UInt32]) throws {
        guard words.count >= 5, words[0] == 0x0723_0203 else { throw ReflectionError("not a SPIR-V module") }
        let module = try Declarations(words)
        let kinds = try module.bindingKinds()
        let count = (kinds.keys.max() ?? -1) + 1
        needs = KernelNeeds(capabilities: module.capabilities)
        bindings = try (0..<count).map { index in
            guard let kind = kinds[index] else {
                throw ReflectionError("bindings must be numbered 0, 1, ... without gaps; \(index) is missing")
            }
            return kind
        }
        pushConstantSize = try module.pushConstantSize()
        var specialization: [UInt32: SpecializationType] = [:]
        for (id, type) in module.specConstants {
            if let constantID = module.decorations[id]?[1] { specialization[constantID] = type }  // SpecId
        }
        specializationConstants = specialization
    }
}

/// What the reflection reads from a module, gathered in one pass over its instructions (words from 5 on).
private struct Declarations {
    var decorations: [UInt32: [UInt32: UInt32]] = [:]  // id -> decoration -> first literal
    var memberOffsets: [UInt32: [UInt32: UInt32]] = [:]  // struct -> member -> Offset
    var scalarBytes: [UInt32: Int] = [:]  // int/float type -> bytes
    var vectors: [UInt32: (component: UInt32, count: Int)] = [:]
    var structs: [UInt32: [UInt32]] = [:]
    var pointers: [UInt32: (storage: UInt32, pointee: UInt32)] = [:]
    var images: [UInt32: (dim: UInt32, sampled: UInt32)] = [:]
    var sampledImages: [UInt32: UInt32] = [:]
    var variables: [(type: UInt32, id: UInt32, storage: UInt32)] = []
    var capabilities: Set<UInt32> = []
    var scalarTypes: [UInt32: SpecializationType] = [:]
    var specConstants: [UInt32: SpecializationType] = [:]  // result id -> type

    init(_ words: [UInt32]) throws {
        var at = 5
        while at < words.count {
            let count = Int(words[at] >> 16)
            let opcode = words[at] & 0xFFFF
            guard count > 0, at + count <= words.count else {
                throw ReflectionError("truncated instruction at word \(at)")
            }
            let operands = Array(words[(at + 1)..<(at + count)])
            switch opcode {
            case 17 where operands.count >= 1:  // OpCapability
                capabilities.insert(operands[0])
            case 71 where operands.count >= 2:  // OpDecorate target decoration literal...
                decorations[operands[0], default: [:]][operands[1]] = operands.count > 2 ? operands[2] : 0
            case 72 where operands.count >= 4 && operands[2] == 35:  // OpMemberDecorate struct member Offset value
                memberOffsets[operands[0], default: [:]][operands[1]] = operands[3]
            case 20:  // OpTypeBool result
                scalarTypes[operands[0]] = .bool
            case 21, 22:  // OpTypeInt result width signedness / OpTypeFloat result width
                scalarBytes[operands[0]] = Int(operands[1]) / 8
                scalarTypes[operands[0]] =
                    opcode == 22 ? .float : (operands.count > 2 && operands[2] == 1 ? .int : .uint)
            case 48...50 where operands.count >= 2:  // OpSpecConstantTrue / False / OpSpecConstant type result
                specConstants[operands[1]] = opcode == 50 ? scalarTypes[operands[0]] : .bool
            case 23:  // OpTypeVector result component count
                vectors[operands[0]] = (operands[1], Int(operands[2]))
            case 25:  // OpTypeImage result sampledType dim depth arrayed ms sampled format
                images[operands[0]] = (operands[2], operands[6])
            case 27:  // OpTypeSampledImage result image
                sampledImages[operands[0]] = operands[1]
            case 30:  // OpTypeStruct result members...
                structs[operands[0]] = Array(operands.dropFirst())
            case 32:  // OpTypePointer result storage pointee
                pointers[operands[0]] = (operands[1], operands[2])
            case 59:  // OpVariable type result storage
                variables.append((operands[0], operands[1], operands[2]))
            default:
                break
            }
            at += count
        }
    }

    func size(of type: UInt32) throws -> Int {
        if let bytes = scalarBytes[type] { return bytes }
        if let vector = vectors[type] { return try size(of: vector.component) * vector.count }
        throw ReflectionError("push constants may hold only scalars and vectors")
    }

    /// Bytes of the push-constant block: the end of its last member (0 without one).
    func pushConstantSize() throws -> Int {
        var push = 0
        for variable in variables where variable.storage == 9 {  // PushConstant
            guard let pointer = pointers[variable.type] else { continue }
            guard let members = structs[pointer.pointee] else {
                throw ReflectionError("push constants are not a block")
            }
            for (index, member) in members.enumerated() {
                let offset = Int(memberOffsets[pointer.pointee]?[UInt32(index)] ?? 0)
                push = max(push, offset + (try size(of: member)))
            }
        }
        return push
    }

    /// The kind of each binding of descriptor set 0, by binding number.
    func bindingKinds() throws -> [Int: BindingKind] {
        var kinds: [Int: BindingKind] = [:]
        // UniformConstant, Uniform, StorageBuffer
        for variable in variables where [0, 2, 12].contains(variable.storage) {
            guard let pointer = pointers[variable.type] else { continue }
            guard let binding = decorations[variable.id]?[33] else { continue }
            if let set = decorations[variable.id]?[34], set != 0 {
                throw ReflectionError("binding \(binding) is in descriptor set \(set); kernels use set 0 only")
            }
            let kind: BindingKind
            if variable.storage == 12 || (variable.storage == 2 && decorations[pointer.pointee]?[3] != nil) {
                kind = .storageBuffer
            } else if let image = sampledImages[pointer.pointee].flatMap({ images[$0] }), image.dim == 5,
                image.sampled == 1
            {
                kind = .uniformTexelBuffer
            } else if let image = images[pointer.pointee], image.dim == 5, image.sampled == 2 {
                kind = .storageTexelBuffer
            } else {
                throw ReflectionError("binding \(binding) is neither a storage buffer nor a texel buffer")
            }
            if let earlier = kinds[Int(binding)], earlier != kind {
                throw ReflectionError("binding \(binding) is declared as two different kinds")
            }
            kinds[Int(binding)] = kind
        }
        return kinds
    }
}

/// The type of a specialization constant, as the shader declares it.
public enum SpecializationType: Sendable, Equatable, CustomStringConvertible {
    case bool, int, uint, float

    public var description: String {
        switch self {
        case .bool: "bool"
        case .int: "int"
        case .uint: "uint"
        case .float: "float"
        }
    }
}

/// SPIR-V that ``SPIRVReflection`` cannot read.
public struct ReflectionError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = "SPIR-V reflection: \(description)" }
}

/// Optional features a kernel needs, read from its SPIR-V capabilities.
public struct KernelNeeds: Sendable, Equatable, CustomStringConvertible {
    /// 16-bit values in storage buffers (StorageBuffer16BitAccess).
    public var float16Storage = false
    /// 16-bit float arithmetic (Float16).
    public var float16Arithmetic = false
    /// Subgroup arithmetic (GroupNonUniformArithmetic).
    public var subgroupArithmetic = false
    /// Cooperative matrices (CooperativeMatrixNV or CooperativeMatrixKHR).
    public var cooperativeMatrix = false
    /// Subgroup shuffles (GroupNonUniformShuffle).
    public var subgroupShuffle = false

    init(capabilities: Set<UInt32>) {
        float16Storage = capabilities.contains(4433)
        float16Arithmetic = capabilities.contains(9)
        subgroupArithmetic = capabilities.contains(63)
        cooperativeMatrix = capabilities.contains(5357) || capabilities.contains(6022)
        subgroupShuffle = capabilities.contains(65)
    }

    /// What of this `features` and `limits` lack, by name (empty when the kernel can run).
    public func missing(features: OptionalFeatures, limits: DeviceLimits) -> [String] {
        var missing: [String] = []
        if float16Storage && !features.float16Storage { missing.append("16-bit storage") }
        if float16Arithmetic && !features.float16Arithmetic { missing.append("shaderFloat16") }
        if subgroupArithmetic && !limits.subgroupArithmetic { missing.append("subgroup arithmetic") }
        if cooperativeMatrix && !features.cooperativeMatrix { missing.append("cooperative matrix") }
        if subgroupShuffle && !limits.subgroupShuffle { missing.append("subgroup shuffle") }
        return missing
    }

    public var description: String {
        [
            float16Storage ? "fp16-storage" : nil, float16Arithmetic ? "fp16" : nil,
            subgroupArithmetic ? "subgroup-arithmetic" : nil,
            cooperativeMatrix ? "cooperative-matrix" : nil, subgroupShuffle ? "subgroup-shuffle" : nil,
        ].compactMap { $0 }.joined(separator: ", ")
    }
}
