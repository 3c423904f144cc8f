import Foundation
import Images

/// `curves.png`: a run's learning curves drawn as a picture, one panel for the losses (training, validation) and one
/// for validation top-1 (the model's and its average's), epoch on the horizontal axis.
public enum LearningCurves {
    /// The picture of `records` (the last record of each epoch counts, so a resumed run's log draws once).
    public static func picture(_ records: [EpochRecord]) -> RGBImage {
        var byEpoch: [Int: EpochRecord] = [:]
        for record in records { byEpoch[record.epoch] = record }
        let ordered = byEpoch.keys.sorted().compactMap { byEpoch[$0] }
        var canvas = Canvas(width: 2 * panelWidth, height: panelHeight)
        let lastEpoch = max(ordered.last?.epoch ?? 1, 1)
        let losses = ordered.flatMap { [$0.trainLoss, $0.testLoss] }.filter(\.isFinite)
        let loss = Panel(
            left: 0, title: "LOSS", lastEpoch: lastEpoch, top: niceCeiling(max(losses.max() ?? 1, 1e-3)))
        loss.draw(
            on: &canvas,
            series: [
                ("TRAIN", blue, ordered.map { ($0.epoch, $0.trainLoss) }),
                ("VAL", orange, ordered.map { ($0.epoch, $0.testLoss) }),
            ])
        let accuracy = Panel(left: panelWidth, title: "VAL TOP-1 (%)", lastEpoch: lastEpoch, top: 100)
        var tops = [("MODEL", blue, ordered.map { ($0.epoch, $0.testAcc1) })]
        let averaged = ordered.compactMap { record in record.testEMAAcc1.map { (record.epoch, $0) } }
        if !averaged.isEmpty { tops.append(("EMA", green, averaged)) }
        accuracy.draw(on: &canvas, series: tops)
        return RGBImage(width: canvas.width, height: canvas.height, pixels: canvas.pixels)
    }

    /// The records of a `log.txt` (one JSON object a line); lines that are not a record are passed over.
    public static func records(log url: URL) -> [EpochRecord] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONDecoder().decode(EpochRecord.self, from: Data($0.utf8))
        }
    }

    static let panelWidth = 480, panelHeight = 360
    static let blue: [UInt8] = [31, 119, 180], orange: [UInt8] = [255, 127, 14], green: [UInt8] = [44, 160, 44]
    static let ink: [UInt8] = [0, 0, 0], grid: [UInt8] = [225, 225, 225]

    /// The smallest 1, 2 or 5 times a power of ten at or above `value`, the top of the loss axis.
    static func niceCeiling(_ value: Double) -> Double {
        let power = pow(10, floor(log10(value)))
        return [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= value * (1 - 1e-12) } ?? 10 * power
    }
}

/// One panel: its plot area, axes with ticks and labels, title and legend.
struct Panel {
    let left: Int
    let title: String
    let lastEpoch: Int
    /// The value at the top of the vertical axis (its bottom is 0).
    let top: Double
    static let margin = (left: 56, right: 16, top: 40, bottom: 40)

    var plotLeft: Int { left + Panel.margin.left }
    var plotRight: Int { left + LearningCurves.panelWidth - Panel.margin.right }
    var plotTop: Int { Panel.margin.top }
    var plotBottom: Int { LearningCurves.panelHeight - Panel.margin.bottom }

    /// The pixel of `value` at `epoch`, the value held to the axis.
    func point(epoch: Int, value: Double) -> (x: Int, y: Int) {
        let x = plotLeft + Int((Double(epoch) / Double(lastEpoch) * Double(plotRight - plotLeft)).rounded())
        let fraction = min(max(value.isFinite ? value / top : 0, 0), 1)
        return (x, plotBottom - Int((fraction * Double(plotBottom - plotTop)).rounded()))
    }

