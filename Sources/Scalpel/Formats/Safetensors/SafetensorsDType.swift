import Foundation

/// Element types of safetensors tensors that Scalpel recognises. Any other dtype string in a file
/// (U16, F8_E4M3, ...) is reported as `SafetensorsError.unsupportedDType`.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    /// Whether `SafetensorsFile.tensor(_:)` can load tensors of this type (as float32).
    public var isFloatingPoint: Bool {
        switch self {
        case .F64, .F32, .F16, .BF16: return true
        case .I64, .I32, .I16, .I8, .U8, .BOOL: return false
        }
    }
}

/// Bit-level conversions between float formats.
enum SafetensorsConversion {
    /// IEEE 754 binary16 bits to binary32 bits, exactly (every half value is a float value),
    /// including subnormals, infinities and NaN payloads.
    static func float32Bits(fromFloat16 h: UInt16) -> UInt32 {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        var mantissa = UInt32(h) & 0x3FF
        if exponent == 0x1F { return sign | 0x7F80_0000 | (mantissa << 13) }
        if exponent != 0 { return sign | ((exponent + 112) << 23) | (mantissa << 13) }
        if mantissa == 0 { return sign }
        // Subnormal half: value = mantissa * 2^-24. Normalise it.
        var e: UInt32 = 113  // exponent of 2^-14 in float32 bias, to be decreased per shift
        while mantissa & 0x400 == 0 {
            mantissa <<= 1
            e -= 1
        }
        return sign | (e << 23) | ((mantissa & 0x3FF) << 13)
    }

    /// The little-endian values of a floating-point tensor at `source`, as float32 (copied; the
    /// reader borrows aligned F32 data instead). Nil for a dtype that is not floating point.
    static func float32Tensor(_ dtype: SafetensorsDType, shape: [Int], count: Int, at source: UnsafeRawPointer) -> Tensor? {
        switch dtype {
        case .F32:
            return Tensor(shape: shape) { out in
                for i in 0 ..< count {
                    let bits = UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                    out[i] = Float(bitPattern: bits)
                }
            }
        case .F16:
            return Tensor(shape: shape) { out in
                for i in 0 ..< count {
                    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    out[i] = Float(bitPattern: float32Bits(fromFloat16: bits))
                }
            }
        case .BF16:
            return Tensor(shape: shape) { out in
                for i in 0 ..< count {
                    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    out[i] = Float(bitPattern: UInt32(bits) << 16)
                }
            }
        case .F64:
            return Tensor(shape: shape) { out in
                for i in 0 ..< count {
                    let bits = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                    out[i] = Float(Double(bitPattern: bits))
                }
            }
        case .I64, .I32, .I16, .I8, .U8, .BOOL:
            return nil
        }
    }
}
