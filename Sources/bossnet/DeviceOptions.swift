import ArgumentParser
import Foundation
import Kernels
import NetworkGraph
import PublishedWeights
import VulkanCompute

/// `--device N`, shared by every command that runs work on a device.
struct DeviceSelection: ParsableArguments {
    @Option(
        name: .long,
        help:
            "The Vulkan device to use, by its number in `bossnet devices` (default: BOSSNET_DEVICE, else the most capable device)."
    )
    var device: Int?

    /// Opens the chosen device with what the environment asks for (``Environment``).
    func open() throws -> VulkanDevice {
        try openDevice(index: device)
    }
}

/// `--kernels` for the commands that compare families (bench, validate): several, `all`, or the default `auto`.
struct KernelFamilyList: ParsableArguments {
    @Option(
        name: .customLong("kernels"), parsing: .upToNextOption,
        help: ArgumentHelp(
            "Kernel families to run side by side: auto (the planner's choice per node for the device), texel, direct, storage, tiled, fp16, fp16math, or all.",
            valueName: "family"))
    var names: [String] = []

    /// The choices, `all` expanded to every family (default: auto).
    func choices() throws -> [KernelChoice] {
        let choices = try names.flatMap { try parseKernelChoices($0) }
        return choices.isEmpty ? [.automatic] : choices
    }

    /// The choices `device` can run. One it cannot is skipped with a note when several were asked for (`all`), and an
    /// error when asked for alone.
    func runnable(on device: VulkanDevice) throws -> [KernelChoice] {
        let asked = try choices()
        return try asked.filter { choice in
            let family = choice.family(on: device.info.type)
            guard family.isSupported(by: device.enabledFeatures) else {
                guard asked.count > 1 else { throw PlanError.familyUnsupported(family, device: device.info.name) }
                note("skipping the \(family) kernels: \(device.info.name) lacks what they need")
                return false
            }
            return true
        }
    }
}

/// `--kernels` for the commands that run one plan (classify, eval): one value, so it never takes an input's place.
struct KernelFamilyOption: ParsableArguments {
    @Option(
        name: .customLong("kernels"),
        help: ArgumentHelp(
            "Which kernels run: auto (the planner's choice per node for the device), texel, direct, storage, tiled, fp16 or fp16math.",
            valueName: "family"))
    var name: String = "auto"

    /// The choice.
    func choice() throws -> KernelChoice {
        let choices = try parseKernelChoices(name)
        guard choices.count == 1, let choice = choices.first else {
            throw ValidationError("This command runs one family of kernels; bench and validate compare several.")
        }
        return choice
    }
}

/// `auto`, a family's name, `all`, or several separated by commas.
func parseKernelChoices(_ text: String) throws -> [KernelChoice] {
    try text.split(separator: ",").map(String.init).flatMap { name -> [KernelChoice] in
        if name == "all" { return KernelFamily.allCases.map { .family($0) } }
        guard let choice = KernelChoice(name) else {
            throw ValidationError(
                "--kernels takes \((KernelChoice.names + ["all"]).joined(separator: ", ")); got '\(name)'.")
        }
        return [choice]
    }
}

/// Opens device `index` (`BOSSNET_DEVICE`, else the most capable device, when nil) with what the environment asks
/// for (``Environment``), and warns on standard error when its pipeline cache file had to be ignored.
func openDevice(index: Int?) throws -> VulkanDevice {
    let device = try VulkanDevice(
        instance: VulkanInstance(validation: Environment.validation), index: index ?? Environment.device(),
        options: DeviceOptions(
            pipelineCacheDirectory: Environment.pipelineCacheDirectory,
            memoryBudgetBytes: try Environment.memoryBudget(), limits: try Environment.limits()))
    if let warning = device.pipelineCacheWarning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
    return device
}

/// The environment variables the tool reads: the one place anything in this package reads the environment (the
/// libraries take every such choice as an argument).
enum Environment {
    private static var variables: [String: String] { ProcessInfo.processInfo.environment }

