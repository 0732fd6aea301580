import Foundation

/// Checks a parsed header: every entry's dtype, shape and offsets, the metadata, and that the tensors
/// tile the data region. The reader calls it once, on opening a file.
enum SafetensorsHeader {
    typealias Parsed = (entries: [String: SafetensorsEntry], metadata: [String: String])

    /// Parses and checks the header bytes; throws only `SafetensorsError`.
    static func validate(_ bytes: [UInt8], path: String, dataStart: Int, dataSize: Int) throws -> Parsed {
        if let bad = firstInvalidUTF8(bytes) { throw SafetensorsError.headerNotUTF8(path: path, offset: bad) }
        let root: StrictJSON
        do {
            root = try StrictJSONParser.parse(bytes)
        } catch let failure as StrictJSONParser.Failure {
            switch failure {
            case let .syntax(offset, reason): throw SafetensorsError.headerNotJSON(path: path, offset: offset, reason: reason)
            case let .duplicateKey(key, parent): throw SafetensorsError.duplicateKey(path: path, key: key, context: parent)
            }
        }
        guard case let .object(members) = root else {
            throw SafetensorsError.headerNotObject(path: path, found: root.summary)
        }

        var entries: [String: SafetensorsEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case let .object(pairs) = value else {
                    throw SafetensorsError.metadataNotObject(path: path, found: value.summary)
                }
                for (key, item) in pairs {
                    guard case let .string(text) = item else {
                        throw SafetensorsError.metadataValueNotString(path: path, key: key, found: item.summary)
                    }
                    metadata[key] = text
                }
                continue
            }
            entries[name] = try entry(name, value, path: path, dataStart: dataStart, dataSize: dataSize)
        }

        // The tensors must tile the data region: sorted by offsets, each starts where the previous ends.
        let sorted = entries.values.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }
        var reached = dataStart
        var reachedBy: String? = nil
        for e in sorted {
            if e.byteRange.lowerBound < reached {
                throw SafetensorsError.overlap(path: path, tensor: e.name, other: reachedBy ?? "")
            }
            if e.byteRange.lowerBound > reached {
                throw SafetensorsError.hole(path: path, begin: reached - dataStart, end: e.byteRange.lowerBound - dataStart,
                                            dataStart: dataStart, after: reachedBy)
            }
            reached = e.byteRange.upperBound
            reachedBy = e.name
        }
        if reached < dataStart + dataSize {
            throw SafetensorsError.hole(path: path, begin: reached - dataStart, end: dataSize, dataStart: dataStart, after: reachedBy)
        }
        return (entries, metadata)
    }

    private static func entry(_ name: String, _ value: StrictJSON, path: String, dataStart: Int, dataSize: Int) throws -> SafetensorsEntry {
        guard case let .object(pairs) = value else {
            throw SafetensorsError.entryNotObject(path: path, tensor: name, found: value.summary)
        }
        func field(_ key: String) throws -> StrictJSON {
            guard let v = pairs.first(where: { $0.key == key })?.value else {
                throw SafetensorsError.missingField(path: path, tensor: name, field: key)
            }
            return v
        }

        // dtype
        let dtypeValue = try field("dtype")
        guard case let .string(dtypeText) = dtypeValue else {
            throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "dtype",
                                                  expected: "a dtype string such as \"F32\"", found: dtypeValue.summary)
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeText) else {
            throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: dtypeText)
        }

        // shape
        let shapeValue = try field("shape")
        guard case let .array(dims) = shapeValue else {
            throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "shape",
                                                  expected: "an array of non-negative integers", found: shapeValue.summary)
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (i, dim) in dims.enumerated() {
            guard case let .number(text) = dim else {
                throw SafetensorsError.invalidShape(path: path, tensor: name, reason: "dimension \(i) is \(dim.summary), not an integer")
            }
            switch StrictJSON.integer(text) {
            case let .value(v): shape.append(v)
            case .negative: throw SafetensorsError.invalidShape(path: path, tensor: name, reason: "dimension \(i) is negative (\(text))")
            case .notInteger: throw SafetensorsError.invalidShape(path: path, tensor: name, reason: "dimension \(i) is not an integer (\(text))")
            case .tooLarge: throw SafetensorsError.invalidShape(path: path, tensor: name, reason: "dimension \(i) is too large (\(text))")
            }
        }

        // data_offsets
        let offsetsValue = try field("data_offsets")
        let offsetsExpected = "an array of two non-negative integers [begin, end]"
        guard case let .array(offsets) = offsetsValue, offsets.count == 2 else {
            throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "data_offsets",
                                                  expected: offsetsExpected, found: offsetsValue.summary)
        }
        var bounds: [Int?] = []  // nil: too large for an Int
        var texts: [String] = []
        for item in offsets {
            guard case let .number(text) = item else {
                throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "data_offsets",
                                                      expected: offsetsExpected, found: "an array holding \(item.summary)")
            }
            switch StrictJSON.integer(text) {
            case let .value(v): bounds.append(v)
            case .tooLarge: bounds.append(nil)
            case .negative, .notInteger:
                throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "data_offsets",
                                                      expected: offsetsExpected, found: "an array holding the number \(text)")
            }
            texts.append(text)
        }
        // An offset too large for an Int is certainly past the end; compare as "infinite".
        let beginAfterEnd: Bool
        switch (bounds[0], bounds[1]) {
        case let (b?, e?): beginAfterEnd = b > e
        case (nil, _?): beginAfterEnd = true
        case (_, nil): beginAfterEnd = false
        }
        if beginAfterEnd {
            throw SafetensorsError.offsetsReversed(path: path, tensor: name, begin: texts[0], end: texts[1])
        }
        guard let begin = bounds[0], let end = bounds[1], end <= dataSize else {
            throw SafetensorsError.offsetsPastEnd(path: path, tensor: name, end: texts[1], dataSize: dataSize)
        }

        // size: element count × dtype size, without overflow, must match the span
        var expected: Int? = 1
        for d in shape {
            guard let e = expected else { break }
            let (p, overflow) = e.multipliedReportingOverflow(by: d)
            expected = overflow ? nil : p
        }
        if let count = expected {
            let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            expected = overflow ? nil : bytes
        }
        guard expected == end - begin else {
            throw SafetensorsError.sizeMismatch(path: path, tensor: name, dtype: dtype.rawValue, shape: shape,
                                                expectedBytes: expected, actualBytes: end - begin)
        }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, byteRange: (dataStart + begin) ..< (dataStart + end))
    }

    /// Offset of the first byte that is not part of well-formed UTF-8, or nil.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case let .scalarValue(scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}
