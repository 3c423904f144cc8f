import ArgumentParser
import Foundation
import Models

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's per-stage shapes, parameters and multiply-adds.",
        discussion:
            "MAdds count one multiply-add per weight use in convolutions (SE's included), attention's QK^T and AV, and the classifier."
    )

    @OptionGroup var selection: ModelSelection

    @Option(help: "Input image size (pixels per side).")
    var inputSize = 224

    @Flag(help: "List every layer, not only the stages.")
    var layers = false

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        try validateInputSize(inputSize)
        _ = try selection.resolve()
    }

    func run() throws {
        let model = try selection.resolve()
        let info = try ModelInfo(model: model, inputSize: inputSize)
        if json {
            try printJSON(info)
            return
        }
        print(
            "\(info.model) at \(info.input_size)x\(info.input_size): \(formatThousands(info.parameters)) parameters, "
                + "\(formatGiga(info.madds)) MAdds, \(info.state_dict_entries) state-dict entries")
        print("architecture: \(info.architecture)")
        print()
        var rows = [["stage", "output (CxHxW)", "parameters", "MAdds"]]
        rows += info.stages.map { [$0.name, $0.output, formatThousands($0.parameters), formatGiga($0.madds)] }
        print(formatTable(rows))
        if layers {
            print()
            print(
                formatTable(
                    [["layer", "op", "output", "MAdds"]]
                        + info.layers.map {
                            [$0.name, $0.op, $0.output, String(format: "%.1f M", Double($0.madds) / 1e6)]
                        }))
        }
    }
}
