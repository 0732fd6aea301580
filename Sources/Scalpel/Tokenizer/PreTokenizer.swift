/// GPT-2's pre-tokenizer: splits text into the pieces that BPE then encodes one at a time.
///
/// It is a hand-written scanner equivalent to the pattern Hugging Face `tokenizers` runs
/// (through the Oniguruma regex engine):
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// Alternatives are tried in order and the first that matches wins (not the longest), so
/// "'s" beats a run of punctuation starting at the same apostrophe. Contractions are
/// lowercase and ASCII only: "I'M" splits as "I", "'", "M". The optional leading space is
/// U+0020 only; any other whitespace stands alone.
enum PreTokenizer {
    enum Class: UInt8 { case letter, number, whitespace, other }

    /// The pieces of `scalars[range]`, as consecutive index ranges covering all of it.
    static func split(_ scalars: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var start = range.lowerBound
        while start < range.upperBound {
            let end = matchEnd(scalars, from: start, limit: range.upperBound)
            pieces.append(start..<end)
            start = end
        }
        return pieces
    }

    /// Where the piece starting at `i` ends; `i < limit`.
    private static func matchEnd(_ s: [Unicode.Scalar], from i: Int, limit: Int) -> Int {
        let first = s[i]
        // 's 't 'm 'd 're 've 'll
        if first == "'" && i + 1 < limit {
            let a = s[i + 1]
            if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
            if i + 2 < limit {
                let b = s[i + 2]
                if (a == "r" || a == "v") && b == "e" || a == "l" && b == "l" { return i + 3 }
            }
        }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: one space may lead a run of a single class.
        var j = i
        if first == " " && i + 1 < limit && classify(s[i + 1]) != .whitespace { j = i + 1 }
        let runClass = classify(s[j])
        if runClass != .whitespace {
            j += 1
            while j < limit && classify(s[j]) == runClass { j += 1 }
            return j
        }
        // `\s+(?!\S)` then `\s+`: a run of whitespace before a non-space gives up its last
        // character, which then leads the next word (" ?\p{L}+") or stands alone.
        while j < limit && classify(s[j]) == .whitespace { j += 1 }
        if j == limit || j - i == 1 { return j }
        return j - 1
    }

    /// Hugging Face's regex engine (Oniguruma in `tokenizers` 0.23) has Unicode 16.0 tables;
    /// Swift's may be newer. Letters and numbers assigned later count as unassigned ("other").
    private static let engineUnicodeVersion = (major: 16, minor: 0)

    private static let asciiClasses: [Class] = (0..<128).map { v in
        switch v {
        case 0x09...0x0D, 0x20: return .whitespace
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return .other
        }
    }

    /// `\p{L}` and `\p{N}` are general categories L* and N*; `\s` is Unicode's White_Space
    /// property (so U+00A0 and U+3000 are spaces, U+200B and U+001C…U+001F are not).
    static func classify(_ scalar: Unicode.Scalar) -> Class {
        let v = scalar.value
        if v < 0x80 { return asciiClasses[Int(v)] }
        switch v {
        case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return .whitespace
        default:
            break
        }
        let properties = scalar.properties
        let found: Class
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            found = .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            found = .number
        default:
            return .other
        }
        if let age = properties.age,
           (age.major, age.minor) > (engineUnicodeVersion.major, engineUnicodeVersion.minor) {
            return .other
        }
        return found
    }
}
