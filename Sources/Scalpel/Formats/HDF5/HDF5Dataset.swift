import CHDF5
import Foundation

/// A dataset: an n-dimensional array of float32 numbers, int32 numbers or strings. Reads take all
/// of it or a range of rows (along the first dimension); datasets made with
/// `HDF5Group.createAppendable` grow by appending rows, a batch at a time.
public final class HDF5Dataset: HDF5Object {
    /// The current shape (the first dimension grows as rows are appended).
    public var shape: [Int] {
        get throws { try extent().current }
    }

    /// The stored element type, or nil for types this wrapper does not write (float64, compound...).
    public var elementType: HDF5ElementType? {
        get throws {
            try withType { type in
                let size = H5Tget_size(type)
                switch H5Tget_class(type) {
                case H5T_FLOAT where size == 4: return .float32
                case H5T_INTEGER where size == 4 && H5Tget_sign(type) != H5T_SGN_NONE: return .int32
                case H5T_STRING: return .string
                default: return nil
                }
            }
        }
    }

    /// Whether the first dimension can grow (the dataset was made by `createAppendable`).
    public var isAppendable: Bool {
        get throws { try extent().appendable }
    }

    /// The chunk shape, or nil when the dataset is stored in one piece.
    public var chunkShape: [Int]? {
        get throws {
            try withCreationProperties { dcpl in
                guard H5Pget_layout(dcpl) == H5D_CHUNKED else { return nil }
                let rank = Int(try file.check(H5Pget_chunk(dcpl, 0, nil), "reading the chunk shape of", path))
                var dims = [hsize_t](repeating: 0, count: rank)
                try file.check(H5Pget_chunk(dcpl, Int32(rank), &dims), "reading the chunk shape of", path)
                return dims.map { Int($0) }
            }
        }
    }

    /// Where the raw values of a contiguous, unfiltered little-endian float32 dataset start in the
    /// file, so that they can be memory-mapped instead of read; nil for any other storage.
    public var contiguousFloat32Offset: Int? {
        let layout = (try? withCreationProperties { H5Pget_layout($0) }) ?? H5D_CHUNKED
        guard layout == H5D_CONTIGUOUS, (try? elementType) == .float32 else { return nil }
        let littleEndian = (try? withType { H5Tget_order($0) == H5T_ORDER_LE }) ?? false
        let offset = H5Dget_offset(id)
        guard littleEndian, offset != haddr_t.max else { return nil }  // HADDR_UNDEF
        return Int(offset)
    }

    /// Whether the values are kept outside this file: in external raw files (`H5Pset_external`) or
    /// as a virtual dataset that maps other files. Readers of untrusted files refuse both.
    public var storesValuesInOtherFiles: Bool {
        get throws {
            try withCreationProperties { dcpl in
                H5Pget_layout(dcpl) == H5D_VIRTUAL || H5Pget_external_count(dcpl) != 0
            }
        }
    }

    /// Whether the chunks are gzip-compressed.
    public var isCompressed: Bool {
        get throws {
            try withCreationProperties { dcpl in
                let count = try file.check(H5Pget_nfilters(dcpl), "reading the filters of", path)
                return (0..<count).contains { i in
                    var flags: UInt32 = 0, values = 0, config: UInt32 = 0
                    var name = [CChar](repeating: 0, count: 64)
                    return H5Pget_filter2(dcpl, UInt32(i), &flags, &values, nil, name.count, &name, &config) == H5Z_FILTER_DEFLATE
                }
            }
        }
    }

    /// The HDF5 dimension-scale label of each dimension ("" where none is set).
    public func dimensionLabels() throws -> [String] {
        let rank = try shape.count
        return try (0..<rank).map { i in
            let length = try file.check(H5DSget_label(id, UInt32(i), nil, 0), "reading dimension labels of", path)
            if length == 0 { return "" }
            var buffer = [CChar](repeating: 0, count: length + 1)
            try file.check(H5DSget_label(id, UInt32(i), &buffer, buffer.count), "reading dimension labels of", path)
            return String(cString: buffer)
        }
    }

    // MARK: Reading

    /// Reads float data (any stored float type, converted to float32) as a tensor: all of it, or
    /// the rows `rows` of the first dimension.
    public func readTensor(rows: Range<Int>? = nil) throws -> Tensor {
        try expectClass([H5T_FLOAT], "float numbers")
        return try withSelection(rows) { memSpace, fileSpace, shape in
            var tensor = Tensor(zeros: shape)
            if tensor.count > 0 {
                try tensor.withMutableBuffer { buffer in
                    _ = try file.check(H5Dread(id, scalpel_h5t_native_float(), memSpace, fileSpace,
                                               scalpel_h5p_default(), buffer.baseAddress), "reading", path)
                }
            }
            return tensor
        }
    }

