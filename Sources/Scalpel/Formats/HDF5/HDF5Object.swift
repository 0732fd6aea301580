import CHDF5
import Foundation

/// A group or dataset of an open `HDF5File`: the common part (its path, attributes). The HDF5 id
/// is closed when the object is released, unless the file was closed first (which closed it).
public class HDF5Object {
    /// The file this object belongs to; kept alive while the object is.
    public let file: HDF5File
    /// The absolute path of the object inside the file, for example `/blocks/3/attn`.
    public let path: String
    let id: hid_t

    /// Reads a name through HDF5's two-call convention: first ask for its length, then fill a buffer.
    func readName(_ operation: String, _ get: (UnsafeMutablePointer<CChar>?, Int) -> Int) throws -> String {
        let length = try file.check(get(nil, 0), operation, path)
        var buffer = [CChar](repeating: 0, count: length + 1)
        try file.check(get(&buffer, buffer.count), operation, path)
        return String(cString: buffer)
    }

    init(file: HDF5File, path: String, id: hid_t) {
        self.file = file
        self.path = path
        self.id = id
    }

    deinit {
        if file.isOpen {
            HDF5Library.prepare()
            H5Oclose(id)
        }
    }

    /// The absolute path of `name` relative to this object (or `name` itself when absolute).
    func childPath(_ name: String) -> String {
        if name.hasPrefix("/") { return name }
        return path == "/" ? "/" + name : path + "/" + name
    }

    /// Throws unless the file is open and `name` can be passed to HDF5 as a path or name.
    func validate(_ name: String, for object: String) throws {
        try file.ensureOpen(object)
        if name.isEmpty { throw file.invalid(path, "an empty name") }
        if name.utf8.contains(0) { throw file.invalid(object, "the name contains a NUL character") }
    }
}

/// How a stored value is laid out, for creating datasets.
public enum HDF5ElementType: Sendable, CustomStringConvertible {
    /// 32-bit floats (stored little-endian IEEE).
    case float32
    /// 32-bit signed integers (stored little-endian).
    case int32
    /// Variable-length UTF-8 strings (read as `str` by h5py).
    case string

    public var description: String {
        switch self {
        case .float32: return "float32 numbers"
        case .int32: return "int32 numbers"
        case .string: return "strings"
        }
    }
}

/// What a path in a file names.
public enum HDF5ObjectKind: Sendable, Equatable {
    case group, dataset, other
}

/// Identity of a stored object: two paths that are hard links to one object have the same address,
/// and its link count is the number of paths to it.
public struct HDF5ObjectInfo: Sendable, Equatable {
    public var kind: HDF5ObjectKind
    public var address: UInt64
    public var linkCount: Int
}

// MARK: - Datatype helpers

enum HDF5Types {
    /// A new variable-length UTF-8 string type; the caller closes it.
    static func makeVariableString(_ file: HDF5File, _ object: String) throws -> hid_t {
        let type = try file.check(H5Tcopy(scalpel_h5t_c_s1()), "creating a string type", object)
        guard H5Tset_size(type, scalpel_h5t_variable()) >= 0, H5Tset_cset(type, H5T_CSET_UTF8) >= 0 else {
            let error = HDF5Error.failed(file: file.path, object: object, operation: "creating a string type",
                                         reason: HDF5Library.lastMessage())
            H5Tclose(type)
            throw error
        }
        return type
    }

    /// Words for a stored type in error messages ("float64 numbers", "strings").
    static func describe(_ type: hid_t) -> String {
        let size = H5Tget_size(type) * 8
        switch H5Tget_class(type) {
        case H5T_FLOAT: return "float\(size) numbers"
        case H5T_INTEGER: return H5Tget_sign(type) == H5T_SGN_NONE ? "uint\(size) numbers" : "int\(size) numbers"
        case H5T_STRING: return "strings"
        case H5T_COMPOUND: return "compound records"
        case H5T_ENUM: return "enumeration values"
        case H5T_ARRAY: return "arrays"
        case H5T_VLEN: return "variable-length sequences"
        case H5T_REFERENCE: return "references"
        default: return "values of an unsupported type"
        }
    }

    /// Calls `body` with an array of `strings.count` C string pointers (HDF5's in-memory layout
    /// for variable-length strings). Refuses strings containing NUL, which C strings cannot hold.
    static func withCStringArray<R>(_ strings: [String], _ file: HDF5File, _ object: String,
                                    _ body: (UnsafeRawPointer) throws -> R) throws -> R {
        var bytes: [CChar] = []
        bytes.reserveCapacity(strings.reduce(0) { $0 + $1.utf8.count + 1 })
        var offsets: [Int] = []
        offsets.reserveCapacity(strings.count)
        for (i, s) in strings.enumerated() {
            if s.utf8.contains(0) { throw file.invalid(object, "string \(i) contains a NUL character, which HDF5 strings cannot hold") }
            offsets.append(bytes.count)
            bytes.append(contentsOf: s.utf8.map { CChar(bitPattern: $0) })
            bytes.append(0)
        }
        if bytes.isEmpty { bytes.append(0) }
        return try bytes.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress!
            var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            if pointers.isEmpty { pointers.append(nil) }
            return try pointers.withUnsafeBufferPointer { try body(UnsafeRawPointer($0.baseAddress!)) }
        }
    }

    /// Reads `count` strings of stored type `fileType` (variable-length or fixed-length), `read`
    /// filling a buffer laid out for the memory type it is given; `memSpace` describes that buffer.
    static func readStrings(count: Int, fileType: hid_t, memSpace: hid_t, _ file: HDF5File, _ object: String,
                            read: (hid_t, UnsafeMutableRawPointer) -> herr_t) throws -> [String] {
        let memType = try file.check(H5Tget_native_type(fileType, H5T_DIR_ASCEND), "choosing a memory type", object)
        defer { H5Tclose(memType) }
        if count == 0 { return [] }
        let isVariable = try file.check(H5Tis_variable_str(fileType), "inspecting the string type", object) > 0
        if isVariable {
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            // Frees whatever HDF5 allocated, also after a failed read (free ignores the nil pointers).
            defer {
                pointers.withUnsafeMutableBytes { raw in
                    _ = H5Dvlen_reclaim(memType, memSpace, scalpel_h5p_default(), raw.baseAddress!)
                }
            }
            try pointers.withUnsafeMutableBytes { raw in
                _ = try file.check(read(memType, raw.baseAddress!), "reading strings", object)
            }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let size = H5Tget_size(memType)
        guard size > 0 else { throw file.invalid(object, "the strings have size 0") }
        // Fixed-length strings are stored as they are read, so they cannot need more bytes than the file has.
        let (bytesNeeded, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, bytesNeeded <= (try file.byteCount()) else {
            throw file.invalid(object, "declares \(count) strings of \(size) bytes, more than the whole file holds; the file is damaged")
        }
        let spacePadded = H5Tget_strpad(fileType) == H5T_STR_SPACEPAD
        var bytes = [UInt8](repeating: 0, count: count * size)
        try bytes.withUnsafeMutableBytes { raw in
            _ = try file.check(read(memType, raw.baseAddress!), "reading strings", object)
        }
        return (0..<count).map { i in
            var slice = bytes[(i * size)..<((i + 1) * size)]
            if let nul = slice.firstIndex(of: 0) { slice = slice[..<nul] }
            if spacePadded { while slice.last == 0x20 { slice = slice.dropLast() } }
            return String(decoding: slice, as: UTF8.self)
        }
    }
}
