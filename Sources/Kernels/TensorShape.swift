import Foundation

/// The shape of an activation tensor, NCHW (a vector per image is `[N, C, 1, 1]`).
public struct TensorShape: Hashable, Sendable, Codable, CustomStringConvertible {
    public var batch: Int
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(batch: Int, channels: Int, height: Int, width: Int) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
    }

    public var count: Int { batch * channels * height * width }
    public var pixels: Int { height * width }
    public var description: String { "\(batch)x\(channels)x\(height)x\(width)" }
}
