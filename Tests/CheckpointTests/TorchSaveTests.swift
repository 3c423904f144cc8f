import Checkpoint
import Foundation
import Testing

/// A checkpoint in the authors' layout: model and EMA state dicts, an optimizer's state dict with tensors under
/// integer keys, a scheduler's plain values, and every Python value kind the writer has.
func trainingCheckpoint() -> TorchValue {
    let model = TorchValue.orderedDict([
        TorchEntry("conv.weight", .float32(shape: [2, 1, 2, 2], values: [1, -2, 3.5, 4, 5, 6, -7, 8.25])),
        TorchEntry("bn.num_batches_tracked", .int64(shape: [], values: [7])),
        TorchEntry("fc.bias", .float32(shape: [3], values: [0.5, -0.25, Float.leastNormalMagnitude])),
    ])
    let state = TorchValue.dict([
        TorchEntry(
            .int(0),
            .dict([
                TorchEntry("step", .float32(shape: [], values: [3])),
                TorchEntry("exp_avg", .float32(shape: [3], values: [1, 2, 3])),
            ]))
    ])
    let group = TorchValue.dict([
        TorchEntry("lr", .float(1e-3)), TorchEntry("betas", .tuple([.float(0.9), .float(0.999)])),
        TorchEntry("amsgrad", .bool(false)), TorchEntry("foreach", .none), TorchEntry("params", .list([.int(0)])),
    ])
    return .dict([
        TorchEntry("model", model), TorchEntry("model_ema", model),
        TorchEntry("optimizer", .dict([TorchEntry("state", state), TorchEntry("param_groups", .list([group]))])),
        TorchEntry("epoch", .int(1 << 40)), TorchEntry("args", .dict([TorchEntry("model", .string("bossnet_T0 ü"))])),
    ])
}

@Test(
    "torch.save's format written: our reader gets back every tensor, int and string (torch.load: Tools/check_training_checkpoint.py)"
)
func torchSaveRoundTrip() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("torchsave-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("checkpoint.pth")
    try TorchSave.write(trainingCheckpoint(), to: url);
    try? FileManager.default.copyItem(at: url, to: URL(fileURLWithPath: "/tmp/ts/c\(UUID()).pth"))
    // Written again over itself: the rename replaces the file, and no temporary file is left behind.
    try TorchSave.write(trainingCheckpoint(), to: url);
    try? FileManager.default.copyItem(at: url, to: URL(fileURLWithPath: "/tmp/ts/c\(UUID()).pth"))
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["checkpoint.pth"])

    let state = try TorchCheckpoint.stateDict(at: url)
    #expect(state.model == "bossnet_T0 ü")
    #expect(state.tensors.map(\.name) == ["conv.weight", "bn.num_batches_tracked", "fc.bias"])
    #expect(state.tensors[0].shape == [2, 1, 2, 2] && state.tensors[0].values == [1, -2, 3.5, 4, 5, 6, -7, 8.25])
    #expect(state.tensors[1].shape == [] && state.tensors[1].values == [7] && state.tensors[1].storedType == "int64")
    #expect(state.tensors[2].values == [0.5, -0.25, Float.leastNormalMagnitude])

    let (root, storages) = try TorchCheckpoint.open(url)
    guard case let .dict(top) = root, case let .int(epoch)? = top["epoch"],
        case let .dict(optimizer)? = top["optimizer"], case let .dict(states)? = optimizer["state"],
        case let .dict(first)? = states.entries.first?.value, case let .tensor(step)? = first["step"],
        case let .list(groups)? = optimizer["param_groups"], case let .dict(group)? = groups.items.first,
        case let .tuple(betas)? = group["betas"], case let .float(lr)? = group["lr"]
    else { Issue.record("the optimizer's layout did not read back: \(root.kind)"); return }
    #expect(epoch == 1 << 40)
    #expect(try storages.tensor(step, name: "step").values == [3])
    #expect(betas.count == 2 && lr == 1e-3)
}
