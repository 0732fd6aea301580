import CHDF5
import Foundation

/// Attributes of groups and datasets: strings (variable-length UTF-8, any length, so long JSON or
/// YAML text fits), integers (stored as int64), doubles and integer arrays. Setting an attribute
/// that exists replaces it.
extension HDF5Object {
    public func setAttribute(_ name: String, _ value: String) throws {
        let object = attributePath(name)
        try validate(name, for: object)
        let type = try HDF5Types.makeVariableString(file, object)
        defer { H5Tclose(type) }
        try HDF5Types.withCStringArray([value], file, object) { pointer in
            try writeAttribute(name, type: type, memType: type, count: nil, pointer)
        }
    }

    public func setAttribute(_ name: String, _ value: Int) throws {
        let object = attributePath(name)
        try validate(name, for: object)
        var v = Int64(value)
        try writeAttribute(name, type: scalpel_h5t_std_i64le(), memType: scalpel_h5t_native_int64(), count: nil, &v)
    }

    public func setAttribute(_ name: String, _ value: Double) throws {
        let object = attributePath(name)
        try validate(name, for: object)
        var v = value
        try writeAttribute(name, type: scalpel_h5t_ieee_f64le(), memType: scalpel_h5t_native_double(), count: nil, &v)
    }

    /// A one-dimensional int64 array attribute.
    public func setAttribute(_ name: String, _ value: [Int]) throws {
        let object = attributePath(name)
        try validate(name, for: object)
        let values = value.map { Int64($0) } + [0]  // the extra element keeps the pointer non-nil when empty
        try values.withUnsafeBufferPointer {
            try writeAttribute(name, type: scalpel_h5t_std_i64le(), memType: scalpel_h5t_native_int64(),
                               count: value.count, $0.baseAddress!)
        }
    }

    public func stringAttribute(_ name: String) throws -> String {
        try readAttribute(name, scalar: true) { aid, type, space, count, object in
            guard H5Tget_class(type) == H5T_STRING else {
                throw HDF5Error.wrongKind(file: file.path, object: object, expected: "a string", found: HDF5Types.describe(type))
            }
            return try HDF5Types.readStrings(count: count, fileType: type, memSpace: space, file, object) { memType, buffer in
                H5Aread(aid, memType, buffer)
            }[0]
        }
    }

    public func intAttribute(_ name: String) throws -> Int {
        try intArrayAttribute(name, scalar: true)[0]
    }

    public func intArrayAttribute(_ name: String) throws -> [Int] {
        try intArrayAttribute(name, scalar: false)
    }

    public func doubleAttribute(_ name: String) throws -> Double {
        try readAttribute(name, scalar: true) { aid, type, _, _, object in
            let kind = H5Tget_class(type)
            guard kind == H5T_FLOAT || kind == H5T_INTEGER else {
                throw HDF5Error.wrongKind(file: file.path, object: object, expected: "a number", found: HDF5Types.describe(type))
            }
            var v = 0.0
            try file.check(H5Aread(aid, scalpel_h5t_native_double(), &v), "reading", object)
            return v
        }
    }

    /// Whether this object has an attribute `name`.
    public func hasAttribute(_ name: String) -> Bool {
        guard (try? validate(name, for: attributePath(name))) != nil else { return false }
        return H5Aexists(id, name) > 0
    }

    /// The names of this object's attributes, sorted by name.
    public func attributeNames() throws -> [String] {
        try file.ensureOpen(path)
        var info = H5O_info_t()
        try file.check(H5Oget_info2(id, &info, UInt32(H5O_INFO_NUM_ATTRS)), "listing attributes", path)
        return try (0..<Int(info.num_attrs)).map { i in
            try readName("listing attributes") { buffer, size in
                H5Aget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(i), buffer, size, scalpel_h5p_default())
            }
        }
    }

    // MARK: Private

    func attributePath(_ name: String) -> String { "attribute \"\(name)\" of \(path)" }

    /// Creates attribute `name` (replacing an existing one), scalar when `count` is nil, and writes `data`.
    private func writeAttribute(_ name: String, type: hid_t, memType: hid_t, count: Int?, _ data: UnsafeRawPointer) throws {
        let object = attributePath(name)
        if try file.check(H5Aexists(id, name), "looking up", object) > 0 {
            try file.check(H5Adelete(id, name), "replacing", object)
        }
        let space: hid_t
        if let count {
            var dims = [hsize_t(count)]
            space = try file.check(H5Screate_simple(1, &dims, nil), "creating a dataspace", object)
        } else {
            space = try file.check(H5Screate(H5S_SCALAR), "creating a dataspace", object)
        }
        defer { H5Sclose(space) }
        let aid = try file.check(H5Acreate2(id, name, type, space, scalpel_h5p_default(), scalpel_h5p_default()),
                                 "creating", object)
        defer { H5Aclose(aid) }
        try file.check(H5Awrite(aid, memType, data), "writing", object)
    }

    /// Opens attribute `name` and calls `body(attribute, stored type, dataspace, element count, object
    /// description)`. With `scalar`, the attribute must hold exactly one value.
    private func readAttribute<R>(_ name: String, scalar: Bool,
                                  _ body: (hid_t, hid_t, hid_t, Int, String) throws -> R) throws -> R {
        let object = attributePath(name)
        try validate(name, for: object)
        guard try file.check(H5Aexists(id, name), "looking up", object) > 0 else {
            throw HDF5Error.missing(file: file.path, object: object)
        }
        let aid = try file.check(H5Aopen(id, name, scalpel_h5p_default()), "opening", object)
        defer { H5Aclose(aid) }
        let type = try file.check(H5Aget_type(aid), "reading the type of", object)
        defer { H5Tclose(type) }
        let space = try file.check(H5Aget_space(aid), "reading the shape of", object)
        defer { H5Sclose(space) }
        let count = H5Sget_simple_extent_type(space) == H5S_NULL
            ? 0 : Int(try file.check(H5Sget_simple_extent_npoints(space), "reading the shape of", object))
        if scalar && count != 1 {
            throw HDF5Error.wrongShape(file: file.path, object: object, expected: "one value", found: "\(count) values")
        }
        // Attribute values are stored uncompressed: more values than the file has bytes is damage,
        // refused before memory is allocated for them.
        guard count <= (try file.byteCount()) else {
            throw file.invalid(object, "declares \(count) values, more than the whole file holds; the file is damaged")
        }
        return try body(aid, type, space, count, object)
    }

    private func intArrayAttribute(_ name: String, scalar: Bool) throws -> [Int] {
        try readAttribute(name, scalar: scalar) { aid, type, _, count, object in
            guard H5Tget_class(type) == H5T_INTEGER else {
                throw HDF5Error.wrongKind(file: file.path, object: object, expected: "integers", found: HDF5Types.describe(type))
            }
            if count == 0 { return [] }
            var values = [Int64](repeating: 0, count: count)
            try file.check(H5Aread(aid, scalpel_h5t_native_int64(), &values), "reading", object)
            return values.map { Int($0) }
        }
    }
}