    /// Reads integer data as int32 values (row-major) with their shape: all of it, or the rows `rows`.
    /// Stored values outside the Int32 range are an error.
    public func readInt32(rows: Range<Int>? = nil) throws -> (values: [Int32], shape: [Int]) {
        try expectClass([H5T_INTEGER], "integers")
        let fits = try withType { H5Tget_size($0) < 4 || (H5Tget_size($0) == 4 && H5Tget_sign($0) != H5T_SGN_NONE) }
        return try withSelection(rows) { memSpace, fileSpace, shape in
            let count = shape.reduce(1, *)
            if count == 0 { return ([], shape) }
            if fits {
                var values = [Int32](repeating: 0, count: count)
                try file.check(H5Dread(id, scalpel_h5t_native_int32(), memSpace, fileSpace, scalpel_h5p_default(), &values),
                               "reading", path)
                return (values, shape)
            }
            var wide = [Int64](repeating: 0, count: count)
            try file.check(H5Dread(id, scalpel_h5t_native_int64(), memSpace, fileSpace, scalpel_h5p_default(), &wide),
                           "reading", path)
            if let outside = wide.first(where: { Int32(exactly: $0) == nil }) {
                throw file.invalid(path, "holds the value \(outside), outside the int32 range")
            }
            return (wide.map { Int32($0) }, shape)
        }
    }

    /// Reads strings (variable- or fixed-length), flattened in row-major order: all of them, or
    /// the rows `rows`.
    public func readStrings(rows: Range<Int>? = nil) throws -> [String] {
        try expectClass([H5T_STRING], "strings")
        return try withType { type in
            try withSelection(rows) { memSpace, fileSpace, shape in
                try HDF5Types.readStrings(count: shape.reduce(1, *), fileType: type, memSpace: memSpace, file, path) {
                    memType, buffer in
                    H5Dread(id, memType, memSpace, fileSpace, scalpel_h5p_default(), buffer)
                }
            }
        }
    }

    // MARK: Appending

    /// Appends the rows of `tensor` (shape [n] + the dataset's row shape) to a float32 dataset.
    public func append(_ tensor: Tensor) throws {
        guard tensor.rank >= 1 else {
            throw HDF5Error.wrongShape(file: file.path, object: path, expected: "a batch of rows", found: "a scalar")
        }
        try expectClass([H5T_FLOAT], "float numbers")
        try appendRows(tensor.shape[0], rowShape: Array(tensor.shape.dropFirst()), memType: scalpel_h5t_native_float(),
                       UnsafeRawPointer(tensor.pointer))
    }

    /// Appends int32 rows to an int32 dataset; `values` holds whole rows, row-major.
    public func append(int32 values: [Int32]) throws {
        try expectClass([H5T_INTEGER], "integers")
        let rowShape = Array(try extent().current.dropFirst())
        let rowSize = rowShape.reduce(1, *)
        guard values.count % rowSize == 0 else {
            throw HDF5Error.wrongShape(file: file.path, object: path, expected: "whole rows of \(rowSize) values",
                                       found: "\(values.count) values")
        }
        try values.withUnsafeBytes { raw in
            try appendRows(values.count / rowSize, rowShape: rowShape, memType: scalpel_h5t_native_int32(),
                           raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!)
        }
    }

    /// Appends strings to a one-dimensional string dataset.
    public func append(strings: [String]) throws {
        try expectClass([H5T_STRING], "strings")
        let memType = try HDF5Types.makeVariableString(file, path)
        defer { H5Tclose(memType) }
        try HDF5Types.withCStringArray(strings, file, path) { pointer in
            try appendRows(strings.count, rowShape: [], memType: memType, pointer)
        }
    }

    // MARK: Internal

    /// Writes the whole dataset from `data` (`count` elements of `memType`).
    func writeAll(memType: hid_t, count: Int, _ data: UnsafeRawPointer?) throws {
        try file.ensureOpen(path)
        guard count > 0, let data else { return }
        try file.check(H5Dwrite(id, memType, scalpel_h5s_all(), scalpel_h5s_all(), scalpel_h5p_default(), data),
                       "writing", path)
    }

    private func extent() throws -> (current: [Int], appendable: Bool) {
        try file.ensureOpen(path)
        let space = try file.check(H5Dget_space(id), "reading the shape of", path)
        defer { H5Sclose(space) }
        let rank = Int(try file.check(H5Sget_simple_extent_ndims(space), "reading the shape of", path))
        var current = [hsize_t](repeating: 0, count: rank), maximum = current
        try file.check(H5Sget_simple_extent_dims(space, &current, &maximum), "reading the shape of", path)
        let dims = try current.map { dim -> Int in
            guard let value = Int(exactly: dim) else { throw file.invalid(path, "declares a dimension of \(dim)") }
            return value
        }
        return (dims, rank > 0 && maximum[0] == scalpel_h5s_unlimited())
    }

