import ArgumentParser
import Benchmark
import Foundation
import Kernels
import Models
import NetworkGraph
import VulkanCompute

/// One row of `bench --train`: a training step beside the inference steptime of the same batch.
struct TrainingBenchmarkRow: Codable {
    let label: String
    let architecture: String
    let input_size: Int
    let batch: Int
    /// Stochastic depth's rate (--drop-path; 0 when off).
    let drop_path: Double
    /// Whether the backward made block-interior outputs again rather than keep them (--recompute).
    let recomputes: Bool
    /// Forward, backward and one AdamW step, wall clock.
    let train_ms_per_step: Statistic
    let train_ms_per_image: Double
    /// Three times the forward's multiply-adds (forward, input and weight gradients), two flops each, per second.
    let train_gflops: Double
    let train_device_bytes: Int
    let inference_ms_per_batch: Double
    /// The training step's median over the inference steptime's.
    let train_over_inference: Double
    let published: PublishedFigures?
    /// The AdamW step alone, wall clock (median).
    let optimizer_ms: Double
    /// With --profile: the step's device time per kernel, slowest first, and per node in its forward and backward,
    /// in the graph's order.
    let profile: [KernelTime]?
    let nodes: [NodeTime]?
}

struct NodeTime: Codable {
    let node: String
    let forward_ms: Double
    let backward_ms: Double
}

struct KernelTime: Codable {
    let kernel: String
    let ms: Double
    let dispatches: Int
}

extension Bench {
    /// `bench --train`: for each row, the inference steptime (as plain `bench` measures it) and the training step's,
    /// in one table.
    func runTraining(on device: VulkanDevice) throws {
        let benchmarker = Benchmarker(
            device: device, iterations: iterations, warmup: warmup, profile: false, checkInputSize: checkSize,
            checkBatch: checkBatch, findDivergence: false, progress: { text in progress(text) })
        var rows: [TrainingBenchmarkRow] = []
        for benchmark in try cases() {
            do {
                let inference = try benchmarker.run(benchmark)
                progress("\(benchmark.label) \(benchmark.inputSize)px batch \(benchmark.batch): training steps")
                rows.append(try trainingRow(benchmark, device: device, inference: inference.ms_per_batch.median))
                progressDone()
            } catch {
                progressDone()
                throw report(error)
            }
        }
        let silent = reportValidation(device.instance)
        if json { try printJSON(rows) } else { print(Self.trainingTable(rows, device: device.info.name)) }
        if !silent { throw ExitCode(1) }
    }

    private func trainingRow(_ benchmark: BenchmarkCase, device: VulkanDevice, inference: Double) throws
        -> TrainingBenchmarkRow
    {
        let model = benchmark.model
        let graph = try model.graph(
            batch: benchmark.batch, inputSize: benchmark.inputSize,
            weights: SyntheticWeights(gains: model.architecture.family.syntheticGains))
        let session = try TrainingSession(
            graph: graph, device: device, stochasticDepth: try model.stochasticDepth(rate: dropPath, graph: graph),
            seed: 1, recomputation: recompute.recomputation)
        var random = SeededRandom(seed: 1)
        let input = random.floats(graph.shapes[graph.input].count, in: -2...2)
        let classes = graph.shapes[graph.output].count / graph.batch
        let labels = (0..<graph.batch).map { _ in Int.random(in: 0..<classes, using: &random) }
        let targets = CrossEntropy(batch: graph.batch, classes: classes).targets(labels: labels, smoothing: 0.1)
            .map(Float.init)
        let optimizer = TrainingOptimizer.adamw(AdamW(learningRate: 5e-4, weightDecay: 0.05))
        var (times, optimizerTimes): ([Double], [Double]) = ([], [])
        for iteration in 0..<(warmup + iterations) {
            let started = Date()
            let last = iteration == warmup + iterations - 1
            _ = try session.step(input: input, targets: targets, profile: profile && last, reading: false)
            let optimizing = Date()
            _ = try session.optimize(optimizer, reading: false)
            guard iteration >= warmup else { continue }
            times.append(Date().timeIntervalSince(started) * 1000)
            optimizerTimes.append(Date().timeIntervalSince(optimizing) * 1000)
        }
        let step = Statistic(times)
        let madds = graph.nodes.reduce(0) { $0 + $1.op.madds }
        let kernels = session.lastProfile.map {
            KernelTime(kernel: $0.kernel, ms: $0.nanoseconds / 1e6, dispatches: $0.dispatches)
        }
        let nodes = session.lastNodeProfile.map {
            NodeTime(node: $0.node, forward_ms: $0.forward / 1e6, backward_ms: $0.backward / 1e6)
        }
        return TrainingBenchmarkRow(
            label: benchmark.label, architecture: model.architecture.text, input_size: benchmark.inputSize,
            batch: benchmark.batch, drop_path: dropPath, recomputes: session.recomputes, train_ms_per_step: step,
            train_ms_per_image: step.median / Double(graph.batch),
            train_gflops: 6 * Double(madds) / (step.median * 1e6), train_device_bytes: session.deviceBytes,
            inference_ms_per_batch: inference, train_over_inference: step.median / inference,
            published: benchmark.published, optimizer_ms: Statistic(optimizerTimes).median,
            profile: profile ? kernels : nil, nodes: profile ? nodes : nil)
    }

