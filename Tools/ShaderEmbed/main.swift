// ShaderEmbed: the program the CompileShaders plugin runs at build time.
//
//   ShaderEmbed compile --source S.comp --include-dir DIR --output OUT.swift
//       compiles S.comp (and each variant it declares) with `glslangValidator -V --target-env vulkan1.1`,
//       checks the result with `spirv-val`, and writes a Swift file holding the SPIR-V as base64 text.
//   ShaderEmbed index --output OUT.swift S1.comp S2.comp ...
//       writes the table from kernel name to embedded SPIR-V.
//
// A shader declares variants (the same source compiled with other preprocessor definitions) with lines such as
//   // @variant tiled TILE_M=8 TILE_N=4
// which add a kernel named <file stem>_tiled. Every kernel is then built once per data path (Shaders/common.glsl):
// <name> (texel buffers), <name>_storage (STORAGE_BUFFERS) and <name>_fp16 (STORAGE_BUFFERS FP16_STORAGE).
// Compiler errors go to standard error unchanged (glslang names the file and line) and fail the build.

import Foundation

struct Failure: Error, CustomStringConvertible {
    let description: String
}

/// One SPIR-V module to build: a kernel name and the preprocessor definitions it is compiled with.
struct Variant {
    let name: String
    let defines: [String]
}

/// The shader's kernels before the data paths: the file's stem and one per `@variant` line.
func namedVariants(ofShaderAt path: String) throws -> [Variant] {
    let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    try checkIdentifier(stem, source: path)
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var result = [Variant(name: stem, defines: [])]
    for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("// @variant") else { continue }
        let words = trimmed.dropFirst("// @variant".count).split(separator: " ").map(String.init)
        guard let suffix = words.first else {
            throw Failure(
                description: "\(path):\(number + 1): error: '@variant' needs a name, e.g. '// @variant tiled TILE=8'")
        }
        let name = "\(stem)_\(suffix)"
        try checkIdentifier(name, source: "\(path):\(number + 1)")
        result.append(Variant(name: name, defines: Array(words.dropFirst())))
    }
    return result
}

/// Every SPIR-V module the shader builds: each of its kernels on each data path it declares.
func variants(ofShaderAt path: String) throws -> [Variant] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    // `// @datapaths storage fp16` limits a shader to some data paths (kernels no family runs on the others).
    var paths = dataPaths
    if let line = text.split(separator: "\n").first(where: {
        $0.trimmingCharacters(in: .whitespaces).hasPrefix("// @datapaths")
    }) {
        let names = line.trimmingCharacters(in: .whitespaces).dropFirst("// @datapaths".count).split(separator: " ")
            .map(String.init)
        paths = dataPaths.filter { names.contains($0.name) }
        guard !paths.isEmpty, names.allSatisfy({ name in dataPaths.contains { $0.name == name } }) else {
            throw Failure(
                description:
                    "\(path): error: '@datapaths' takes some of \(dataPaths.map(\.name).joined(separator: ", "))")
        }
    }
    return try namedVariants(ofShaderAt: path).flatMap { variant in
        paths.map { path in Variant(name: variant.name + path.suffix, defines: variant.defines + path.defines) }
    }
}

/// The data paths every kernel is built for: the name's suffix and the definitions (mirrored by Kernels.DataPath).
let dataPaths: [(name: String, suffix: String, defines: [String])] = [
    ("texel", "", []),
    ("storage", "_storage", ["STORAGE_BUFFERS"]),
    ("fp16", "_fp16", ["STORAGE_BUFFERS", "FP16_STORAGE"]),
]

func checkIdentifier(_ name: String, source: String) throws {
    let valid =
        name.first.map { $0.isLetter || $0 == "_" } == true
        && name.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" }
    if !valid {
        throw Failure(description: "\(source): error: kernel name '\(name)' must be letters, digits and '_' only")
    }
}

/// Finds a program on PATH (or in the usual install folders), as a shell would.
func findProgram(_ name: String) throws -> URL {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let folders = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"]
    for folder in folders where !folder.isEmpty {
        let candidate = URL(fileURLWithPath: folder).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    throw Failure(
        description: "error: '\(name)' was not found on PATH. Install the shader tools first "
            + "(Debian/Ubuntu: apt-get install glslang-tools spirv-tools; or run Tools/setup.sh).")
}

/// Runs a program and returns its exit status and everything it printed.
func run(_ program: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = program
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func compile(source: String, includeDirectory: String, output: String) throws {
    let glslang = try findProgram("glslangValidator")
    let spirvVal = try findProgram("spirv-val")
    let temporary = FileManager.default.temporaryDirectory
        .appendingPathComponent("shaderembed-\(ProcessInfo.processInfo.processIdentifier)", isDirectory: true)
    try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: temporary) }

    var swift = "// Generated by ShaderEmbed from \(URL(fileURLWithPath: source).lastPathComponent); do not edit.\n\n"
    swift += "extension ShaderLibrary {\n"
    for variant in try variants(ofShaderAt: source) {
        let spv = temporary.appendingPathComponent("\(variant.name).spv").path
        let compiled = try run(
            glslang,
            ["-V", "--target-env", "vulkan1.1", "-I\(includeDirectory)"]
                + variant.defines.map { "-D\($0)" } + ["-o", spv, source])
        if compiled.status != 0 {
            let what =
                variant.defines.isEmpty ? "" : " (variant \(variant.name): \(variant.defines.joined(separator: " ")))"
            throw Failure(description: "glslangValidator failed on \(source)\(what):\n\(compiled.output)")
        }
        let validated = try run(spirvVal, ["--target-env", "vulkan1.1", spv])
        if validated.status != 0 {
            throw Failure(
                description: "spirv-val rejected the SPIR-V of \(variant.name) from \(source):\n\(validated.output)")
        }
        let words = try Data(contentsOf: URL(fileURLWithPath: spv))
        swift += "    static let spirv_\(variant.name) = \"\(words.base64EncodedString())\"\n"
    }
    swift += "}\n\n" + (try constantsEnum(ofShaderAt: source)) + (try kernelNames(ofShaderAt: source))
    try swift.write(toFile: output, atomically: true, encoding: .utf8)
}

