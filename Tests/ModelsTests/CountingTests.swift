import Models
import NetworkGraph
import Testing

/// The published figures (shared/BOSSNET.md): parameters exactly, MAdds as the authors' FLOP counter rounds them.
@Test("parameter counts and state-dict entries match the authors' checkpoints")
func parameterCounts() throws {
    #expect(try Model(name: "bossnet_T0").parameterCount() == 38_415_960)
    #expect(try Model(name: "bossnet_T1").parameterCount() == 38_415_960)
    #expect(try Model(name: "bossnet_T0_nose").parameterCount() == 37_319_080)
    #expect(try Model(name: "bossnet_T0").stateDictEntries().count == 380)
    #expect(try Model(name: "bossnet_T0_nose").stateDictEntries().count == 352)
}

@Test(
    "MAdds match the published table",
    arguments: [
        ("bossnet_T0", 224, 3.44), ("bossnet_T0", 288, 5.73), ("bossnet_T1", 224, 7.94), ("bossnet_T1", 256, 10.51),
    ])
func madds(model: String, inputSize: Int, giga: Double) throws {
    let info = try ModelInfo(model: Model(name: model), inputSize: inputSize)
    #expect(abs(Double(info.madds) / 1e9 - giga) < 0.005, "\(model) at \(inputSize): \(Double(info.madds) / 1e9) G")
}

/// Activations share memory by lifetime: BossNet-T0 at 224 needs a small fraction of what one buffer per tensor would,
/// and not much more than the most bytes ever live at once (the bound no placement can beat).
@Test("the memory plan of BossNet-T0 at 224 keeps peak activations well below their sum")
func memoryReuse() throws {
    let graph = try Model(name: "bossnet_T0").graph(batch: 1, inputSize: 224)
    let scratch = try graph.scratchBytes()
    let plan = MemoryPlan(graph: graph, scratchBytes: scratch)
    #expect(
        Double(plan.arenaBytes) / Double(plan.unsharedBytes) < 0.25,
        "arena \(plan.arenaBytes) bytes, unshared \(plan.unsharedBytes) bytes")
    // The most bytes live at any node: arena tensors written at or before it and read at or after it, plus its scratch.
    let lastUse = graph.lastUse
    var bound = 0
    for index in graph.nodes.indices {
        var live = scratch[index].reduce(0, +)
        for (producer, node) in graph.nodes.enumerated() where producer <= index && node.output != graph.output {
            if (lastUse[node.output] ?? producer) >= index { live += graph.shapes[node.output].count * 4 }
        }
        bound = max(bound, live)
    }
    #expect(plan.arenaBytes >= bound)
    #expect(Double(plan.arenaBytes) <= 1.5 * Double(bound), "arena \(plan.arenaBytes) bytes, live peak \(bound) bytes")
}

@Test("--arch refuses a stage longer than 32 blocks, which could ask for any amount of memory (found by fuzzing)")
func archStageBound() throws {
    let longest = String(repeating: "1", count: HyTraArchitecture.maximumBlocksPerStage)
    _ = try Architecture.parse("hytra:1-1-1-\(longest)")
    #expect(throws: ArchitectureError.self) { try Architecture.parse("hytra:1-1-1-\(longest)0") }
    do { _ = try Architecture.parse("hytra:1-1-1-\(longest)0") } catch {
        #expect("\(error)".contains("at most 32"), "\(error)")
    }
}
