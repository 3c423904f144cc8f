import Foundation
import Kernels
import Models
import NetworkGraph
import TestSupport
import Testing
import VulkanCompute

/// A small graph of BossNet-T0 at 64x64 with its calibrated synthetic weights.
func t0Graph(batch: Int) throws -> Graph {
    let model = try Model(name: "bossnet_T0")
    return try model.graph(batch: batch, inputSize: 64, weights: SyntheticWeights(calibratedFor: model))
}

@Test("a submission that times out leaves the session and the device refusing work, never resubmitting")
func timeoutPoisonsTheSession() throws {
    let graph = try t0Graph(batch: 1)
    let input = SyntheticWeights.calibrationImage
    let instance = try VulkanInstance(validation: .required)
    try {
        // The fault: one nanosecond for a whole network (the real fault, a hung or very slow device, cannot be provoked).
        let device = try VulkanDevice(
            instance: instance, options: DeviceOptions(pipelineCacheDirectory: nil, submitTimeoutSeconds: 1e-9))
        let session = try InferenceSession(graph: graph, device: device)
        do {
            _ = try session.run(input)
            Issue.record("a whole network finished within a nanosecond")
        } catch let error as VulkanError {
            #expect(error.isTimeout && error.call == "vkWaitForFences", "\(error)")
        }
        #expect(device.failure?.isTimeout == true)
        for _ in 0..<2 {
            do {
                _ = try session.run(input)
                Issue.record("a session whose submission timed out ran again")
            } catch let error as VulkanSetupError {
                guard case let .deviceUnusable(after) = error else { Issue.record("\(error)"); continue }
                #expect(after.isTimeout)
                #expect(error.description.contains("timed out"))
            }
        }
        // A new session on the same device is refused too, before it touches anything.
        #expect(throws: VulkanSetupError.self) { try InferenceSession(graph: graph, device: device).run(input) }
    }()
    // Nothing was resubmitted or freed while in use: the validation layer saw nothing wrong.
    #expect(instance.validationMessages.isEmpty, "\(instance.validationMessages)")
}

@Test("one session used from several tasks at once gives each its own answer")
func sessionFromSeveralTasks() async throws {
    let graph = try t0Graph(batch: 1)
    let inputs = (0..<6).map { k in SyntheticWeights.calibrationImage.map { $0 * (1 + 0.1 * Float(k)) } }
    let instance = try VulkanInstance(validation: .required)
    let device = try VulkanDevice(instance: instance, options: DeviceOptions(pipelineCacheDirectory: nil))
    let session = try InferenceSession(graph: graph, device: device)
    let sequential = try inputs.map { try session.run($0) }
    let concurrent = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
        for (index, input) in inputs.enumerated() { group.addTask { (index, try session.run(input)) } }
        var results = [[Float]](repeating: [], count: inputs.count)
        for try await (index, logits) in group { results[index] = logits }
        return results
    }
    #expect(concurrent == sequential)
    #expect(Set(sequential.map { $0.prefix(8) }.map(Array.init)).count == inputs.count)
    #expect(instance.validationMessages.isEmpty, "\(instance.validationMessages)")
}

@Test(
    "a batch that does not fit the device's memory runs in submissions that do; where not one image fits, an error before any allocation"
)
func memoryBudget() throws {
    let instance = try VulkanInstance(validation: .required)
    try {
        let roomy = try VulkanDevice(instance: instance, options: DeviceOptions(pipelineCacheDirectory: nil))
        let four = try InferenceSession(graph: t0Graph(batch: 4), device: roomy).statistics
        let perImage = four.activationBytes / 4
        // The fault: a device with room for the weights and two and a half images' activations.
        let budget = four.weightBytes + perImage * 5 / 2
        let small = try VulkanDevice(
            instance: instance, options: DeviceOptions(pipelineCacheDirectory: nil, memoryBudgetBytes: budget))
        let split = try InferenceSession(graph: t0Graph(batch: 4), device: small)
        #expect(split.statistics.microBatch == 2)
        #expect(split.statistics.activationBytes <= budget - split.statistics.weightBytes)
        // Room for the weights and half an image: nothing to split, an error that says so.
        let tiny = try VulkanDevice(
            instance: instance,
            options: DeviceOptions(
                pipelineCacheDirectory: nil,
                memoryBudgetBytes: four.weightBytes + perImage / 2))
        do {
            _ = try InferenceSession(graph: t0Graph(batch: 4), device: tiny)
            Issue.record("batch 4 was planned on a device without room for one image")
        } catch let error as VulkanSetupError {
            guard case let .outOfDeviceMemory(_, available, batch, largest) = error else { throw error }
            #expect(available == four.weightBytes + perImage / 2 && batch == 4 && largest == 0)
            #expect(error.description.contains("Not even batch 1 fits"), "\(error)")
        }
    }()
    #expect(instance.validationMessages.isEmpty, "\(instance.validationMessages)")
}