/// The shader's specialization-constant ids by their GLSL names, as Swift code: `ShaderConstants.<stem>.<NAME>`, with
/// `LOCAL_SIZE_X` for `local_size_x_id`. The launches name constants through these, so an id written in one place
/// only; the pipeline checks each id's type against the SPIR-V when it is made.
func constantsEnum(ofShaderAt path: String) throws -> String {
    let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var constants: [(name: String, id: Int)] = []
    for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
        guard line.hasPrefix("layout"), let open = line.firstIndex(of: "("), let close = line.firstIndex(of: ")")
        else { continue }
        let qualifiers = line[line.index(after: open)..<close].split(separator: ",").map {
            $0.split(separator: "=").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        for pair in qualifiers where pair.count == 2 {
            guard let id = Int(pair[1]) else { continue }
            if pair[0] == "local_size_x_id" { constants.append(("LOCAL_SIZE_X", id)) }
            if pair[0] == "constant_id" {
                // layout(constant_id = N) const TYPE NAME = ...;
                let words = line[line.index(after: close)...].split(whereSeparator: { " =;".contains($0) })
                guard words.count >= 3, words[0] == "const" else {
                    throw Failure(description: "\(path): error: cannot read the constant declared in '\(line)'")
                }
                constants.append((String(words[2]), id))
            }
        }
    }
    var swift = "extension ShaderConstants {\n"
    swift += "    /// Specialization-constant ids of Shaders/\(stem).comp.\n"
    swift += "    enum \(stem) {\n"
    for constant in constants.sorted(by: { $0.id < $1.id }) {
        swift += "        static let \(constant.name): UInt32 = \(constant.id)\n"
    }
    return swift + "    }\n}\n"
}

/// The shader's kernel names before a data path's suffix, as Swift code: `KernelName.<name>`. The launches name their
/// kernels through these, so a kernel that is not built fails to compile rather than to load.
func kernelNames(ofShaderAt path: String) throws -> String {
    var swift = "\nextension KernelName {\n"
    for variant in try namedVariants(ofShaderAt: path) {
        let how = variant.defines.isEmpty ? "" : " with \(variant.defines.joined(separator: " "))"
        swift += "    /// Shaders/\(URL(fileURLWithPath: path).lastPathComponent)\(how).\n"
        swift += "    public static let \(variant.name) = \"\(variant.name)\"\n"
    }
    return swift + "}\n"
}

func index(sources: [String], output: String) throws {
    let names = try sources.flatMap { try variants(ofShaderAt: $0) }.map(\.name).sorted()
    var swift = "// Generated by ShaderEmbed; do not edit.\n\n"
    swift += "extension ShaderLibrary {\n"
    swift += "    /// Every embedded kernel: its name and its SPIR-V as base64 text.\n"
    swift += "    static let embedded: [String: String] = [\n"
    for name in names { swift += "        \"\(name)\": spirv_\(name),\n" }
    swift += "    ]\n}\n\n"
    swift += "/// Every shader's specialization-constant ids, by shader and constant name (generated from Shaders/).\n"
    swift += "enum ShaderConstants {}\n\n"
    swift += "/// Every kernel's name before its data path's suffix (`_storage`, `_fp16`), generated from Shaders/.\n"
    swift += "public enum KernelName {}\n"
    try swift.write(toFile: output, atomically: true, encoding: .utf8)
}

func value(of option: String, in arguments: [String]) throws -> String {
    guard let at = arguments.firstIndex(of: option), at + 1 < arguments.count else {
        throw Failure(description: "ShaderEmbed: missing \(option)")
    }
    return arguments[at + 1]
}

do {
    let arguments = Array(CommandLine.arguments.dropFirst())
    switch arguments.first {
    case "compile":
        try compile(
            source: value(of: "--source", in: arguments),
            includeDirectory: value(of: "--include-dir", in: arguments),
            output: value(of: "--output", in: arguments))
    case "index":
        let output = try value(of: "--output", in: arguments)
        let sources = arguments.dropFirst().filter { $0.hasSuffix(".comp") }
        try index(sources: Array(sources), output: output)
    default:
        throw Failure(
            description: "usage: ShaderEmbed compile --source S --include-dir D --output O | index --output O S...")
    }
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(1)
}
