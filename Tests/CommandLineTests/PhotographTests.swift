// The synthetic weights on photographs: the device and the CPU reference agree as they do under trained weights.
import Foundation
import Images
import Kernels
import TestSupport
import Testing

/// Two photographs at 224 px (about a minute of the CPU reference in debug); CI runs every photograph at 224 and 288 px
/// with the release build (`.ci/run`). The weights before calibration on a photo-like image missed by 0.1 here.
@Test("bossnet_T0's synthetic weights on photographs: the device within 1e-4 of --cpu at 224 px")
func photographsDeviceMatchesCPU() throws {
    let photos = ["cat/cat_1.jpg", "dog/dog_1.png"].map {
        evaluationFixture("set/\($0)").path
    }
    let device = temporary("device.npy"), cpu = temporary("cpu.npy")
    defer { for url in [device, cpu] { try? FileManager.default.removeItem(at: url) } }
    let start = Date()
    for (flags, output) in [([String](), device), (["--cpu"], cpu)] {
        let result = try run(
            [
                "classify", "--model", "bossnet_T0", "--weights", "synthetic", "--input-size", "224", "--logits",
                output.path,
            ]
                + flags + photos)
        #expect(result.status == 0, "\(result.error)")
        testProgress("photographs at 224 px: \(flags.isEmpty ? "the device" : "the CPU reference") done", since: start)
    }
    let (onDevice, reference) = (try NumPyArray(contentsOf: device), try NumPyArray(contentsOf: cpu))
    #expect(onDevice.shape == [2, 1000] && reference.shape == [2, 1000])
    let distances = (0..<2).map { row in
        let range = (row * 1000)..<((row + 1) * 1000)
        return Comparison(Array(onDevice.values[range]), Array(reference.values[range])).relativeL2
    }
    #expect(distances.count == 2 && distances.allSatisfy { $0 <= 1e-4 }, "relative L2 per photograph: \(distances)")
}