    private func withCreationProperties<R>(_ body: (hid_t) throws -> R) throws -> R {
        try file.ensureOpen(path)
        let dcpl = try file.check(H5Dget_create_plist(id), "reading the storage properties of", path)
        defer { H5Pclose(dcpl) }
        return try body(dcpl)
    }

    private func withType<R>(_ body: (hid_t) throws -> R) throws -> R {
        try file.ensureOpen(path)
        let type = try file.check(H5Dget_type(id), "reading the type of", path)
        defer { H5Tclose(type) }
        return try body(type)
    }

    private func expectClass(_ classes: [H5T_class_t], _ expected: String) throws {
        try withType { type in
            guard classes.contains(H5Tget_class(type)) else {
                throw HDF5Error.wrongKind(file: file.path, object: path, expected: expected, found: HDF5Types.describe(type))
            }
        }
    }

    /// Calls `body(memory space, file space, shape)` for all of the dataset or rows `rows`.
    private func withSelection<R>(_ rows: Range<Int>?, _ body: (hid_t, hid_t, [Int]) throws -> R) throws -> R {
        let full = try extent().current
        var shape = full
        var start = [hsize_t](repeating: 0, count: full.count)
        if let rows {
            guard !full.isEmpty, rows.lowerBound >= 0, rows.upperBound <= full[0] else {
                throw HDF5Error.wrongShape(file: file.path, object: path, expected: "rows \(rows.lowerBound)..<\(rows.upperBound)",
                                           found: full.isEmpty ? "a scalar" : "\(full[0]) rows")
            }
            shape[0] = rows.count
            start[0] = hsize_t(rows.lowerBound)
        }
        try checkFitsInFile(shape)
        var count = shape.map { hsize_t($0) }
        let memSpace = shape.isEmpty
            ? try file.check(H5Screate(H5S_SCALAR), "creating a dataspace", path)
            : try file.check(H5Screate_simple(Int32(shape.count), &count, nil), "creating a dataspace", path)
        defer { H5Sclose(memSpace) }
        let fileSpace = try file.check(H5Dget_space(id), "reading the shape of", path)
        defer { H5Sclose(fileSpace) }
        if rows != nil, !shape.contains(0) {
            try file.check(H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &count, nil), "selecting rows of", path)
        }
        return try body(memSpace, fileSpace, shape)
    }

    /// Refuses to read more values than the file can hold, before memory is allocated for them:
    /// every value takes at least one stored byte, or 1/1032 of one compressed (deflate's best
    /// ratio), so a damaged header declaring billions of rows in a small file is an error.
    private func checkFitsInFile(_ shape: [Int]) throws {
        let fileSize = try file.byteCount()
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product / 1032 <= fileSize else {
                throw file.invalid(path, "declares shape \(shape), more values than a file of \(fileSize) bytes can hold; the file is damaged")
            }
            count = product
        }
    }

    /// Grows the first dimension by `n` rows and writes them from `data`; on failure the dataset
    /// keeps its old length.
    private func appendRows(_ n: Int, rowShape: [Int], memType: hid_t, _ data: UnsafeRawPointer) throws {
        let (current, appendable) = try extent()
        guard appendable else {
            throw HDF5Error.wrongKind(file: file.path, object: path, expected: "an appendable dataset (made by createAppendable)",
                                      found: "a fixed-size dataset")
        }
        guard Array(current.dropFirst()) == rowShape else {
            throw HDF5Error.wrongShape(file: file.path, object: path, expected: "rows of shape \(Array(current.dropFirst()))",
                                       found: "rows of shape \(rowShape)")
        }
        if n == 0 { return }
        var old = current.map { hsize_t($0) }
        var grown = old
        grown[0] += hsize_t(n)
        try file.check(H5Dset_extent(id, &grown), "growing", path)
        do {
            var start = [hsize_t](repeating: 0, count: old.count)
            start[0] = old[0]
            var count = grown
            count[0] = hsize_t(n)
            let fileSpace = try file.check(H5Dget_space(id), "reading the shape of", path)
            defer { H5Sclose(fileSpace) }
            try file.check(H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &count, nil), "selecting rows of", path)
            let memSpace = try file.check(H5Screate_simple(Int32(count.count), &count, nil), "creating a dataspace", path)
            defer { H5Sclose(memSpace) }
            try file.check(H5Dwrite(id, memType, memSpace, fileSpace, scalpel_h5p_default(), data), "appending to", path)
        } catch {
            H5Dset_extent(id, &old)
            throw error
        }
    }
}
