import ArgumentParser
import Foundation
import VulkanCompute

@main
struct Bossnet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bossnet",
        abstract: "BossNet-T inference on any Vulkan GPU.",
        version: bossnetVersion,
        subcommands: [
            Bench.self, Classify.self, Eval.self, Grad.self, Train.self, Info.self, Convert.self, Devices.self,
            Validate.self,
            Weights.self,
        ]
    )

    /// Runs the command line, with `bossnet eval --help` (and `-h`, `help eval`) showing the options of `eval run`,
    /// the default subcommand that users type as `bossnet eval DIR`.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["help", "eval"] { arguments = ["eval", "--help"] }
        if arguments.count == 2, arguments[0] == "eval", ["--help", "-h"].contains(arguments[1]) {
            arguments = ["eval", "run", "--help"]
        }
        await main(arguments)
    }
}

/// The tool's version: `bossnet --version`.
let bossnetVersion = "0.4.0"

/// Prints `error` to standard error and returns the exit status to leave with: 2 when there is no usable Vulkan
/// device, 1 for any other failure.
func report(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(error)\(hint(for: error))\n".utf8))
    if let setup = error as? VulkanSetupError, setup == .noDevice { return ExitCode(2) }
    return ExitCode(1)
}

/// What the tool adds to a library error: which of its commands, scripts or variables help (the libraries name none).
func hint(for error: Error) -> String {
    switch error as? VulkanSetupError {
    case .noDevice?: " Tools/setup.sh installs everything this project needs."
    case .deviceIndexOutOfRange?: " Run `bossnet devices` to list them."
    case .validationLayerMissing?: " (BOSSNET_VALIDATION=1 asks for it.)"
    default: ""
    }
}
