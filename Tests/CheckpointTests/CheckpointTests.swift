import Checkpoint
import Foundation
import Kernels
import Models
import NetworkGraph
import Testing

/// The fixtures next to this file, made by Tools/make_fixtures.py with torch.save.
func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        .appendingPathComponent(name)
}

/// What PyTorch says each state dict holds (Fixtures/tensors.json).
struct Expected: Decodable {
    struct Tensor: Decodable {
        let name: String
        let shape: [Int]
        let values: [Double]
    }
    let model: [Tensor]
    let model_ema: [Tensor]

    static func load() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixture("tensors.json")))
    }
}

/// Each tensor has the expected name, shape and values (as float32: half, bfloat16 and double converted exactly or
/// rounded once).
func expectMatches(_ state: StateDict, _ expected: [Expected.Tensor]) {
    #expect(state.names == expected.map(\.name))
    for tensor in expected {
        guard let read = state[tensor.name] else { Issue.record("\(tensor.name) is missing"); continue }
        #expect(read.shape == tensor.shape, "\(tensor.name)")
        #expect(read.values == tensor.values.map { Float($0) }, "\(tensor.name): \(read.values) vs \(tensor.values)")
    }
}

@Test("a torch.save checkpoint reads exactly: dtypes, views with offsets and strides, shared storages, 0-d tensors")
func readsModel() throws {
    expectMatches(try TorchCheckpoint.stateDict(at: fixture("tensors.pth")), try Expected.load().model)
}

@Test("--ema reads model_ema and removes the 'module.' prefix")
func readsEMA() throws {
    expectMatches(try TorchCheckpoint.stateDict(at: fixture("tensors.pth"), ema: true), try Expected.load().model_ema)
}

@Test("bare state dicts and {'state_dict': ...} read the same")
func readsOtherLayouts() throws {
    let expected = try Expected.load().model
    expectMatches(try TorchCheckpoint.stateDict(at: fixture("bare.pth")), expected)
    expectMatches(try TorchCheckpoint.stateDict(at: fixture("state_dict.pth")), expected)
    #expect(throws: CheckpointError.self) { try TorchCheckpoint.stateDict(at: fixture("bare.pth"), ema: true) }
}

@Test("the legacy format is a clear error")
func legacyFormat() {
    #expect(throws: CheckpointError.legacyFormat) { try TorchCheckpoint.stateDict(at: fixture("legacy.pth")) }
    #expect(CheckpointError.legacyFormat.description.contains("torch.save"))
}

@Test("truncated and corrupted checkpoints are errors, never crashes")
func corruptCheckpoints() throws {
    let original = try Data(contentsOf: fixture("tensors.pth"))
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("corrupt-\(UUID().uuidString).pth")
    defer { try? FileManager.default.removeItem(at: url) }
    // Every truncation fails.
    for length in stride(from: 0, to: original.count, by: max(1, original.count / 97)) {
        try original.prefix(length).write(to: url)
        #expect(throws: (any Error).self, "truncated to \(length) bytes") { try WeightsFile.read(url) }
    }
    // Flipped bytes in the pickle or in a storage: the zip's checksums must catch every one. (Elsewhere, in the zip's
    // alignment padding say, a flip may be harmless; reading such a file must still not crash.)
    let bytes = [UInt8](original)
    func offset(of pattern: [UInt8]) -> Int? {
        (0...(bytes.count - pattern.count)).first { Array(bytes[$0..<($0 + pattern.count)]) == pattern }
    }
    let pickleStart = try #require(offset(of: [0x80, 0x02, 0x7D]))
    let storageStart = try #require(offset(of: withUnsafeBytes(of: Float(-1).bitPattern.littleEndian) { Array($0) }))
    for position in Array(pickleStart..<(pickleStart + 120)) + Array(storageStart..<(storageStart + 120)) {
        var flipped = bytes
        flipped[position] ^= 0x5A
        try Data(flipped).write(to: url)
        #expect(throws: (any Error).self, "byte \(position) flipped") { try WeightsFile.read(url) }
    }
    for position in stride(from: 3, to: bytes.count, by: 7) {
        var flipped = bytes
        flipped[position] ^= 0xA5
        try Data(flipped).write(to: url)
        _ = try? WeightsFile.read(url)
    }
    try Data("not a checkpoint at all".utf8).write(to: url)
    #expect(throws: CheckpointError.unknownFormat) { try WeightsFile.read(url) }
}

