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
            Bench.self, Classify.self, Eval.self, Info.self, Convert.self, Devices.self, Validate.self, Weights.self,
        ]
    )
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
