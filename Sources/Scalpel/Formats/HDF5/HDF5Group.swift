import CHDF5
import Foundation

/// A group: a folder of groups and datasets. Paths are relative to this group, or absolute when
/// they start with `/`; `a/b/c` names nested objects.
public final class HDF5Group: HDF5Object {
    /// Opens the existing group at `path`.
    public func group(_ path: String) throws -> HDF5Group {
        let object = childPath(path)
        try expect(path, .group, object)
        let gid = try file.check(H5Gopen2(id, path, scalpel_h5p_default()), "opening the group", object)
        return HDF5Group(file: file, path: object, id: gid)
    }

    /// Creates the group at `path` and any missing groups above it. Refuses an existing path.
    public func createGroup(_ path: String) throws -> HDF5Group {
        let object = childPath(path)
        try validate(path, for: object)
        if exists(path) { throw HDF5Error.alreadyExists(file: file.path, object: object) }
        let lcpl = try linkProperties(object)
        defer { H5Pclose(lcpl) }
        let gid = try file.check(H5Gcreate2(id, path, lcpl, scalpel_h5p_default(), scalpel_h5p_default()),
                                 "creating the group", object)
        return HDF5Group(file: file, path: object, id: gid)
    }

    /// Opens the existing dataset at `path`.
    public func dataset(_ path: String) throws -> HDF5Dataset {
        let object = childPath(path)
        try expect(path, .dataset, object)
        let did = try file.check(H5Dopen2(id, path, scalpel_h5p_default()), "opening the dataset", object)
        return HDF5Dataset(file: file, path: object, id: did)
    }