@Test("the unpickler rejects malformed pickles")
func malformedPickles() {
    #expect(throws: PickleError.self) { try Unpickler.load([0x80, 0x02, 0x7D]) }  // no STOP
    #expect(throws: PickleError.self) { try Unpickler.load([0x80, 0x02, 0xFF, 0x2E]) }  // unknown opcode
    #expect(throws: PickleError.self) { try Unpickler.load([0x80, 0x02, 0x68, 0x05, 0x2E]) }  // empty memo
    #expect(throws: PickleError.self) { try Unpickler.load([0x58, 0xFF, 0xFF, 0xFF, 0x7F]) }  // string past the end
    #expect(throws: PickleError.self) { try Unpickler.load([0x73, 0x2E]) }  // SETITEM on nothing
    // A million nested tuples would overflow the stack when freed: nesting is limited.
    let deep: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 100_000) + [0x2E]
    #expect(throws: PickleError.self) { try Unpickler.load(deep) }
    // A list appended to itself through the memo deepens until refused.
    let cycle: [UInt8] =
        [0x80, 0x02, 0x5D, 0x71, 0x00] + Array(repeating: [0x68, 0x00, 0x61] as [UInt8], count: 200).flatMap { $0 } + [
            0x2E
        ]
    #expect(throws: PickleError.self) { try Unpickler.load(cycle) }
}

@Test("hostile safetensors headers are errors, not traps or huge allocations")
func hostileSafetensors() throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    for header in [
        #"{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#,
        #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775800,9223372036854775804]}}"#,
        #"{"a":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,4]}}"#,
        #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
    ] {
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8) + [0, 0, 0, 0])
        try data.write(to: url)
        #expect(throws: CheckpointError.self, "\(header)") { try SafeTensors.read(url) }
    }
}

@Test("safetensors round-trips a checkpoint's state dict")
func safetensorsRoundTrip() throws {
    let state = try TorchCheckpoint.stateDict(at: fixture("tensors.pth"))
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
        "roundtrip-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try SafeTensors.write(state, to: url)
    let back = try WeightsFile.read(url)
    #expect(back.names == state.names)
    #expect(back.model == "bossnet_T0", "the model the .pth names is kept in the safetensors metadata")
    for tensor in state.tensors {
        #expect(back[tensor.name]?.shape == tensor.shape)
        #expect(back[tensor.name]?.values == tensor.values)
    }
}

/// A state dict with exactly the model's parameters, to bind; each tensor is filled with its own position in the
/// list, so a test can tell which tensor went where.
func stateDict(for model: Model, dropping: String? = nil, adding: NamedTensor? = nil, reshaping: String? = nil) throws
    -> StateDict
{
    var tensors = try model.stateDictEntries().enumerated().compactMap { index, entry -> NamedTensor? in
        guard entry.name != dropping else { return nil }
        let shape = entry.name == reshaping ? entry.shape + [1] : entry.shape
        return NamedTensor(name: entry.name, shape: shape, values: [Float](repeating: Float(index), count: entry.count))
    }
    if let adding { tensors.append(adding) }
    return try StateDict(tensors)
}

@Test("a checkpoint names its model (args.model, as torch.save pickles argparse.Namespace); binding follows it")
func checkpointNamesItsModel() throws {
    // tensors.pth holds 'args': argparse.Namespace(lr=0.1, model="bossnet_T0"), written by torch.save.
    #expect(try TorchCheckpoint.stateDict(at: fixture("tensors.pth")).model == "bossnet_T0")
    #expect(try TorchCheckpoint.stateDict(at: fixture("bare.pth")).model == nil)

    let t0 = try Model(name: "bossnet_T0"), t1 = try Model(name: "bossnet_T1")
    let unnamed = try stateDict(for: t0)
    #expect(throws: ModelChoiceError.ambiguous(["bossnet_T0", "bossnet_T1"])) {
        try CheckpointWeights.bind(unnamed, requested: nil)
    }
    let named = try StateDict(unnamed.tensors, metadata: [StateDict.modelKey: "bossnet_T1"])
    #expect(try CheckpointWeights.bind(named, requested: nil).model.name == "bossnet_T1")
    #expect(throws: ModelChoiceError.otherModel(named: "bossnet_T1", requested: "bossnet_T0")) {
        try CheckpointWeights.bind(named, requested: t0)
    }
    #expect(try CheckpointWeights.bind(named, requested: t0, allowOtherModel: true).model.name == "bossnet_T0")

    // The digest is of the values bound: the same for the same values under any name, another for one value changed.
    let a = try CheckpointWeights(state: unnamed, model: t0), b = try CheckpointWeights(state: named, model: t1)
    #expect(a.digest == b.digest && a.digest.hex.count == 64)
    let changed = try StateDict(
        unnamed.tensors.map { tensor in
            tensor.name != "fc.bias"
                ? tensor : NamedTensor(name: tensor.name, shape: tensor.shape, values: [0] + tensor.values.dropFirst())
        })
    #expect(try CheckpointWeights(state: changed, model: t0).digest != a.digest)
}