    static func trainingTable(_ rows: [TrainingBenchmarkRow], device: String) -> String {
        var lines = ["Training steps on \(device) (forward, backward, AdamW; wall clock, median):"]
        lines += formatTable(
            [
                [
                    "model", "size", "batch", "train ms/step", "ms/image", "GFLOP/s", "device MB", "inference ms",
                    "ratio",
                    "authors' steptime*",
                ]
            ]
                + rows.map { r in
                    [
                        r.label, "\(r.input_size)", "\(r.batch)", String(format: "%.1f", r.train_ms_per_step.median),
                        String(format: "%.1f", r.train_ms_per_image), String(format: "%.1f", r.train_gflops),
                        "\(r.train_device_bytes / 1_000_000)", String(format: "%.1f", r.inference_ms_per_batch),
                        String(format: "%.2f", r.train_over_inference),
                        r.published.map { String(format: "%.0f ms", $0.steptime_ms) } ?? "-",
                    ]
                }
        ).split(separator: "\n").map(String.init)
        lines.append(
            "* as the authors published it: most likely BoTNet's protocol, a training step of batch 32 on TPU-v3.")
        for r in rows where r.profile != nil {
            let nodes = r.nodes ?? []
            let (forward, backward) = nodes.reduce((0.0, 0.0)) { ($0.0 + $1.forward_ms, $0.1 + $1.backward_ms) }
            lines.append(
                "\nprofile, \(r.label) \(r.input_size)px batch \(r.batch): device time forward "
                    + String(
                        format: "%.1f ms, backward %.1f ms; AdamW %.1f ms (wall)", forward, backward, r.optimizer_ms))
            lines.append("  slowest nodes (forward + backward):")
            lines += nodes.sorted { $0.forward_ms + $0.backward_ms > $1.forward_ms + $1.backward_ms }.prefix(10).map {
                "  " + $0.node.padding(toLength: 42, withPad: " ", startingAt: 0)
                    + String(format: "%9.1f ms forward %9.1f ms backward", $0.forward_ms, $0.backward_ms)
            }
            lines.append("  slowest kernels:")
            lines += (r.profile ?? []).prefix(10).map {
                "  " + $0.kernel.padding(toLength: 42, withPad: " ", startingAt: 0)
                    + String(format: "%9.1f ms %6d dispatches", $0.ms, $0.dispatches)
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// `bench --train --recompute`.
enum RecomputeChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never

    var recomputation: Recomputation {
        switch self {
        case .auto: .whereMemoryIsShort
        case .always: .always
        case .never: .never
        }
    }
}
