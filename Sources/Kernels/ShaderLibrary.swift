import Foundation
import VulkanCompute

/// The SPIR-V kernels compiled from Shaders/ at build time and embedded in this module.
///
/// Each Shaders/<name>.comp becomes a kernel `<name>`, plus `<name>_<variant>` for each `// @variant` line in it.
/// Nothing is read from disk or compiled at run time.
public enum ShaderLibrary {
    /// The names of every embedded kernel, sorted.
    public static var names: [String] { embedded.keys.sorted() }

    /// The SPIR-V words of the kernel called `name`.
    public static func spirv(named name: String) throws -> [UInt32] {
        guard let text = embedded[name] else { throw VulkanSetupError.unknownKernel(name) }
        guard let data = Data(base64Encoded: text), data.count % 4 == 0, !data.isEmpty else {
            preconditionFailure("embedded SPIR-V for '\(name)' is damaged; the build wrote it, so rebuild")
        }
        return data.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
    }
}
