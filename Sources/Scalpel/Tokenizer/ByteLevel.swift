/// GPT-2's reversible byte ↔ character map (`bytes_to_unicode` in OpenAI's encoder.py).
///
/// BPE vocabularies are lists of strings, but the tokenizer works on raw UTF-8 bytes, so every
/// byte is given a printable stand-in character: bytes that are already visible Latin-1
/// characters ("!"..."~", "¡"..."¬", "®"..."ÿ") stand for themselves, and the remaining 68
/// (controls, space, soft hyphen…) are mapped in order to U+0100, U+0101, … That is why a
/// space appears as "Ġ" (U+0120) and a newline as "Ċ" (U+010A) in vocab.json.
enum ByteLevel {
    /// `scalarOf[b]` is the stand-in character of byte `b`.
    static let scalarOf: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let visible = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte)
                || (0xAE...0xFF).contains(byte)
            if visible {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The inverse of `scalarOf`, by scalar value: the byte a stand-in character stands for, or -1.
    /// (Stand-ins are all below U+0144.)
    private static let byteOfScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in scalarOf.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// The byte `scalar` stands for, or nil when it is no stand-in.
    static func byte(of scalar: Unicode.Scalar) -> UInt8? {
        Int(scalar.value) < byteOfScalar.count && byteOfScalar[Int(scalar.value)] >= 0 ? UInt8(byteOfScalar[Int(scalar.value)]) : nil
    }

    /// The vocabulary spelling of some raw bytes, e.g. [0x20, 0x35] → "Ġ5".
    static func piece<Bytes: Sequence>(of bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var view = String.UnicodeScalarView()
        for byte in bytes { view.append(scalarOf[Int(byte)]) }
        return String(view)
    }

    /// The raw bytes a vocabulary piece (its UTF-8) stands for. Like the Hugging Face ByteLevel
    /// decoder, a piece containing any character outside the map (an added token such as
    /// "<|endoftext|>" could) is taken as its own UTF-8 text instead.
    static func bytes<UTF8Bytes: Collection<UInt8>>(ofPiece utf8: UTF8Bytes) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var decoder = UTF8()
        var iterator = utf8.makeIterator()
        while case let .scalarValue(scalar) = decoder.decode(&iterator) {
            guard let byte = byte(of: scalar) else { return Array(utf8) }
            bytes.append(byte)
        }
        return bytes
    }
}
