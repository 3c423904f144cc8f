import Foundation

/// The pixel operations of RandAugment and colour jitter, byte for byte as Pillow computes them (its `ImageOps`,
/// `ImageEnhance`, `Image.blend`, the SMOOTH filter and the bicubic affine transform), in the arithmetic of Pillow's C:
/// float32 where it uses `float`, float64 where it uses `double`, truncation where it casts.
extension RGBImage {
    /// Each channel through its own 256-entry table (PIL's `point` with a 768-entry lut).
    public func mapped(_ tables: [[UInt8]]) -> RGBImage {
        precondition(tables.count == 3 && tables.allSatisfy { $0.count == 256 }, "three 256-entry tables")
        var out = pixels
        for index in out.indices { out[index] = tables[index % 3][Int(out[index])] }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// The same table for every channel.
    public func mapped(_ table: [UInt8]) -> RGBImage { mapped([table, table, table]) }

    /// Each channel's histogram.
    public func histograms() -> [[Int]] {
        var counts = [[Int]](repeating: [Int](repeating: 0, count: 256), count: 3)
        for (index, value) in pixels.enumerated() { counts[index % 3][Int(value)] += 1 }
        return counts
    }

    /// `ImageOps.autocontrast` without cutoff: each channel stretched from its darkest to its brightest value.
    public func autocontrasted() -> RGBImage {
        mapped(
            histograms().map { histogram in
                guard let low = histogram.firstIndex(where: { $0 > 0 }),
                    let high = histogram.lastIndex(where: { $0 > 0 }), high > low
                else { return (0...255).map { UInt8($0) } }
                let scale = 255.0 / Double(high - low), offset = -Double(low) * scale
                return (0...255).map { UInt8(min(max(Int(Double($0) * scale + offset), 0), 255)) }
            })
    }

    /// `ImageOps.equalize`: each channel's histogram flattened.
    public func equalized() -> RGBImage {
        mapped(
            histograms().map { histogram in
                let present = histogram.filter { $0 > 0 }
                let step = present.count <= 1 ? 0 : (present.reduce(0, +) - present[present.count - 1]) / 255
                guard step > 0 else { return (0...255).map { UInt8($0) } }
                var n = step / 2
                return (0...255).map { value in
                    defer { n += histogram[value] }
                    return UInt8(min(n / step, 255))
                }
            })
    }

    /// `ImageOps.invert`.
    public func inverted() -> RGBImage { mapped((0...255).map { UInt8(255 - $0) }) }

    /// `ImageOps.posterize`: the `bits` high bits of each value kept (0 keeps none).
    public func posterized(keeping bits: Int) -> RGBImage {
        let mask = UInt8(truncatingIfNeeded: ~((1 << (8 - min(max(bits, 0), 8))) - 1))
        return mapped((0...255).map { UInt8($0) & mask })
    }

    /// `ImageOps.solarize`: values at or above `threshold` inverted.
    public func solarized(threshold: Int) -> RGBImage {
        mapped((0...255).map { UInt8($0 < threshold ? $0 : 255 - $0) })
    }

    /// timm's `solarize_add`: `add` added to values below `threshold`, at most 255.
    public func solarizeAdded(_ add: Int, threshold: Int = 128) -> RGBImage {
        mapped((0...255).map { UInt8($0 < threshold ? min(255, $0 + add) : $0) })
    }

    /// PIL's `convert("L")`: ITU-R 601-2 luma in 16-bit fixed point.
    public func luma() -> [UInt8] {
        (0..<width * height).map { pixel in
            let (r, g, b) = (Int(pixels[3 * pixel]), Int(pixels[3 * pixel + 1]), Int(pixels[3 * pixel + 2]))
            return UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
        }
    }

    /// One of `ImageEnhance`'s enhancers.
    public enum Enhancement: Sendable, CaseIterable {
        /// Toward the grey image (0 gives it), or away from it.
        case color
        /// Toward a flat image of the luma's rounded mean.
        case contrast
        /// Toward black.
        case brightness
        /// Toward the SMOOTH-filtered image.
        case sharpness
    }

    /// `ImageEnhance.<kind>(image).enhance(factor)`: `Image.blend(degenerate, image, factor)`.
    public func enhanced(_ kind: Enhancement, factor: Double) -> RGBImage {
        let degenerate: [UInt8]
        switch kind {
        case .color: degenerate = luma().flatMap { [$0, $0, $0] }
        case .contrast:
            let luma = luma()
            var histogram = [Int](repeating: 0, count: 256)
            for value in luma { histogram[Int(value)] += 1 }
            var sum = 0.0
            for value in 0..<256 { sum += Double(value * histogram[value]) }
            let mean = luma.isEmpty ? 0 : Int(sum / Double(luma.count) + 0.5)
            degenerate = [UInt8](repeating: UInt8(mean), count: pixels.count)
        case .brightness: degenerate = [UInt8](repeating: 0, count: pixels.count)
        case .sharpness: degenerate = smoothed().pixels
        }
        return RGBImage(width: width, height: height, pixels: Self.blend(degenerate, pixels, alpha: Float(factor)))
    }

    /// `ImagingBlend(first, second, alpha)`: `first + alpha * (second - first)` in float32, truncated, clipped when
    /// `alpha` extrapolates.
    static func blend(_ first: [UInt8], _ second: [UInt8], alpha: Float) -> [UInt8] {
        zip(first, second).map { a, b in
            let value = Float(Int(a)) + alpha * Float(Int(b) - Int(a))
            return value <= 0 ? 0 : value >= 255 ? 255 : UInt8(value)
        }
    }

    /// `image.filter(ImageFilter.SMOOTH)`: the 3x3 kernel (1 1 1, 1 5 1, 1 1 1) / 13 in float32, rounded by adding
    /// 0.5 and truncating; the outermost rows and columns copied.
    func smoothed() -> RGBImage {
        guard width >= 3 && height >= 3 else { return self }
        let (edge, centre) = (Float(1) / Float(13), Float(5) / Float(13))
        let kernel: [Float] = [edge, edge, edge, edge, centre, edge, edge, edge, edge]
        var out = pixels
        for y in 1..<height - 1 {
            for x in 1..<width - 1 {
                for channel in 0..<3 {
                    func row(_ dy: Int, _ k: Int) -> Float {
                        let at = { (dx: Int) in Float(self.pixels[((y + dy) * self.width + x + dx) * 3 + channel]) }
                        return at(-1) * kernel[k] + at(0) * kernel[k + 1] + at(1) * kernel[k + 2]
                    }
                    var sum: Float = 0.5
                    sum += row(1, 0)
                    sum += row(0, 3)
                    sum += row(-1, 6)
                    out[(y * width + x) * 3 + channel] = UInt8(min(max(sum, 0), 255))
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}

extension RGBImage {
    /// `image.transform(size, Image.AFFINE, matrix, Image.BICUBIC, fillcolor=fill)`: each output pixel's centre
    /// mapped through `matrix` (a, b, c, d, e, f: x' = a x + b y + c, y' = d x + e y + f) into this image and sampled
    /// by Pillow's bicubic (a = -1, edge rows and columns repeated); pixels that land outside keep `fill`.
    public func affine(_ matrix: [Double], fill: [UInt8]) -> RGBImage {
        precondition(matrix.count == 6 && fill.count == 3, "six coefficients and an RGB fill")
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<height {
            for x in 0..<width {
                let (u, v) = (Double(x) + 0.5, Double(y) + 0.5)
                let sampleX = matrix[0] * u + matrix[1] * v + matrix[2]
                let sampleY = matrix[3] * u + matrix[4] * v + matrix[5]
                for channel in 0..<3 {
                    out[(y * width + x) * 3 + channel] =
                        bicubic(sampleX, sampleY, channel: channel) ?? fill[channel]
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Pillow's `bicubic_filter32RGB` at one point of one channel; nil outside the image.
    private func bicubic(_ sampleX: Double, _ sampleY: Double, channel: Int) -> UInt8? {
        guard sampleX >= 0, sampleX < Double(width), sampleY >= 0, sampleY < Double(height) else { return nil }
        let (xin, yin) = (sampleX - 0.5, sampleY - 0.5)
        let floorX = xin < 0 ? Int(xin.rounded(.down)) : Int(xin), floorY = yin < 0 ? Int(yin.rounded(.down)) : Int(yin)
        let (dx, dy) = (xin - Double(floorX), yin - Double(floorY))
        let (x, y) = (floorX - 1, floorY - 1)
        let columns = (0..<4).map { min(max(x + $0, 0), width - 1) }
        func rowValue(_ row: Int) -> Double {
            let at = { (column: Int) in Int(self.pixels[(row * self.width + columns[column]) * 3 + channel]) }
            return Self.cubic(at(0), at(1), at(2), at(3), dx)
        }
        let v1 = rowValue(min(max(y, 0), height - 1))
        let v2 = y + 1 >= 0 && y + 1 < height ? rowValue(y + 1) : v1
        let v3 = y + 2 >= 0 && y + 2 < height ? rowValue(y + 2) : v2
        let v4 = y + 3 >= 0 && y + 3 < height ? rowValue(y + 3) : v3
        let value = Self.cubic(v1, v2, v3, v4, dy)
        return value <= 0 ? 0 : value >= 255 ? 255 : UInt8(value)
    }

    /// Pillow's BICUBIC macro on integer samples: the coefficients in integer arithmetic, then double.
    private static func cubic(_ v1: Int, _ v2: Int, _ v3: Int, _ v4: Int, _ d: Double) -> Double {
        let (p1, p2) = (Double(v2), Double(-v1 + v3))
        let (p3, p4) = (Double(2 * (v1 - v2) + v3 - v4), Double(-v1 + v2 - v3 + v4))
        return p1 + d * (p2 + d * (p3 + d * p4))
    }

    /// The same macro on double samples, its operations in C's order.
    private static func cubic(_ v1: Double, _ v2: Double, _ v3: Double, _ v4: Double, _ d: Double) -> Double {
        let (p1, p2) = (v2, -v1 + v3)
        let (p3, p4) = (2 * (v1 - v2) + v3 - v4, -v1 + v2 - v3 + v4)
        return p1 + d * (p2 + d * (p3 + d * p4))
    }

    /// `image.rotate(degrees, Image.BICUBIC, fillcolor=fill)`: counter-clockwise about the centre, the size kept,
    /// through the matrix Pillow builds (its angle reduced modulo 360 and its coefficients rounded to 15 decimals).
    public func rotated(degrees: Double, fill: [UInt8]) -> RGBImage {
        var angle = fmod(degrees, 360)
        if angle != 0 && angle < 0 { angle += 360 }
        if angle == 0 { return self }
        let radians = -(angle * (Double.pi / 180))
        let (cosine, sine) = (Self.round15(cos(radians)), Self.round15(sin(radians)))
        var matrix = [cosine, sine, 0.0, Self.round15(-sin(radians)), cosine, 0.0]
        let (centreX, centreY) = (Double(width) / 2, Double(height) / 2)
        matrix[2] = matrix[0] * -centreX + matrix[1] * -centreY + 0.0 + centreX
        matrix[5] = matrix[3] * -centreX + matrix[4] * -centreY + 0.0 + centreY
        return affine(matrix, fill: fill)
    }

    /// Python's `round(value, 15)`: the value correctly rounded to 15 decimals, read back as a double.
    static func round15(_ value: Double) -> Double { Double(String(format: "%.15f", value)) ?? value }
}
