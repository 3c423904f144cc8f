import ArgumentParser
import Foundation
import Models
import VulkanCompute

/// `--model NAME` or `--arch TEXT`, shared by the commands that build a network.
struct ModelSelection: ParsableArguments {
    @Option(help: "A published model: bossnet_T0, bossnet_T0_nose or bossnet_T1.")
    var model: String?

    @Option(
        help: ArgumentHelp(
            "An architecture instead of a named model.",
            discussion: """
                hytra:<s1>-<s2>-<s3>-<s4>[,act=relu|silu][,se=yes|no][,last-stride=1|2], each stage a string of 1 (ResConv) \
                and 0 (ResAtt), or _ for an empty stage; BossNet-T0 is hytra:1-1-11101-000100000. \
                mbconv:<c1>,...,<c19> with each choice 6x3, 6x5, 3x3 or 3x5 (expansion x kernel).
                """))
    var arch: String?

    /// The model chosen, bossnet_T0 when neither option is given.
    func resolve(default name: String = "bossnet_T0") throws -> Model {
        try requested() ?? Model(name: name)
    }

    /// The model given with --model or --arch, nil when neither is given.
    func requested() throws -> Model? {
        if model != nil && arch != nil { throw ValidationError("Give --model or --arch, not both.") }
        do {
            if let arch { return Model(try Architecture.parse(arch)) }
            return try model.map { try Model(name: $0) }
        } catch let error as ArchitectureError {
            throw ValidationError(error.description)
        }
    }
}

/// `--model NAME...` and `--arch TEXT...`, shared by the commands that take several models (bench, validate).
struct ModelList: ParsableArguments {
    @Option(
        name: .customLong("model"), parsing: .upToNextOption,
        help: "Models: bossnet_T0, bossnet_T0_nose, bossnet_T1 (--model A B or --model A --model B).")
    var names: [String] = []

    @Option(
        name: .customLong("arch"), parsing: .upToNextOption,
        help: "Architectures, in the syntax of `bossnet info --help` (several, like --model).")
    var architectures: [String] = []

    /// Whether neither option was given.
    var isEmpty: Bool { names.isEmpty && architectures.isEmpty }

    /// The named models, then the architectures.
    func resolve() throws -> [Model] {
        do {
            return try names.map { try Model(name: $0) } + architectures.map { Model(try Architecture.parse($0)) }
        } catch let error as ArchitectureError {
            throw ValidationError(error.description)
        }
    }
}

/// Checks an input size the way every command does, naming the option the user gave.
func validateInputSize(_ size: Int, option: String = "--input-size") throws {
    guard size >= Model.minimumInputSize && size <= Model.maximumInputSize else {
        throw ValidationError(
            "\(option) must be between \(Model.minimumInputSize) and \(Model.maximumInputSize) pixels; got \(size).")
    }
}

/// 3440000000 -> "3.44 G".
func formatGiga(_ value: Int) -> String { String(format: "%.2f G", Double(value) / 1e9) }

/// 38415960 -> "38,415,960".
func formatThousands(_ value: Int) -> String {
    let digits = String(value)
    var result = ""
    for (index, character) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
        result.append(character)
    }
    return result
}

/// Writes an Encodable value as pretty, key-sorted JSON on standard output (slashes in paths left as they are);
/// `verbose` includes each device's extension names.
func printJSON<T: Encodable>(_ value: T, verbose: Bool = false) throws {
    let encoder = JSONEncoder()
    encoder.userInfo[DeviceInfo.encodesExtensions] = verbose
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
        positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