    func draw(on canvas: inout Canvas, series: [(String, [UInt8], [(Int, Double)])]) {
        for tick in 0...5 {
            let value = top * Double(tick) / 5, y = point(epoch: 0, value: value).y
            canvas.line(from: (plotLeft, y), to: (plotRight, y), color: LearningCurves.grid)
            let label = top >= 10 ? String(Int(value.rounded())) : String(format: top >= 1 ? "%.1f" : "%.2f", value)
            canvas.text(label, x: plotLeft - 6 - Canvas.textWidth(label), y: y - 3, color: LearningCurves.ink)
        }
        let stride = max(1, Int((Double(lastEpoch) / 10).rounded(.up)))
        for epoch in Swift.stride(from: 0, through: lastEpoch, by: stride) {
            let x = point(epoch: epoch, value: 0).x
            canvas.line(from: (x, plotBottom), to: (x, plotBottom + 4), color: LearningCurves.ink)
            let label = String(epoch)
            canvas.text(label, x: x - Canvas.textWidth(label) / 2, y: plotBottom + 8, color: LearningCurves.ink)
        }
        canvas.line(from: (plotLeft, plotTop), to: (plotLeft, plotBottom), color: LearningCurves.ink)
        canvas.line(from: (plotLeft, plotBottom), to: (plotRight, plotBottom), color: LearningCurves.ink)
        let xLabel = "EPOCH"
        canvas.text(
            xLabel, x: (plotLeft + plotRight - Canvas.textWidth(xLabel)) / 2, y: plotBottom + 22,
            color: LearningCurves.ink)
        canvas.text(title, x: plotLeft, y: 12, color: LearningCurves.ink)
        var legendX = plotRight
        for (name, color, values) in series.reversed() {
            legendX -= Canvas.textWidth(name) + 24
            canvas.fill(x: legendX, y: 12, width: 10, height: 7, color: color)
            canvas.text(name, x: legendX + 14, y: 12, color: LearningCurves.ink)
            let points = values.map { point(epoch: $0.0, value: $0.1) }
            for (from, to) in zip(points, points.dropFirst()) {
                canvas.line(from: from, to: to, color: color, width: 2)
            }
            for point in points { canvas.fill(x: point.x - 2, y: point.y - 2, width: 5, height: 5, color: color) }
        }
    }
}

/// A white RGB raster with lines, boxes and text in a 5x7 capital font (one pixel a dot).
struct Canvas {
    let width, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        (self.width, self.height) = (width, height)
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    init(_ image: RGBImage) { (width, height, pixels) = (image.width, image.height, image.pixels) }

    mutating func set(_ x: Int, _ y: Int, _ color: [UInt8]) {
        guard x >= 0, x < width, y >= 0, y < height else { return }
        let offset = (y * width + x) * 3
        pixels.replaceSubrange(offset..<offset + 3, with: color)
    }

    func color(_ x: Int, _ y: Int) -> [UInt8] { Array(pixels[(y * width + x) * 3..<(y * width + x) * 3 + 3]) }

    mutating func fill(x: Int, y: Int, width: Int, height: Int, color: [UInt8]) {
        for row in y..<y + height { for column in x..<x + width { set(column, row, color) } }
    }

    /// A straight line through both ends, `width` pixels thick (Bresenham's steps).
    mutating func line(from start: (Int, Int), to end: (Int, Int), color: [UInt8], width: Int = 1) {
        let (dx, dy) = (abs(end.0 - start.0), -abs(end.1 - start.1))
        let (sx, sy) = (start.0 < end.0 ? 1 : -1, start.1 < end.1 ? 1 : -1)
        var (x, y, error) = (start.0, start.1, dx + dy)
        while true {
            fill(x: x, y: y, width: width, height: width, color: color)
            if x == end.0 && y == end.1 { break }
            let twice = 2 * error
            if twice >= dy {
                error += dy
                x += sx
            }
            if twice <= dx {
                error += dx
                y += sy
            }
        }
    }

    static func textWidth(_ text: String) -> Int { text.count * 6 - 1 }

    /// `text` with its top-left corner at (x, y); characters the font lacks are drawn as blanks.
    mutating func text(_ text: String, x: Int, y: Int, color: [UInt8]) {
        for (index, character) in text.enumerated() {
            guard let rows = Canvas.font[character] else { continue }
            for (row, bits) in rows.enumerated() {
                for (column, bit) in bits.enumerated() where bit == "#" { set(x + index * 6 + column, y + row, color) }
            }
        }
    }

    /// Each glyph as seven rows of five dots.
    static let font: [Character: [String]] = [
        "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
        "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
        "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
        "3": ["####.", "....#", "....#", ".###.", "....#", "....#", "####."],
        "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
        "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
        "6": [".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."],
        "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
        "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
        "9": [".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."],
        ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
        "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
        "%": ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],
        "(": ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],
        ")": [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],
        "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
        "C": [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
        "D": ["####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."],
        "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
        "H": ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
        "I": [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
        "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
        "M": ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
        "N": ["#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"],
        "O": [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
        "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
        "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
        "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
        "T": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
        "V": ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
    ]
}
