// The build-tool plugin that compiles every Shaders/*.comp to SPIR-V and embeds it in the target that uses it.
//
// One build command per shader file (so shaders compile in parallel and only changed ones rebuild), plus one command
// that writes the index of every embedded kernel. Inputs and outputs are explicit and sorted, so the build system
// knows exactly when to rerun each command. The work itself (glslangValidator -V, spirv-val, embedding) is done by
// the ShaderEmbed program next to this plugin.

import Foundation
import PackagePlugin

@main
struct CompileShaders: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let shaderDirectory = context.package.directoryURL.appending(path: "Shaders", directoryHint: .isDirectory)
        let files = try FileManager.default.contentsOfDirectory(atPath: shaderDirectory.path(percentEncoded: false))
            .sorted()
        let sources = files.filter { $0.hasSuffix(".comp") }.map { shaderDirectory.appending(path: $0) }
        // Include files: every change to one of them recompiles every shader (they are few and small).
        let includes = files.filter { $0.hasSuffix(".glsl") }.map { shaderDirectory.appending(path: $0) }
        if sources.isEmpty {
            Diagnostics.error("no shaders found in \(shaderDirectory.path(percentEncoded: false))")
            return []
        }

        let tool = try context.tool(named: "ShaderEmbed").url
        let outputDirectory = context.pluginWorkDirectoryURL.appending(
            path: "EmbeddedShaders", directoryHint: .isDirectory)

        var commands: [Command] = []
        for source in sources {
            let stem = source.deletingPathExtension().lastPathComponent
            let output = outputDirectory.appending(path: "Shader_\(stem).swift")
            commands.append(
                .buildCommand(
                    displayName: "Compiling shader \(source.lastPathComponent)",
                    executable: tool,
                    arguments: [
                        "compile",
                        "--source", source.path(percentEncoded: false),
                        "--include-dir", shaderDirectory.path(percentEncoded: false),
                        "--output", output.path(percentEncoded: false),
                    ],
                    inputFiles: [source] + includes,
                    outputFiles: [output]
                ))
        }
        let index = outputDirectory.appending(path: "ShaderIndex.swift")
        commands.append(
            .buildCommand(
                displayName: "Indexing \(sources.count) shaders",
                executable: tool,
                arguments: ["index", "--output", index.path(percentEncoded: false)]
                    + sources.map { $0.path(percentEncoded: false) },
                inputFiles: sources,
                outputFiles: [index]
            ))
        return commands
    }
}