@Test("binding is strict: missing, unexpected and misshapen tensors are listed by name and shape")
func strictBinding() throws {
    let model = try Model(name: "bossnet_T0_nose")
    let state = try stateDict(for: model)
    let weights = try CheckpointWeights(state: state, model: model)
    // The graph takes the checkpoint's values by name: the stem's weights are conv1.weight.
    let graph = try model.graph(batch: 1, inputSize: 32, weights: weights)
    guard let stem = (graph.nodes[0].op as? ConvolutionLayer<Conv2D>)?.weights else {
        Issue.record("the stem is not a conv2d")
        return
    }
    #expect(stem.weight == "conv1.weight" && stem.norm?.name == "bn1")
    #expect(graph.parameters["conv1.weight"] == state["conv1.weight"]?.values)
    #expect(graph.parameters["bn1.running_var"] == state["bn1.running_var"]?.values)

    let missing = #expect(throws: BindingError.self) {
        try CheckpointWeights(state: stateDict(for: model, dropping: "layer3.3.net.1.to_qkv.weight"), model: model)
    }
    #expect(missing?.missing == ["layer3.3.net.1.to_qkv.weight [768, 256, 1, 1]"])
    #expect(missing?.description.contains("bossnet_T0_nose") == true)
    let extra = #expect(throws: BindingError.self) {
        try CheckpointWeights(
            state: stateDict(for: model, adding: NamedTensor(name: "head.weight", shape: [2], values: [1, 2])),
            model: model)
    }
    #expect(extra?.unexpected == ["head.weight [2]"])
    let misshapen = #expect(throws: BindingError.self) {
        try CheckpointWeights(state: stateDict(for: model, reshaping: "fc.bias"), model: model)
    }
    #expect(misshapen?.misshapen == ["fc.bias: checkpoint [1000, 1], model [1000]"])
    // num_batches_tracked may be absent.
    _ = try CheckpointWeights(state: stateDict(for: model, dropping: "bn1.num_batches_tracked"), model: model)
}

@Test("a pickle whose dict contains itself is refused (reference counting could never free it)")
func selfContainingPickle() throws {
    // PROTO 2, EMPTY_DICT, BINPUT 0, BINUNICODE "a", BINGET 0, SETITEM, STOP: d = {}; d["a"] = d
    let bytes: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x58, 0x01, 0x00, 0x00, 0x00, 0x61, 0x68, 0x00, 0x73, 0x2E]
    #expect(throws: PickleError.self) { try Unpickler.load(bytes) }
    do { _ = try Unpickler.load(bytes) } catch { #expect("\(error)".contains("contains itself"), "\(error)") }
    // A list inside a tuple inside the same list, through the memo.
    // PROTO 2, EMPTY_LIST, BINPUT 0, BINGET 0, TUPLE1, APPEND, STOP: l = []; l.append((l,))
    let nested: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x85, 0x61, 0x2E]
    #expect(throws: PickleError.self) { try Unpickler.load(nested) }
    // Sharing without a cycle stays fine: [d, d] with d = {}.
    let shared: [UInt8] = [0x80, 0x02, 0x5D, 0x7D, 0x71, 0x00, 0x61, 0x68, 0x00, 0x61, 0x2E]
    guard case let .list(list) = try Unpickler.load(shared) else { Issue.record("not a list"); return }
    #expect(list.items.count == 2)
}

@Test("a zip whose directory points outside the file is an error, not a crash inside ZIPFoundation (found by fuzzing)")
func zipOffsetsOutsideTheFile() throws {
    // The fuzzer's inputs: a central-directory offset that does not fit a file offset made ZIPFoundation trap, in the
    // classic end record and in a ZIP64 record placed where ZIPFoundation looks for one.
    // And an entry claiming 4 GiB in a 5 KB file, which made the reader allocate it.
    for name in [
        "fuzz_zip_offset.pth", "fuzz_zip64_offset.pth", "fuzz_zip_huge_entry.pth", "fuzz_zip64_huge_entry.pth",
    ] {
        #expect(throws: CheckpointError.self) { try TorchCheckpoint.stateDict(at: fixture(name)) }
        do { _ = try TorchCheckpoint.stateDict(at: fixture(name)) } catch {
            #expect("\(error)".contains("zip") || "\(error)".contains("damaged"), "\(error)")
        }
    }
    // Every real checkpoint still passes the check.
    for name in ["tensors.pth", "bare.pth", "state_dict.pth"] { _ = try TorchCheckpoint.stateDict(at: fixture(name)) }
}
