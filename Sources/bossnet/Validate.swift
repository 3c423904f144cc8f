import ArgumentParser
import Foundation
import Kernels
import Models
import NetworkGraph
import VulkanCompute

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Check every kernel on this machine's device against the CPU reference, at a model's real layer shapes.",
        discussion: """
            Builds each --model and --arch (default: bossnet_T0 and bossnet_T1) at the given input size and batch, and \
            runs the kernels of every distinct operation of its graph once, on random inputs, against the plain CPU \
            implementation. A row passes when the relative L2 error \
            is within its family's tolerance (\(Tolerance.float32RelativeL2) for float32 kernels, \
            \(Tolerance.float16StorageRelativeL2) with 16-bit storage, \(Tolerance.float16ArithmeticRelativeL2) with 16-bit \
            products) and no output is NaN or unwritten. --kernels all checks every family the device can run. \
            --backward checks the training kernels instead: every operation's gradient, the train-mode BatchNorm and \
            the epilogue's gradient, the loss and an AdamW step over the model's parameters, against float64 \
            references. The training kernels compute in float32 whatever the family, reading their inputs through texel \
            views in the texel family and storage buffers in the others: they are checked in the texel and storage \
            families. \
            Exits with status 1 if any row fails.
            """)

    @OptionGroup var selection: DeviceSelection
    @OptionGroup var kernels: KernelFamilyList

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// Default: bossnet_T0 and bossnet_T1.
    @OptionGroup var modelList: ModelList

    @Option(help: "Input image size the layer shapes are taken from.")
    var inputSize = 224

    @Option(help: "Batch size of every check.")
    var batch = 1

    @Option(help: "Seed for the random inputs (default: a fresh one, printed).")
    var seed: UInt64?

    @Flag(help: "Check the training kernels (gradients, train-mode BatchNorm, loss, optimizer) instead.")
    var backward = false

    func validate() throws {
        _ = try kernels.choices()
        try validateInputSize(inputSize)
        _ = try chosenModels()
        guard (1...64).contains(batch) else { throw ValidationError("--batch must be between 1 and 64; got \(batch).") }
    }

    /// The models asked for, bossnet_T0 and bossnet_T1 by default.
    func chosenModels() throws -> [Model] {
        modelList.isEmpty ? [try Model(name: "bossnet_T0"), try Model(name: "bossnet_T1")] : try modelList.resolve()
    }

    /// Every distinct operation of the chosen models' graphs, each once, labelled "model: first node with it".
    func distinctChecks() throws -> [(String, KernelCheck)] {
        let models = try chosenModels()
        let graphs = try models.map { try $0.graph(batch: batch, inputSize: inputSize) }
        let checks = backward ? Graph.distinctBackwardChecks(of: graphs) : Graph.distinctChecks(of: graphs)
        return checks.map { ("\(models[$0.graph].name): \($0.node)", $0.check) }
    }

    func run() throws {
        let device: VulkanDevice
        do { device = try selection.open() } catch { throw report(error) }
        let seed = seed ?? SeededRandom.freshSeed()
        let checks = try distinctChecks()
        let families: [KernelFamily]
        do { families = try distinctFamilies(on: device) } catch { throw report(error) }
        let rows = runChecks(checks, families: families, on: device, seed: seed)
        if !json { progressDone() }
        let silent = reportValidation(device.instance)
        if json {
            try printJSON(
                ValidationOutput(
                    device: device.info, limits: device.limitsMode.rawValue, input_size: inputSize, batch: batch,
                    seed: seed, families: families.map(\.rawValue), results: rows))
        } else {
            printTable(rows, families: families, device: device, seed: seed)
        }
        if rows.contains(where: { !$0.pass }) || !silent { throw ExitCode(1) }
    }

    /// The kernel families asked for that the device runs, each once.
    private func distinctFamilies(on device: VulkanDevice) throws -> [KernelFamily] {
        // The training kernels read texel views in the texel family and storage buffers in every other.
        if backward { return [.texel, .storage] }
        var families: [KernelFamily] = []
        for family in try kernels.runnable(on: device).map({ $0.family(on: device.info.type) })
        where !families.contains(family) {
            families.append(family)
        }
        return families
    }

    /// Every check in every family, family by family, with progress on standard error; the families share the CPU
    /// references of checks that read the same values.
    private func runChecks(
        _ checks: [(String, KernelCheck)], families: [KernelFamily], on device: VulkanDevice, seed: UInt64
    ) -> [ValidationRow] {
        let pipelines = KernelPipelines(device: device)
        let references = ReferenceMemo()
        var rows: [ValidationRow] = []
        let total = checks.count * families.count
        for (familyIndex, family) in families.enumerated() {
            for (index, (layer, check)) in checks.enumerated() {
                if !json {
                    progress(
                        "[\(familyIndex * checks.count + index + 1)/\(total)] \(family) \(check.op) \(check.shape)")
                }
                let tolerance = Tolerance.relativeL2(for: family)
                do {
                    let result = try check.run(
                        on: device, pipelines: pipelines, seed: seed &+ UInt64(index), family: family,
                        references: references)
                    rows.append(
                        ValidationRow(
                            layer: layer, family: family.rawValue,
                            kernels: Set(result.kernels).sorted().joined(separator: " "),
                            op: check.op, shape: check.shape, tolerance: tolerance, rel_error: result.relativeL2,
                            max_abs_error: result.maxAbsolute, pass: result.passes,
                            error: result.nonFinite.isEmpty ? nil : "non-finite outputs at \(result.nonFinite)"))
                } catch {
                    rows.append(
                        ValidationRow(
                            layer: layer, family: family.rawValue, kernels: "", op: check.op, shape: check.shape,
                            tolerance: tolerance, rel_error: .nan, max_abs_error: .nan, pass: false, error: "\(error)"))
                }
            }
        }
        return rows
    }

    private func printTable(_ rows: [ValidationRow], families: [KernelFamily], device: VulkanDevice, seed: UInt64) {
        let limits = device.limitsMode == .minimum ? ", the Vulkan spec's minimum limits" : ""
        print(
            "Kernels against the CPU reference on \(device.info.name)\(limits), input \(inputSize), batch \(batch), seed \(seed)"
        )
        let table =
            [["family", "layer", "op", "kernels", "shape", "rel error", "tolerance", "max abs error", "result"]]
            + rows.map { row in
                [
                    row.family, row.layer, row.op, row.kernels, row.shape, String(format: "%.2e", row.rel_error),
                    String(format: "%.0e", row.tolerance), String(format: "%.2e", row.max_abs_error),
                    row.pass ? "pass" : "FAIL" + (row.error.map { ": \($0)" } ?? ""),
                ]
            }
        print(formatTable(table))
        let failed = rows.filter { !$0.pass }.count
        print(
            failed == 0
                ? "All \(rows.count) checks pass (\(families.map(\.rawValue).joined(separator: ", ")))."
                : "\(failed) of \(rows.count) checks FAIL.")
    }
}

/// One row of `validate`'s output (the JSON keys as they are).
private struct ValidationRow: Encodable {
    let layer: String
    let family: String
    let kernels: String
    let op: String
    let shape: String
    let tolerance: Double
    let rel_error: Double
    let max_abs_error: Double
    let pass: Bool
    let error: String?
}

/// `validate --json`.
private struct ValidationOutput: Encodable {
    let device: DeviceInfo
    let limits: String
    let input_size: Int
    let batch: Int
    let seed: UInt64
    let families: [String]
    let results: [ValidationRow]
}

/// Lays rows out in aligned columns, the first row as the header.
func formatTable(_ rows: [[String]]) -> String {
    guard let header = rows.first else { return "" }
    let widths = header.indices.map { column in
        rows.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
    }
    func line(_ row: [String]) -> String {
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
    return ([line(header), rule] + rows.dropFirst().map(line)).joined(separator: "\n")
}
