import Benchmark
import Foundation
import Models
import TestSupport
import Testing

@Test("a statistic is the median with its extremes; decreasing maps swap them")
func statistics() {
    let odd = Statistic([5, 1, 3])
    #expect(odd == Statistic([1, 3, 5]))
    #expect(odd.median == 3 && odd.min == 1 && odd.max == 5)
    #expect(Statistic([4, 1, 2, 3]).median == 2.5)
    let rate = odd.map { 1000 / $0 }
    #expect(rate.median == 1000 / 3.0 && rate.min == 200 && rate.max == 1000)
}

@Test("the published table has the five rows at each batch size, with the authors' figures")
func publishedTable() throws {
    let rows = try BenchmarkCase.publishedTable(batches: [1, 8])
    #expect(rows.count == 10)
    #expect(
        rows.map(\.label).uniqued() == ["BossNet-T0 w/o SE", "BossNet-T0", "BossNet-T0^", "BossNet-T1", "BossNet-T1^"])
    #expect(rows.map(\.inputSize).uniqued() == [224, 288, 256])
    #expect(
        rows.first { $0.label == "BossNet-T1^" }?.published == PublishedFigures(top1: 82.2, steptimeMilliseconds: 165))
}

/// A tiny HyTra network (every stage the plain conv) run for real: the figures must agree with each other.
@Test("a benchmark row's figures are consistent and its JSON holds every field")
func benchmarkArithmeticAndSchema() throws {
    let model = Model(try Architecture.parse("hytra:_-_-_-_"))
    let (result, json): (BenchmarkResult, [String: Any]) = try withValidatedDevice { device in
        let benchmarker = Benchmarker(device: device, iterations: 3, warmup: 1, profile: true, checkInputSize: 32)
        let result = try benchmarker.run(BenchmarkCase(model: model, inputSize: 32, batch: 2))
        let data = try JSONEncoder().encode(BenchmarkReport(device: device.info, rows: [result]))
        return (result, try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any]))
    }
    let batch = 2.0
    let steptime = result.ms_per_batch
    #expect(steptime.min <= steptime.median && steptime.median <= steptime.max && steptime.min > 0)
    #expect(abs(result.ms_per_image.median - steptime.median / batch) < 1e-9)
    #expect(abs(result.images_per_second.median - batch * 1000 / steptime.median) < 1e-9)
    #expect(abs(result.gflops.median - 2 * Double(result.madds) * batch / (steptime.median / 1000) / 1e9) < 1e-9)
    #expect(abs(result.gflops.max - 2 * Double(result.madds) * batch / (steptime.min / 1000) / 1e9) < 1e-9)
    // The session's memory as the device counted its allocations: at least the planned weights and activations, and
    // no more than the driver's rounding of a few buffers (and, on a discrete GPU, the input and output staging) above.
    let planned = result.weight_bytes + result.activation_bytes
    #expect(result.peak_device_bytes >= planned && result.peak_device_bytes <= 2 * planned + 65536)
    #expect(result.activation_bytes > 0 && result.weight_bytes >= 4 * result.parameters)
    #expect(result.madds == (try ModelInfo(model: model, inputSize: 32)).madds)
    #expect(result.check_pass && result.check_rel_error < 1e-4)
    // The profile covers every node, and its shares add up to one.
    let profile = try #require(result.profile)
    #expect(profile.count == (try model.graph(batch: 2, inputSize: 32)).nodes.count)
    #expect(abs(profile.reduce(0) { $0 + $1.share } - 1) < 1e-9)

    let rows = try #require(json["rows"] as? [[String: Any]])
    #expect(json["device"] is [String: Any])
    let row = try #require(rows.first)
    for key in [
        "model", "input_size", "batch", "madds", "parameters", "ms_per_batch", "ms_per_image", "images_per_second",
        "gflops", "device_ms", "peak_device_bytes", "weight_bytes", "activation_bytes", "pipelines_cold_ms",
        "pipelines_warm_ms", "check_rel_error",
    ] {
        #expect(row[key] != nil, "JSON row lacks \(key)")
    }
    let figure = try #require(row["ms_per_batch"] as? [String: Double])
    #expect(Set(figure.keys) == ["median", "min", "max"])
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
