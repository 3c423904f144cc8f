import ArgumentParser
import Foundation
import VulkanCompute

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the Vulkan devices on this machine and what each can do.",
        discussion:
            "The device marked * is the one other commands use by default (--device N or BOSSNET_DEVICE=N choose another). Exits with status 2 when there is no Vulkan device."
    )

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Flag(help: "With --json, include each device's extension names.")
    var verbose = false

    func run() throws {
        let devices: [DeviceInfo]
        let chosen: Int
        do {
            let instance = try VulkanInstance(validation: Environment.validation)
            devices = try instance.physicalDevices().map(\.info)
            guard !devices.isEmpty else { throw VulkanSetupError.noDevice }
            chosen = try instance.chooseDevice(index: Environment.device()).info.index
        } catch {
            throw report(error)
        }
        if json {
            struct Listing: Encodable {
                let defaultDevice: Int
                let devices: [DeviceInfo]
            }
            try printJSON(Listing(defaultDevice: chosen, devices: devices), verbose: verbose)
            return
        }
        for device in devices {
            print(describe(device, isDefault: device.index == chosen))
        }
    }

    func describe(_ device: DeviceInfo, isDefault: Bool) -> String {
        let heaps = device.memoryHeaps.enumerated().map { index, heap in
            "heap \(index): \(formatBytes(heap.size))\(heap.deviceLocal ? " device-local" : "")"
        }
        let driver = [device.driverName, device.driverInfo].compactMap { $0 }.filter { !$0.isEmpty }.joined(
            separator: " ")
        var lines = [
            "\(isDefault ? "*" : " ") [\(device.index)] \(device.name) (\(device.type.rawValue))",
            "      Vulkan \(device.apiVersion), driver \(device.driverVersion)\(driver.isEmpty ? "" : " (\(driver))")",
            "      vendor 0x\(String(device.vendorID, radix: 16)), device 0x\(String(device.deviceID, radix: 16))\(device.unifiedMemory ? ", unified memory" : "")",
            "      memory: \(heaps.joined(separator: ", "))",
            "      subgroup size \(device.limits.subgroupSize)\(device.limits.subgroupArithmetic ? " (arithmetic)" : ""), max workgroup \(device.limits.maxComputeWorkGroupSize.map(String.init).joined(separator: "x")) (\(device.limits.maxComputeWorkGroupInvocations) invocations), shared memory \(formatBytes(UInt64(device.limits.maxComputeSharedMemorySize)))",
            "      texel views \(device.limits.maxTexelBufferElements) texels, storage range \(formatBytes(UInt64(device.limits.maxStorageBufferRange))), one allocation \(formatBytes(UInt64(device.limits.maxSingleBuffer)))",
        ]
        let features = device.features.names
        lines.append("      optional features: \(features.isEmpty ? "none" : features.joined(separator: ", "))")
        return lines.joined(separator: "\n")
    }
}

/// 1536 -> "1.5 KiB".
func formatBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
