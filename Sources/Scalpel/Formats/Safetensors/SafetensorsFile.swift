import Foundation

// The safetensors format: an 8-byte little-endian unsigned length N, then N bytes of UTF-8 JSON
// (the header), then the data region. The header is an object mapping each tensor name to
// {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} with offsets relative to the start
// of the data region (byte 8 + N), plus an optional "__metadata__" object of string values. The
// tensors must cover the data region exactly: no overlaps, no holes.

/// One tensor listed in a safetensors header, already validated.
public struct SafetensorsEntry: Equatable, Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Where the tensor's bytes lie, as absolute byte offsets in the file.
    public let byteRange: Range<Int>

    public var elementCount: Int { byteRange.count / dtype.byteSize }
}

/// A safetensors file mapped into memory, with its header fully validated on opening.
public final class SafetensorsFile: @unchecked Sendable {
    public let url: URL
    public let entries: [String: SafetensorsEntry]
    public let metadata: [String: String]
    /// The tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    private let map: MappedFile
    /// File byte at which the data region starts (8 + header length).
    let dataStart: Int

    /// Maps the file and validates its whole header: every entry, every size, and that the tensors
    /// cover the data region exactly. Throws `FileError` (missing, unreadable) or `SafetensorsError`.
    public init(url: URL) throws {
        self.url = url
        let path = url.path
        map = try MappedFile(path: path, missingHint: "Check the path to the .safetensors checkpoint (for example the model.safetensors of a GPT-2 download).")
        let bytes = map.bytes
        guard bytes.count >= 8 else { throw SafetensorsError.tooShort(path: path, size: bytes.count) }
        let length = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard length <= SafetensorsError.maxHeaderLength else {
            throw SafetensorsError.headerTooLarge(path: path, length: length)
        }
        guard length <= UInt64(bytes.count - 8) else {
            throw SafetensorsError.headerPastEnd(path: path, length: length, fileSize: bytes.count)
        }
        let headerLength = Int(length)
        dataStart = 8 + headerLength
        let header = try SafetensorsHeader.validate(Array(bytes[8 ..< dataStart]), path: path,
                                                    dataStart: dataStart, dataSize: bytes.count - dataStart)
        entries = header.entries
        metadata = header.metadata
    }

    /// Loads a floating-point tensor as float32. An F32 tensor whose bytes are 4-byte aligned in the
    /// map is borrowed without copying (it keeps the map alive); anything else is converted.
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else {
            let lowered = name.lowercased()
            let close = names.filter { $0.lowercased().contains(lowered) || (!$0.isEmpty && lowered.contains($0.lowercased())) }
            throw SafetensorsError.unknownTensor(path: url.path, tensor: name, suggestions: Array(close.prefix(3)), count: entries.count)
        }
        guard entry.dtype.isFloatingPoint else {
            throw SafetensorsError.notFloatingPoint(path: url.path, tensor: name, dtype: entry.dtype.rawValue)
        }
        let count = entry.elementCount
        guard count > 0, let base = map.base else { return Tensor(zeros: entry.shape) }
        let source = base + entry.byteRange.lowerBound
        #if _endian(little)
        if entry.dtype == .F32, Int(bitPattern: source) % MemoryLayout<Float>.alignment == 0 {
            let storage = FloatStorage(borrowing: source.assumingMemoryBound(to: Float.self), count: count, owner: map)
            return Tensor(shape: entry.shape, storage: storage)
        }
        #endif
        guard let converted = SafetensorsConversion.float32Tensor(entry.dtype, shape: entry.shape, count: count, at: source) else {
            throw SafetensorsError.notFloatingPoint(path: url.path, tensor: name, dtype: entry.dtype.rawValue)
        }
        return converted
    }

    /// Whether `tensor` borrows its values from this file's memory map (the zero-copy path).
    func isBorrowedFromMap(_ tensor: Tensor) -> Bool {
        guard let base = map.base, tensor.count > 0 else { return false }
        let p = UnsafeRawPointer(tensor.pointer)
        return p >= base && p < base + map.count
    }
}
