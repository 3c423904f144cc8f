import ArgumentParser
import Foundation
import Kernels
import NetworkGraph
import VulkanCompute

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every kernel on this machine's device against the CPU reference, at BossNet-T's real layer shapes.",
        discussion: """
            Runs each kernel once at the shapes BossNet-T0 (and T1's stride-1 last stage) uses at the given input size, \
            on random inputs, and compares with the plain CPU implementation. A row passes when the relative L2 error \
            is within its family's tolerance (\(Tolerance.float32RelativeL2) for float32 kernels, \
            \(Tolerance.float16StorageRelativeL2) with 16-bit storage, \(Tolerance.float16ArithmeticRelativeL2) with 16-bit \
            products) and no output is NaN or unwritten. --kernels all checks every family the device can run. \
            Exits with status 1 if any row fails.
            """)

    @OptionGroup var selection: DeviceSelection

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Input image size the layer shapes are taken from.")
    var inputSize = 224

    @Option(help: "Batch size of every check.")
    var batch = 1

    @Option(help: "Seed for the random inputs (default: a fresh one, printed).")
    var seed: UInt64?

    func validate() throws {
        _ = try selection.kernelChoices()
        guard inputSize >= 32, inputSize % 32 == 0 else {
            throw ValidationError("--input-size must be a multiple of 32 (224, 256, 288, ...); got \(inputSize).")
        }
        guard (1...64).contains(batch) else { throw ValidationError("--batch must be between 1 and 64; got \(batch).") }
    }

    func run() throws {
        let device: VulkanDevice
        do { device = try selection.open() } catch { throw report(error) }
        let seed = seed ?? SeededRandom.freshSeed()
        let checks = bossNetLayerChecks(inputSize: inputSize, batch: batch)
        let pipelines = PipelineCache(device: device)
        let asked = try selection.kernelChoices()
        var families: [KernelFamily] = []
        for choice in asked {
            let family: KernelFamily
            switch choice {
            case .automatic: family = device.info.type == .cpu ? .texel : .tiled
            case let .family(chosen): family = chosen
            }
            guard family.isSupported(by: device.enabledFeatures) else {
                // With `all`, skip what the device cannot run; a family asked for by name is an error.
                if asked.count > 1 { note("skipping the \(family) kernels: \(device.info.name) lacks what they need"); continue }
                throw report(PlanError.familyUnsupported(family, device: device.info.name))
            }
            if !families.contains(family) { families.append(family) }
        }

        struct Row: Encodable {
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
        var rows: [Row] = []
        let total = checks.count * families.count
        for (familyIndex, family) in families.enumerated() {
            for (index, (layer, check)) in checks.enumerated() {
                if !json { progress("[\(familyIndex * checks.count + index + 1)/\(total)] \(family) \(check.op) \(check.shape)") }
                let tolerance = Tolerance.relativeL2(for: family)
                do {
                    let result = try check.run(on: device, pipelines: pipelines, seed: seed &+ UInt64(index), family: family)
                    rows.append(Row(layer: layer, family: family.rawValue, kernels: Set(result.kernels).sorted().joined(separator: " "),
                                    op: check.op, shape: check.shape, tolerance: tolerance, rel_error: result.relativeL2,
                                    max_abs_error: result.maxAbsolute, pass: result.passes,
                                    error: result.nonFinite.isEmpty ? nil : "non-finite outputs at \(result.nonFinite)"))
                } catch {
                    rows.append(Row(layer: layer, family: family.rawValue, kernels: "", op: check.op, shape: check.shape,
                                    tolerance: tolerance, rel_error: .nan, max_abs_error: .nan, pass: false, error: "\(error)"))
                }
            }
        }
        if !json { progressDone() }
        let silent = reportValidation(device.instance)
        let failed = rows.filter { !$0.pass }.count

        if json {
            struct Output: Encodable {
                let device: String
                let limits: String
                let input_size: Int
                let batch: Int
                let seed: UInt64
                let families: [String]
                let results: [Row]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            let output = Output(device: device.info.name, limits: device.limitsMode.rawValue, input_size: inputSize, batch: batch,
                                seed: seed, families: families.map(\.rawValue), results: rows)
            print(String(decoding: try encoder.encode(output), as: UTF8.self))
        } else {
            let limits = device.limitsMode == .minimum ? ", the Vulkan spec's minimum limits" : ""
            print("Kernels against the CPU reference on \(device.info.name)\(limits), input \(inputSize), batch \(batch), seed \(seed)")
            let table = [["family", "layer", "op", "kernels", "shape", "rel error", "tolerance", "max abs error", "result"]] + rows.map { row in
                [row.family, row.layer, row.op, row.kernels, row.shape, String(format: "%.2e", row.rel_error),
                 String(format: "%.0e", row.tolerance), String(format: "%.2e", row.max_abs_error),
                 row.pass ? "pass" : "FAIL" + (row.error.map { ": \($0)" } ?? "")]
            }
            print(formatTable(table))
            print(failed == 0 ? "All \(rows.count) checks pass (\(families.map(\.rawValue).joined(separator: ", ")))."
                              : "\(failed) of \(rows.count) checks FAIL.")
        }
        if failed > 0 || !silent { throw ExitCode(1) }
    }
}

/// The kernels at the shapes of BossNet-T's layers for `inputSize` (stage widths and strides from shared/BOSSNET.md),
/// one check per distinct layer shape, each labelled with a layer that has it.
func bossNetLayerChecks(inputSize: Int, batch: Int) -> [(String, KernelCheck)] {
    let act = Activation.silu
    let withAct = Epilogue(activation: act)
    let withResidual = Epilogue(activation: act, hasResidual: true)
    let stem = inputSize / 2, afterPool = inputSize / 4
    var checks: [(String, KernelCheck)] = [
        ("conv1 (stem)", Conv2D(batch: batch, inChannels: 3, height: inputSize, width: inputSize, outChannels: 64,
                                kernelSize: 7, stride: 2, padding: 3, epilogue: withAct).check()),
        ("maxpool (stem)", MaxPool(batch: batch, channels: 64, height: stem, width: stem).check()),
    ]
    // (stage, planes, in channels, stride, input side, first block kind) for T0; stage 4 with stride 1 is T1's.
    let stages: [(name: String, planes: Int, inChannels: Int, stride: Int, side: Int, attention: Bool)] = [
        ("layer1", 64, 64, 1, afterPool, false),
        ("layer2", 128, 256, 2, afterPool, false),
        ("layer3", 256, 512, 2, afterPool / 2, false),
        ("layer4", 512, 1024, 2, afterPool / 4, true),
        ("layer4 (T1, stride 1)", 512, 1024, 1, afterPool / 4, true),
    ]
    for stage in stages {
        let (planes, out, side) = (stage.planes, stage.planes * 4, stage.side)
        let outSide = (side + stage.stride - 1) / stage.stride
        let (pixels, outPixels) = (side * side, outSide * outSide)
        let name = stage.name
        // The first block's shortcut: pooling when strided, then conv 1x1 + BN.
        if stage.stride == 2 {
            checks.append(("\(name).0 shortcut pool", AvgPool(batch: batch, channels: stage.inChannels, height: side, width: side).check()))
        }
        checks.append(("\(name).0 shortcut conv", Pointwise(batch: batch, inChannels: stage.inChannels, pixels: outPixels,
                                                             outChannels: out).check()))
        if !stage.attention {
            checks += [
                ("\(name).0 conv1", Pointwise(batch: batch, inChannels: stage.inChannels, pixels: pixels, outChannels: planes).check()),
                ("\(name).0 peg+bn1+act", Depthwise(batch: batch, channels: planes, height: side, width: side, kernelSize: 3,
                                                    stride: stage.stride, padding: 1, epilogue: withAct).check()),
                ("\(name).0 conv2+bn2+act", Conv2D(batch: batch, inChannels: planes, height: outSide, width: outSide,
                                                   outChannels: planes, kernelSize: 3, padding: 1, epilogue: withAct).check()),
                ("\(name).0 conv3+bn3", Pointwise(batch: batch, inChannels: planes, pixels: outPixels, outChannels: out).check()),
                ("\(name).0 se+residual+act", SqueezeExcite(batch: batch, channels: out, pixels: outPixels, reduced: out / 16,
                                                            innerActivation: .relu, epilogue: withResidual).check()),
            ]
            if name == "layer3" {
                // Stage 3's ResAtt block at stride 1 (block 3 of [1, 1, 1, 0, 1]), 4 heads.
                let heads = planes / Attention.headChannels
                checks += [
                    ("layer3.3 proj.0", Pointwise(batch: batch, inChannels: out, pixels: outPixels, outChannels: planes).check()),
                    ("layer3.3 proj.1+bn+act", Depthwise(batch: batch, channels: planes, height: outSide, width: outSide,
                                                         kernelSize: 3, padding: 1, epilogue: withAct).check()),
                    ("layer3.3 to_qkv", Pointwise(batch: batch, inChannels: planes, pixels: outPixels, outChannels: 3 * planes).check()),
                    ("layer3.3 attention+bn+act", Attention(batch: batch, heads: heads, tokens: outPixels, activation: act).check()),
                    ("layer3.3 net.4+bn+residual+act", Pointwise(batch: batch, inChannels: planes, pixels: outPixels,
                                                                 outChannels: out, epilogue: withResidual).check()),
                ]
            }
        } else {
            let heads = planes / Attention.headChannels
            checks += [
                ("\(name).0 proj.0", Pointwise(batch: batch, inChannels: stage.inChannels, pixels: pixels, outChannels: planes).check()),
                ("\(name).0 proj.1+bn+act", Depthwise(batch: batch, channels: planes, height: side, width: side, kernelSize: 3,
                                                      stride: stage.stride, padding: 1, epilogue: withAct).check()),
                ("\(name).0 to_qkv", Pointwise(batch: batch, inChannels: planes, pixels: outPixels, outChannels: 3 * planes).check()),
                ("\(name).0 attention+bn+act", Attention(batch: batch, heads: heads, tokens: outPixels, activation: act).check()),
                ("\(name).0 net.4+bn+residual+act", Pointwise(batch: batch, inChannels: planes, pixels: outPixels,
                                                              outChannels: out, epilogue: withResidual).check()),
            ]
            if stage.stride == 2 {
                // Stage 4's ResConv block (block 3 of [0, 0, 0, 1, 0, ...]) at stride 1 on the T0 grid.
                checks += [
                    ("layer4.3 conv1", Pointwise(batch: batch, inChannels: out, pixels: outPixels, outChannels: planes).check()),
                    ("layer4.3 peg+bn1+act", Depthwise(batch: batch, channels: planes, height: outSide, width: outSide,
                                                       kernelSize: 3, padding: 1, epilogue: withAct).check()),
                    ("layer4.3 conv2+bn2+act", Conv2D(batch: batch, inChannels: planes, height: outSide, width: outSide,
                                                      outChannels: planes, kernelSize: 3, padding: 1, epilogue: withAct).check()),
                    ("layer4.3 se+residual+act", SqueezeExcite(batch: batch, channels: out, pixels: outPixels, reduced: out / 16,
                                                               innerActivation: .relu, epilogue: withResidual).check()),
                    ("avgpool (head)", GlobalAvgPool(batch: batch, channels: out, pixels: outPixels).check()),
                    ("fc", Pointwise.linear(batch: batch, inFeatures: out, outFeatures: 1000).check()),
                ]
            }
        }
    }
    // Beyond the published models: an attention block in stage 1 (as --arch allows), the longest token count.
    checks.append(("stage-1 attention (--arch)", Attention(batch: batch, heads: 1, tokens: afterPool * afterPool, activation: act).check()))
    // The MBConv space's depthwise 5x5 with stride and an SE with SiLU inside.
    checks += [
        ("mbconv dw 5x5 s2", Depthwise(batch: batch, channels: 240, height: inputSize / 8, width: inputSize / 8, kernelSize: 5,
                                       stride: 2, padding: 2, epilogue: withAct).check()),
        ("mbconv se", SqueezeExcite(batch: batch, channels: 240, pixels: (inputSize / 16) * (inputSize / 16), reduced: 10,
                                    innerActivation: .silu).check()),
        ("mbconv stem", Conv2D(batch: batch, inChannels: 3, height: inputSize, width: inputSize, outChannels: 32, kernelSize: 3,
                               stride: 2, padding: 1, epilogue: withAct).check()),
    ]
    return checks
}

/// Lays rows out in aligned columns, the first row as the header.
func formatTable(_ rows: [[String]]) -> String {
    guard let header = rows.first else { return "" }
    let widths = header.indices.map { column in rows.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
    func line(_ row: [String]) -> String {
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
    return ([line(header), rule] + rows.dropFirst().map(line)).joined(separator: "\n")
}