    /// The names of this group's members (groups and datasets), sorted by name ("10" before "2").
    public func childNames() throws -> [String] {
        try file.ensureOpen(path)
        var info = H5G_info_t()
        try file.check(H5Gget_info(id, &info), "listing", path)
        return try (0..<Int(info.nlinks)).map { i in
            try readName("listing") { buffer, size in
                H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(i), buffer, size, scalpel_h5p_default())
            }
        }
    }

    /// The first link at most `maxDepth` levels below this group that is not a hard link (a soft
    /// link, an external link to another file, a user-defined link), as its path and kind; nil when
    /// there is none. Readers of untrusted files call this before opening paths, because opening a
    /// path follows such links, into other files too. Each group is searched once, however many
    /// hard links lead to it, so cycles of hard links end.
    public func firstLinkNotHard(maxDepth: Int) throws -> (path: String, kind: String)? {
        var pending: [(group: HDF5Group, depth: Int)] = [(self, 1)]
        var searched: Set<UInt64> = [try objectInfo(".").address]
        while let (group, depth) = pending.popLast() {
            for (index, name) in try group.childNames().enumerated() {
                var info = H5L_info_t()
                try file.check(H5Lget_info_by_idx(group.id, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), &info,
                                                  scalpel_h5p_default()), "inspecting links of", group.path)
                let path = group.childPath(name)
                switch info.type {
                case H5L_TYPE_HARD: break
                case H5L_TYPE_SOFT: return (path, "a soft link")
                case H5L_TYPE_EXTERNAL: return (path, "an external link to another file")
                default: return (path, "a user-defined link")
                }
                guard depth < maxDepth else { continue }
                let child = try group.objectInfo(name)
                if child.kind == .group, searched.insert(child.address).inserted {
                    pending.append((try group.group(name), depth + 1))
                }
            }
        }
        return nil
    }

    /// Whether `path` names an object (false when the file is closed).
    public func exists(_ path: String) -> Bool {
        guard (try? validate(path, for: childPath(path))) != nil else { return false }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") where part != "." {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
            if H5Lexists(id, prefix, scalpel_h5p_default()) <= 0 { return false }
        }
        return H5Oexists_by_name(id, path, scalpel_h5p_default()) > 0
    }

    /// What `path` names, where it is stored and how many links lead to it.
    public func objectInfo(_ path: String) throws -> HDF5ObjectInfo {
        let object = childPath(path)
        try validate(path, for: object)
        guard exists(path) else { throw HDF5Error.missing(file: file.path, object: object) }
        var info = H5O_info_t()
        try file.check(H5Oget_info_by_name2(id, path, &info, UInt32(H5O_INFO_BASIC), scalpel_h5p_default()),
                       "inspecting", object)
        let kind: HDF5ObjectKind
        switch info.type {
        case H5O_TYPE_GROUP: kind = .group
        case H5O_TYPE_DATASET: kind = .dataset
        default: kind = .other
        }
        return HDF5ObjectInfo(kind: kind, address: UInt64(info.addr), linkCount: Int(info.rc))
    }

    /// Makes `newPath` a second name for the object at `existingPath` (one stored copy, as for
    /// tied weights). Creates missing groups above `newPath`.
    public func linkHard(from existingPath: String, to newPath: String) throws {
        let source = childPath(existingPath), target = childPath(newPath)
        try validate(existingPath, for: source)
        try validate(newPath, for: target)
        guard exists(existingPath) else { throw HDF5Error.missing(file: file.path, object: source) }
        if exists(newPath) { throw HDF5Error.alreadyExists(file: file.path, object: target) }
        let lcpl = try linkProperties(target)
        defer { H5Pclose(lcpl) }
        try file.check(H5Lcreate_hard(id, existingPath, id, newPath, lcpl, scalpel_h5p_default()),
                       "linking \(source) to", target)
    }

    // MARK: Whole datasets

    /// Writes `tensor` as a float32 dataset of its shape. `dims` labels each dimension (see
    /// `HDF5Dataset.dimensionLabels`); `gzip` (0...9) compresses it in chunks of about 1 MiB.
    @discardableResult
    public func writeTensor(_ name: String, _ tensor: Tensor, dims: [String]? = nil, gzip: Int? = nil) throws -> HDF5Dataset {
        let dataset = try createDataset(name, type: .float32, shape: tensor.shape, appendable: false,
                                        chunkRows: nil, dims: dims, gzip: gzip)
        return try filling(name, dataset) {
            try dataset.writeAll(memType: scalpel_h5t_native_float(), count: tensor.count, UnsafeRawPointer(tensor.pointer))
        }
    }

    /// Writes `values` (row-major) as an int32 dataset of `shape`.
    @discardableResult
    public func writeInt32(_ name: String, _ values: [Int32], shape: [Int], dims: [String]? = nil,
                           gzip: Int? = nil) throws -> HDF5Dataset {
        let object = childPath(name)
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw HDF5Error.wrongShape(file: file.path, object: object, expected: "\(shape.reduce(1, *)) values for shape \(shape)",
                                       found: "\(values.count) values")
        }
        let dataset = try createDataset(name, type: .int32, shape: shape, appendable: false,
                                        chunkRows: nil, dims: dims, gzip: gzip)
        return try filling(name, dataset) {
            try values.withUnsafeBytes { raw in
                try dataset.writeAll(memType: scalpel_h5t_native_int32(), count: values.count, raw.baseAddress)
            }
        }
    }

    /// Writes `strings` as a dataset of variable-length UTF-8 strings, one-dimensional unless a
    /// `shape` is given (row-major, its product the number of strings).
    @discardableResult
    public func writeStrings(_ name: String, _ strings: [String], shape: [Int]? = nil, dims: [String]? = nil,
                             gzip: Int? = nil) throws -> HDF5Dataset {
        let shape = shape ?? [strings.count]
        guard shape.reduce(1, *) == strings.count else {
            throw HDF5Error.wrongShape(file: file.path, object: childPath(name), expected: "\(shape.reduce(1, *)) strings for shape \(shape)",
                                       found: "\(strings.count)")
        }
        let dataset = try createDataset(name, type: .string, shape: shape, appendable: false,
                                        chunkRows: nil, dims: dims, gzip: gzip)
        return try filling(name, dataset) {
            let type = try HDF5Types.makeVariableString(file, dataset.path)
            defer { H5Tclose(type) }
            try HDF5Types.withCStringArray(strings, file, dataset.path) { pointer in
                try dataset.writeAll(memType: type, count: strings.count, pointer)
            }
        }
    }

    /// Creates an empty dataset that grows along its first dimension with `HDF5Dataset.append`:
    /// shape [0] + `rowShape`, stored in chunks of `chunkRows` rows (default 1 for numbers, so one
    /// prompt per chunk, and 64 for strings), each compressed with `gzip` (0...9) when given.
    /// `dims` labels every dimension, the first one included.
    public func createAppendable(_ name: String, _ type: HDF5ElementType, rowShape: [Int] = [],
                                 dims: [String]? = nil, gzip: Int? = nil, chunkRows: Int? = nil) throws -> HDF5Dataset {
        let rows = chunkRows ?? (type == .string ? 64 : 1)
        let object = childPath(name)
        guard rows >= 1 else { throw file.invalid(object, "chunkRows must be at least 1, not \(rows)") }
        if type == .string && !rowShape.isEmpty {
            throw file.invalid(object, "appendable string datasets are one-dimensional; give no rowShape")
        }
        guard rowShape.allSatisfy({ $0 >= 1 }) else {
            throw file.invalid(object, "every dimension of a row must be at least 1, not \(rowShape)")
        }
        return try createDataset(name, type: type, shape: [0] + rowShape, appendable: true,
                                 chunkRows: rows, dims: dims, gzip: gzip)
    }

    public func readTensor(_ path: String) throws -> Tensor { try dataset(path).readTensor() }
    public func readInt32(_ path: String) throws -> (values: [Int32], shape: [Int]) { try dataset(path).readInt32() }
    public func readStrings(_ path: String) throws -> [String] { try dataset(path).readStrings() }

    // MARK: Private

    /// Link creation properties that create missing intermediate groups; the caller closes them.
    private func linkProperties(_ object: String) throws -> hid_t {
        let lcpl = try file.check(H5Pcreate(scalpel_h5p_link_create()), "creating link properties", object)
        if H5Pset_create_intermediate_group(lcpl, 1) < 0 {
            let error = HDF5Error.failed(file: file.path, object: object, operation: "creating link properties",
                                         reason: HDF5Library.lastMessage())
            H5Pclose(lcpl)
            throw error
        }
        return lcpl
    }

    /// Runs `body` to fill the new dataset `name`; on failure removes the dataset again.
    private func filling(_ name: String, _ dataset: HDF5Dataset, _ body: () throws -> Void) throws -> HDF5Dataset {
        do {
            try body()
            return dataset
        } catch {
            H5Ldelete(id, name, scalpel_h5p_default())
            throw error
        }
    }

    /// Throws `.missing` or `.wrongKind` unless `path` names an object of `kind`.
    private func expect(_ path: String, _ kind: HDF5ObjectKind, _ object: String) throws {
        try validate(path, for: object)
        let found = try objectInfo(path).kind
        guard found == kind else {
            let words: [HDF5ObjectKind: String] = [.group: "a group", .dataset: "a dataset", .other: "another kind of object"]
            throw HDF5Error.wrongKind(file: file.path, object: object, expected: words[kind]!, found: words[found]!)
        }
    }

    private func createDataset(_ name: String, type: HDF5ElementType, shape: [Int], appendable: Bool,
                               chunkRows: Int?, dims: [String]?, gzip: Int?) throws -> HDF5Dataset {
        let object = childPath(name)
        try validate(name, for: object)
        if exists(name) { throw HDF5Error.alreadyExists(file: file.path, object: object) }
        if let dims {
            guard dims.count == shape.count else {
                throw HDF5Error.wrongShape(file: file.path, object: object, expected: "\(shape.count) dimension labels",
                                           found: "\(dims.count) (\(dims.joined(separator: ",")))")
            }
            for label in dims where label.contains(",") || label.utf8.contains(0) || label.isEmpty {
                throw file.invalid(object, "dimension label \"\(label)\" must be non-empty, without commas")
            }
        }
        if let gzip, !(0...9).contains(gzip) { throw file.invalid(object, "gzip level \(gzip) is not in 0...9") }

        let elementSize: Int
        let fileType: hid_t
        switch type {
        case .float32: fileType = scalpel_h5t_ieee_f32le(); elementSize = 4
        case .int32: fileType = scalpel_h5t_std_i32le(); elementSize = 4
        case .string: fileType = try HDF5Types.makeVariableString(file, object); elementSize = 16
        }
        defer { if type == .string { H5Tclose(fileType) } }

        // Chunks: `chunkRows` rows when appendable; otherwise only for gzip, about 1 MiB of rows.
        let rowCount = shape.dropFirst().reduce(1, *)
        var chunk: [Int]? = nil
        if appendable {
            chunk = [chunkRows ?? 1] + shape.dropFirst()
        } else if gzip != nil, !shape.isEmpty, !shape.contains(0) {
            chunk = [min(shape[0], max(1, (1 << 20) / max(1, rowCount * elementSize)))] + shape.dropFirst()
        }
        if let chunk, chunk.reduce(elementSize, *) >= Int(UInt32.max) {
            throw file.invalid(object, "a chunk of shape \(chunk) exceeds HDF5's 4 GiB chunk limit")
        }

        var current = shape.map { hsize_t($0) }
        var maximum = current
        if appendable { maximum[0] = scalpel_h5s_unlimited() }
        let space = shape.isEmpty
            ? try file.check(H5Screate(H5S_SCALAR), "creating a dataspace", object)
            : try file.check(H5Screate_simple(Int32(shape.count), &current, &maximum), "creating a dataspace", object)
        defer { H5Sclose(space) }
        let dcpl = try file.check(H5Pcreate(scalpel_h5p_dataset_create()), "creating dataset properties", object)
        defer { H5Pclose(dcpl) }
        if var chunkDims = chunk.map({ $0.map { hsize_t($0) } }) {
            try file.check(H5Pset_chunk(dcpl, Int32(chunkDims.count), &chunkDims), "setting the chunk shape", object)
            if let gzip {
                if type != .string { try file.check(H5Pset_shuffle(dcpl), "setting the shuffle filter", object) }
                try file.check(H5Pset_deflate(dcpl, UInt32(gzip)), "setting gzip compression", object)
            }
        }
        let lcpl = try linkProperties(object)
        defer { H5Pclose(lcpl) }
        let did = try file.check(H5Dcreate2(id, name, fileType, space, lcpl, dcpl, scalpel_h5p_default()),
                                 "creating the dataset", object)
        let dataset = HDF5Dataset(file: file, path: object, id: did)
        if let dims {
            do {
                for (i, label) in dims.enumerated() {
                    try file.check(H5DSset_label(did, UInt32(i), label), "labelling dimension \(i) of", object)
                }
                try dataset.setAttribute("dims", dims.joined(separator: ","))
            } catch {
                H5Ldelete(id, name, scalpel_h5p_default())
                throw error
            }
        }
        return dataset
    }
}
