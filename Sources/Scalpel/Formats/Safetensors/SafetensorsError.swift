import Foundation

/// Everything that can be wrong with a safetensors file (or a request to read or write one).
public enum SafetensorsError: UserFacingError, Equatable {
    case tooShort(path: String, size: Int)
    case headerTooLarge(path: String, length: UInt64)
    case headerPastEnd(path: String, length: UInt64, fileSize: Int)
    case headerNotUTF8(path: String, offset: Int)
    case headerNotJSON(path: String, offset: Int, reason: String)
    case headerNotObject(path: String, found: String)
    /// `context` is nil for a key of the top-level object, else the key of the enclosing object.
    case duplicateKey(path: String, key: String, context: String?)
    case entryNotObject(path: String, tensor: String, found: String)
    case missingField(path: String, tensor: String, field: String)
    case wrongFieldType(path: String, tensor: String, field: String, expected: String, found: String)
    case invalidShape(path: String, tensor: String, reason: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    /// Offsets are the JSON number texts (they may not fit in an Int).
    case offsetsReversed(path: String, tensor: String, begin: String, end: String)
    case offsetsPastEnd(path: String, tensor: String, end: String, dataSize: Int)
    /// `expectedBytes` is nil when the element count times the dtype size overflows.
    case sizeMismatch(path: String, tensor: String, dtype: String, shape: [Int], expectedBytes: Int?, actualBytes: Int)
    case overlap(path: String, tensor: String, other: String)
    /// `begin..<end` relative to the data region, which starts at file byte `dataStart`.
    case hole(path: String, begin: Int, end: Int, dataStart: Int, after: String?)
    case metadataNotObject(path: String, found: String)
    case metadataValueNotString(path: String, key: String, found: String)
    case unknownTensor(path: String, tensor: String, suggestions: [String], count: Int)
    case notFloatingPoint(path: String, tensor: String, dtype: String)
    /// Raised by the writer for a name the format cannot hold (duplicate, reserved).
    case invalidTensorName(path: String, tensor: String, reason: String)

    static let remedy = "The file is damaged, truncated or not a safetensors file: re-download or re-save the checkpoint."
    /// Largest header accepted, as in the reference implementation (100 MB).
    public static let maxHeaderLength: UInt64 = 100_000_000

    public var path: String {
        switch self {
        case let .tooShort(path, _), let .headerTooLarge(path, _), let .headerPastEnd(path, _, _),
             let .headerNotUTF8(path, _), let .headerNotJSON(path, _, _), let .headerNotObject(path, _),
             let .duplicateKey(path, _, _), let .entryNotObject(path, _, _), let .missingField(path, _, _),
             let .wrongFieldType(path, _, _, _, _), let .invalidShape(path, _, _), let .unsupportedDType(path, _, _),
             let .offsetsReversed(path, _, _, _), let .offsetsPastEnd(path, _, _, _),
             let .sizeMismatch(path, _, _, _, _, _), let .overlap(path, _, _), let .hole(path, _, _, _, _),
             let .metadataNotObject(path, _), let .metadataValueNotString(path, _, _),
             let .unknownTensor(path, _, _, _), let .notFloatingPoint(path, _, _), let .invalidTensorName(path, _, _):
            return path
        }
    }

    public var message: String {
        let r = SafetensorsError.remedy
        switch self {
        case let .tooShort(path, size):
            return "\(path): only \(size) bytes long, too short for a safetensors file (which starts with an 8-byte header length). \(r)"
        case let .headerTooLarge(path, length):
            return "\(path): the header length field says \(length) bytes, more than the \(SafetensorsError.maxHeaderLength)-byte limit for a safetensors header. \(r)"
        case let .headerPastEnd(path, length, fileSize):
            return "\(path): the header length field says \(length) bytes, but only \(fileSize - 8) bytes follow it. \(r)"
        case let .headerNotUTF8(path, offset):
            return "\(path): the JSON header is not valid UTF-8 (at header byte \(offset)). \(r)"
        case let .headerNotJSON(path, offset, reason):
            return "\(path): the JSON header is malformed at header byte \(offset): \(reason). \(r)"
        case let .headerNotObject(path, found):
            return "\(path): the JSON header is \(found), not an object mapping tensor names to their dtype, shape and data_offsets. \(r)"
        case let .duplicateKey(path, key, context):
            let place = context.map { "inside \"\($0)\"" } ?? "at the top level of the header"
            return "\(path): the key \"\(key)\" appears twice \(place). \(r)"
        case let .entryNotObject(path, tensor, found):
            return "\(path): tensor '\(tensor)': its header entry is \(found), not an object with dtype, shape and data_offsets. \(r)"
        case let .missingField(path, tensor, field):
            return "\(path): tensor '\(tensor)': the header entry has no \"\(field)\" field. \(r)"
        case let .wrongFieldType(path, tensor, field, expected, found):
            return "\(path): tensor '\(tensor)': field \"\(field)\" is \(found), expected \(expected). \(r)"
        case let .invalidShape(path, tensor, reason):
            return "\(path): tensor '\(tensor)': invalid shape: \(reason). \(r)"
        case let .unsupportedDType(path, tensor, dtype):
            let known = SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            return "\(path): tensor '\(tensor)': dtype \"\(dtype)\" is unknown or unsupported (Scalpel reads \(known)). Re-save the checkpoint with float32 or float16 weights, or re-download it if the file is damaged."
        case let .offsetsReversed(path, tensor, begin, end):
            return "\(path): tensor '\(tensor)': data_offsets [\(begin), \(end)] begin after they end. \(r)"
        case let .offsetsPastEnd(path, tensor, end, dataSize):
            return "\(path): tensor '\(tensor)': data_offsets end at byte \(end) of the data region, which holds only \(dataSize) bytes. \(r)"
        case let .sizeMismatch(path, tensor, dtype, shape, expected, actual):
            let shapeText = "[" + shape.map(String.init).joined(separator: ", ") + "]"
            if let expected {
                return "\(path): tensor '\(tensor)': shape \(shapeText) of \(dtype) needs \(expected) bytes, but its data_offsets span \(actual) bytes. \(r)"
            }
            return "\(path): tensor '\(tensor)': shape \(shapeText) of \(dtype) has too many elements to fit in memory (its data_offsets span \(actual) bytes). \(r)"
        case let .overlap(path, tensor, other):
            return "\(path): tensors '\(other)' and '\(tensor)' have overlapping data_offsets (they share bytes of the data region). \(r)"
        case let .hole(path, begin, end, dataStart, after):
            let place = after.map { " (after tensor '\($0)')" } ?? " (before the first tensor)"
            return "\(path): bytes \(begin)..<\(end) of the data region (file bytes \(dataStart + begin)..<\(dataStart + end)) belong to no tensor\(place). \(r)"
        case let .metadataNotObject(path, found):
            return "\(path): \"__metadata__\" is \(found), expected an object whose values are strings. \(r)"
        case let .metadataValueNotString(path, key, found):
            return "\(path): \"__metadata__\" entry \"\(key)\" is \(found); metadata values must be strings. \(r)"
        case let .unknownTensor(path, tensor, suggestions, count):
            let hint = suggestions.isEmpty ? "" : " Did you mean " + suggestions.map { "'\($0)'" }.joined(separator: " or ") + "?"
            return "\(path): no tensor named '\(tensor)' among its \(count) tensors.\(hint) Check the tensor name, or that this is the right checkpoint."
        case let .notFloatingPoint(path, tensor, dtype):
            return "\(path): tensor '\(tensor)' holds \(dtype) values, which are not floating point; Scalpel loads only F32, F16, BF16 or F64 tensors. Use a checkpoint that stores this tensor as floating point."
        case let .invalidTensorName(path, tensor, reason):
            return "\(path): cannot write tensor '\(tensor)': \(reason). Rename the tensor."
        }
    }
}
