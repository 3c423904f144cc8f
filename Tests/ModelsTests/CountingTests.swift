import Models
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

@Test("MAdds match the published table", arguments: [
    ("bossnet_T0", 224, 3.44), ("bossnet_T0", 288, 5.73), ("bossnet_T1", 224, 7.94), ("bossnet_T1", 256, 10.51),
])
func madds(model: String, inputSize: Int, giga: Double) throws {
    let info = try ModelInfo(model: Model(name: model), inputSize: inputSize)
    #expect(abs(Double(info.madds) / 1e9 - giga) < 0.005, "\(model) at \(inputSize): \(Double(info.madds) / 1e9) G")
}
