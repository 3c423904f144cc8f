import CVulkan
import Foundation

/// The on-disk pipeline cache for one device, so that a second start skips the driver's shader compilation.
///
/// The file lives under the user's cache directory (`$XDG_CACHE_HOME/bossnet`, else `~/.cache/bossnet`), one file per
/// vendor, device and driver build. A file whose header does not match this device (another GPU, another driver, or
/// garbage) is ignored: a cache can only ever save time, never stop the program.
public struct PipelineCacheFile: Sendable {
    /// The file's path.
    public let url: URL
    let vendorID: UInt32
    let deviceID: UInt32
    let uuid: [UInt8]

    init(directory: URL, device: PhysicalDevice) {
        vendorID = device.properties.vendorID
        deviceID = device.properties.deviceID
        uuid = withUnsafeBytes(of: device.properties.pipelineCacheUUID) { Array($0) }
        let hex = uuid.map { String(format: "%02x", $0) }.joined()
        url = directory.appendingPathComponent(
            String(format: "pipelines-%04x-%04x-", vendorID, deviceID) + hex + ".bin")
    }

    /// The usual place for the cache given an environment: `$XDG_CACHE_HOME/bossnet` or `$HOME/.cache/bossnet`; `nil`
    /// when neither is set. The library reads no environment itself: the caller passes the process's.
    public static func defaultDirectory(environment: [String: String]) -> URL? {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") {
            return URL(fileURLWithPath: xdg).appendingPathComponent("bossnet", isDirectory: true)
        }
        guard let home = environment["HOME"], !home.isEmpty else { return nil }
        return URL(fileURLWithPath: home).appendingPathComponent(".cache/bossnet", isDirectory: true)
    }

    /// The cache's bytes when the file exists and its header (VkPipelineCacheHeaderVersionOne) matches this device;
    /// `nil` otherwise.
    func load() -> [UInt8]? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        let bytes = [UInt8](data)
        return Self.headerMatches(bytes, vendorID: vendorID, deviceID: deviceID, uuid: uuid) ? bytes : nil
    }

    /// Checks the 32-byte header Vulkan puts in front of every pipeline cache.
    static func headerMatches(_ bytes: [UInt8], vendorID: UInt32, deviceID: UInt32, uuid: [UInt8]) -> Bool {
        func word(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        guard bytes.count >= 32 else { return false }
        let headerSize = word(0)
        return headerSize >= 32 && Int(headerSize) <= bytes.count
            && word(4) == UInt32(VK_PIPELINE_CACHE_HEADER_VERSION_ONE.rawValue)
            && word(8) == vendorID && word(12) == deviceID
            && Array(bytes[16..<32]) == uuid
    }

    /// Writes the cache atomically (a temporary file renamed over the old one), creating the folder if needed.
    func save(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url, options: .atomic)
    }
}
