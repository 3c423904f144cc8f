import Foundation

/// IEEE 754 half-precision values by their bits, for the buffers of the 16-bit kernel families. Swift's `Float16` is
/// missing on Intel Macs, so conversions go through the bits there (round to nearest even, like the hardware).
public enum Half {
    /// The half nearest `value` (infinity past 65504), as bits.
    public static func bits(_ value: Float) -> UInt16 {
        #if arch(x86_64) && os(macOS)
            return bitsByHand(value)
        #else
            return Float16(value).bitPattern
        #endif
    }

    /// The value of half `bits`.
    public static func float(_ bits: UInt16) -> Float {
        #if arch(x86_64) && os(macOS)
            return floatByHand(bits)
        #else
            return Float(Float16(bitPattern: bits))
        #endif
    }

    /// `value` rounded to the nearest half.
    public static func rounded(_ value: Float) -> Float { float(bits(value)) }

    /// ``bits(_:)`` without `Float16` (compiled everywhere, so the tests compare it with `Float16` where that exists).
    package static func bitsByHand(_ value: Float) -> UInt16 {
        let f = value.bitPattern
        let sign = UInt16((f >> 16) & 0x8000)
        let exponent = Int((f >> 23) & 0xFF)
        var mantissa = f & 0x7F_FFFF
        if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0) }  // infinity, NaN
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 0x1F { return sign | 0x7C00 }  // overflow
        if halfExponent <= 0 {  // subnormal or zero
            if halfExponent < -10 { return sign }
            mantissa |= 0x80_0000
            let shift = UInt32(14 - halfExponent)
            let rounded = (mantissa + (1 << (shift - 1)) - 1 + ((mantissa >> shift) & 1)) >> shift
            return sign | UInt16(rounded)
        }
        let rounded = UInt32(halfExponent << 10) | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        let up = remainder > 0x1000 || (remainder == 0x1000 && rounded & 1 == 1)
        return sign | UInt16(rounded + (up ? 1 : 0))  // a carry into the exponent rounds up correctly, to infinity too
    }

    /// ``float(_:)`` without `Float16`.
    package static func floatByHand(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        if exponent == 0 {
            let value = Float(mantissa) * Float(sign != 0 ? -1 : 1) / 16_777_216  // mantissa x 2^-24
            return value
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
    }
}