    /// `BOSSNET_DEVICE=N`: the device when `--device` is not given.
    static func device() throws -> Int? {
        guard let text = variables["BOSSNET_DEVICE"], !text.isEmpty else { return nil }
        guard let number = Int(text), number >= 0 else {
            throw ValidationError(
                "BOSSNET_DEVICE is '\(text)', which is not a device number. Set it to an index from `bossnet devices`, or unset it."
            )
        }
        return number
    }

    /// `BOSSNET_VALIDATION=1`: the Khronos validation layer, synchronization validation on.
    static var validation: ValidationMode { variables["BOSSNET_VALIDATION"] == "1" ? .required : .off }

    /// `BOSSNET_MEMORY_BUDGET=BYTES` (or with a K, M or G suffix, powers of 1024): the device memory sessions plan
    /// for, in place of the device's largest heap (lavapipe reports 2 GiB whatever the machine has).
    static func memoryBudget() throws -> Int? {
        guard let text = variables["BOSSNET_MEMORY_BUDGET"], !text.isEmpty else { return nil }
        let units: [String: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        let unit = text.last.flatMap { units[String($0).uppercased()] }
        guard let number = Int(unit == nil ? text : String(text.dropLast())), number > 0,
            case let (bytes, overflow) = number.multipliedReportingOverflow(by: unit ?? 1), !overflow
        else {
            throw ValidationError(
                "BOSSNET_MEMORY_BUDGET is '\(text)'; set it to a number of bytes, such as 8G or 512M, or unset it.")
        }
        return bytes
    }

    /// `BOSSNET_LIMITS=minimum`: the Vulkan spec's minimum limits.
    static func limits() throws -> LimitsMode {
        let text = variables["BOSSNET_LIMITS"] ?? ""
        guard let limits = text.isEmpty ? .device : LimitsMode(rawValue: text) else {
            throw ValidationError(
                "BOSSNET_LIMITS is '\(text)'; set it to 'minimum' (the Vulkan spec's least limits) or 'device', or unset it."
            )
        }
        return limits
    }

    /// The pipeline cache's folder (`$XDG_CACHE_HOME/bossnet` or `~/.cache/bossnet`); none with `BOSSNET_PIPELINE_CACHE=0`.
    static var pipelineCacheDirectory: URL? {
        variables["BOSSNET_PIPELINE_CACHE"] == "0" ? nil : PipelineCacheFile.defaultDirectory(environment: variables)
    }

    /// The published checkpoints' cache: `BOSSNET_WEIGHTS_CACHE`, else the `weights` folder of the tool's cache
    /// folder; downloading from `BOSSNET_WEIGHTS_URL` (a mirror's folder) when set, else the authors' release.
    static func weightsCache() throws -> WeightsCache {
        let folder: URL
        if let path = variables["BOSSNET_WEIGHTS_CACHE"], !path.isEmpty {
            folder = URL(fileURLWithPath: path, isDirectory: true)
        } else if let root = PipelineCacheFile.defaultDirectory(environment: variables) {
            folder = root.appendingPathComponent("weights", isDirectory: true)
        } else {
            throw ValidationError(
                "Neither HOME nor XDG_CACHE_HOME is set, so there is no cache for published weights; set BOSSNET_WEIGHTS_CACHE to a folder."
            )
        }
        guard let text = variables["BOSSNET_WEIGHTS_URL"], !text.isEmpty else { return WeightsCache(directory: folder) }
        guard let source = URL(string: text.hasSuffix("/") ? text : text + "/"),
            ["http", "https"].contains(source.scheme ?? "")
        else {
            throw ValidationError(
                "BOSSNET_WEIGHTS_URL is '\(text)', which is not an http(s) folder URL; set it to a mirror of the release folder, or unset it."
            )
        }
        return WeightsCache(directory: folder, source: source)
    }

    /// `BOSSNET_CHECK=1`: name the first node whose output diverges from the CPU reference.
    static var check: Bool { variables["BOSSNET_CHECK"] == "1" }
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

/// Seconds as a clock shows them: `m:ss`, or `h:mm:ss` from an hour.
func clockDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600
        ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

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
