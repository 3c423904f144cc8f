import Foundation
import Kernels
import TestSupport
import Testing

@testable import VulkanCompute

private func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("bossnet-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Test("the cache header check accepts this device's header and refuses others")
func headerCheck() {
    let uuid = (0..<16).map { UInt8($0) }
    func header(vendor: UInt32, device: UInt32, uuid: [UInt8], size: UInt32 = 32, version: UInt32 = 1) -> [UInt8] {
        func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        return le(size) + le(version) + le(vendor) + le(device) + uuid + [1, 2, 3]
    }
    #expect(
        PipelineCacheFile.headerMatches(header(vendor: 5, device: 6, uuid: uuid), vendorID: 5, deviceID: 6, uuid: uuid))
    #expect(
        !PipelineCacheFile.headerMatches(header(vendor: 4, device: 6, uuid: uuid), vendorID: 5, deviceID: 6, uuid: uuid)
    )
    #expect(
        !PipelineCacheFile.headerMatches(header(vendor: 5, device: 7, uuid: uuid), vendorID: 5, deviceID: 6, uuid: uuid)
    )
    #expect(
        !PipelineCacheFile.headerMatches(
            header(vendor: 5, device: 6, uuid: uuid.reversed()), vendorID: 5, deviceID: 6, uuid: uuid))
    #expect(
        !PipelineCacheFile.headerMatches(
            header(vendor: 5, device: 6, uuid: uuid, version: 2), vendorID: 5, deviceID: 6, uuid: uuid))
    #expect(
        !PipelineCacheFile.headerMatches(
            header(vendor: 5, device: 6, uuid: uuid, size: 4000), vendorID: 5, deviceID: 6, uuid: uuid))
    #expect(!PipelineCacheFile.headerMatches([1, 2, 3], vendorID: 5, deviceID: 6, uuid: uuid))
}

@Test("the pipeline cache is saved, loaded by the next device, and a corrupt file is ignored")
func cacheRoundTrip() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let instance = try VulkanInstance(validation: .required)
    let options = DeviceOptions(pipelineCacheDirectory: directory)
    let spirv = try ShaderLibrary.spirv(named: "add")
    let pushSize = Add(count: 1).launch().pushConstants.count

    var cacheFile: URL?
    do {
        let device = try VulkanDevice(instance: instance, options: options)
        #expect(!device.pipelineCacheLoaded)
        _ = try ComputePipeline(device: device, name: "add", spirv: spirv, pushConstantSize: pushSize)
        try device.savePipelineCache()
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        #expect(files.count == 1)
        cacheFile = files.first
    }
    do {
        let device = try VulkanDevice(instance: instance, options: options)
        #expect(device.pipelineCacheLoaded)
        _ = try ComputePipeline(device: device, name: "add", spirv: spirv, pushConstantSize: pushSize)
    }
    // Garbage with the right name, then this device's valid header followed by garbage: neither may stop the device
    // opening or a pipeline being made.
    let file = try #require(cacheFile)
    let header = try Data(contentsOf: file).prefix(32)
    let junk = Data((0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37) })
    try junk.write(to: file)
    do {
        let device = try VulkanDevice(instance: instance, options: options)
        #expect(!device.pipelineCacheLoaded)
        #expect(device.pipelineCacheWarning?.contains("ignored the pipeline cache") == true)
        _ = try ComputePipeline(device: device, name: "add", spirv: spirv, pushConstantSize: pushSize)
    }
    // ... and replaced: the next device loads a good one, without a warning.
    do {
        let device = try VulkanDevice(instance: instance, options: options)
        #expect(device.pipelineCacheLoaded && device.pipelineCacheWarning == nil)
    }
    try (header + junk).write(to: file)
    do {
        let device = try VulkanDevice(instance: instance, options: options)
        _ = try ComputePipeline(device: device, name: "add", spirv: spirv, pushConstantSize: pushSize)
    }
    #expect(instance.validationMessages.isEmpty, "\(instance.validationMessages)")
}

@Test("a push-constant mirror of the wrong size is refused with a message naming the kernel")
func pushConstantMismatch() throws {
    try withValidatedDevice { device in
        let spirv = try ShaderLibrary.spirv(named: "add")
        #expect {
            try ComputePipeline(device: device, name: "add", spirv: spirv, pushConstantSize: 8)
        } throws: { error in
            "\(error)".contains("add") && "\(error)".contains("4") && "\(error)".contains("8")
        }
    }
}
