import ArgumentParser
import Foundation
import VulkanCompute

/// `--device N`, shared by every command that runs work on a device.
struct DeviceSelection: ParsableArguments {
    @Option(name: .long, help: "The Vulkan device to use, by its number in `bossnet devices` (default: BOSSNET_DEVICE, else the most capable device).")
    var device: Int?

    /// Opens the chosen device, with the validation layer when BOSSNET_VALIDATION=1.
    func open() throws -> VulkanDevice {
        try openDevice(index: device)
    }
}

/// Opens device `index` (the default device when nil), with the validation layer when BOSSNET_VALIDATION=1, and
/// warns on standard error when its pipeline cache file had to be ignored.
func openDevice(index: Int?) throws -> VulkanDevice {
    let device = try VulkanDevice(instance: VulkanInstance(validation: .fromEnvironment), index: index)
    if let warning = device.pipelineCacheWarning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
    return device
}

/// Prints what the validation layer reported (when BOSSNET_VALIDATION=1) and says whether it was silent.
func reportValidation(_ instance: VulkanInstance) -> Bool {
    !instance.validationEnabled || reportValidation(instance.validationMessages.map { "\($0)" })
}

/// Prints validation messages (gathered from several devices, say) and says whether there were none.
func reportValidation(_ messages: [String]) -> Bool {
    guard !messages.isEmpty else { return true }
    FileHandle.standardError.write(Data("validation layer: \(messages.count) message(s)\n".utf8))
    for message in messages { FileHandle.standardError.write(Data("  \(message)\n".utf8)) }
    return false
}

/// Whether standard error is a terminal, so progress lines are worth printing.
var standardErrorIsTerminal: Bool { isatty(2) != 0 }

/// Writes a progress line over the previous one on a terminal; nothing elsewhere.
func progress(_ text: String) {
    guard standardErrorIsTerminal else { return }
    FileHandle.standardError.write(Data("\r\u{1B}[2K\(text)".utf8))
}

/// Ends a run of progress lines.
func progressDone() {
    guard standardErrorIsTerminal else { return }
    FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
}
