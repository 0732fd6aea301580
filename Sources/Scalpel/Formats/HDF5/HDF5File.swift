import CHDF5
import Foundation

/// An open HDF5 file. Groups and datasets opened from it keep it alive; `close()` flushes and
/// closes it together with every object opened from it (they cannot be used afterwards).
/// Dropping the last reference without `close()` closes it too, but then errors go unreported.
///
/// Files are written in the HDF5 1.8 format, readable by h5py and any HDF5 library since 1.8.
public final class HDF5File {
    public let url: URL
    public let isWritable: Bool
    /// The file's path as shown in errors.
    public var path: String { url.path }
    private(set) var id: hid_t
    public var isOpen: Bool { id >= 0 }

    private init(url: URL, id: hid_t, writable: Bool) {
        self.url = url
        self.id = id
        self.isWritable = writable
    }

    /// Creates a new file. Refuses an existing one unless `overwrite`.
    public static func create(at url: URL, overwrite: Bool = false) throws -> HDF5File {
        HDF5Library.prepare()
        let path = url.path
        if FileManager.default.fileExists(atPath: path) && !overwrite { throw FileError.exists(path: path) }
        let fapl = try accessProperties(path: path, creating: true)
        defer { H5Pclose(fapl) }
        let flags = overwrite ? scalpel_h5f_acc_trunc() : scalpel_h5f_acc_excl()
        let id = H5Fcreate(path, flags, scalpel_h5p_default(), fapl)
        guard id >= 0 else {
            let (reason, inUse) = HDF5Library.lastError()
            throw inUse ? HDF5Error.inUse(file: path, reason: reason) : HDF5Error.cannotCreate(file: path, reason: reason)
        }
        return HDF5File(url: url, id: id, writable: true)
    }

    /// Opens an existing file, read-only unless `writable` (to append to its datasets).
    public static func open(_ url: URL, writable: Bool = false) throws -> HDF5File {
        HDF5Library.prepare()
        let path = url.path
        try InputFile.checkRegular(path, missingHint: "Check the path.")
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw FileError.unreadable(path: path, reason: "permission denied")
        }
        let isHDF5 = H5Fis_hdf5(path)
        if isHDF5 == 0 { throw HDF5Error.notHDF5(file: path, reason: "no HDF5 signature") }
        if isHDF5 < 0 { throw HDF5Error.notHDF5(file: path, reason: HDF5Library.lastMessage()) }
        let fapl = try accessProperties(path: path, creating: false)
        defer { H5Pclose(fapl) }
        let id = H5Fopen(path, writable ? scalpel_h5f_acc_rdwr() : scalpel_h5f_acc_rdonly(), fapl)
        guard id >= 0 else {
            let (reason, inUse) = HDF5Library.lastError()
            throw inUse ? HDF5Error.inUse(file: path, reason: reason) : HDF5Error.notHDF5(file: path, reason: reason)
        }
        return HDF5File(url: url, id: id, writable: writable)
    }

    private static func accessProperties(path: String, creating: Bool) throws -> hid_t {
        let fapl = H5Pcreate(scalpel_h5p_file_access())
        guard fapl >= 0 else {
            throw HDF5Error.failed(file: path, object: "/", operation: "creating file access properties",
                                   reason: HDF5Library.lastMessage())
        }
        // Strong: closing the file closes every object opened from it, so `close()` is final.
        var ok = H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0
        if creating { ok = ok && H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) >= 0 }
        guard ok else {
            H5Pclose(fapl)
            throw HDF5Error.failed(file: path, object: "/", operation: "setting file access properties",
                                   reason: HDF5Library.lastMessage())
        }
        return fapl
    }

    /// The root group `/`.
    public var root: HDF5Group {
        get throws {
            try ensureOpen("/")
            let gid = try check(H5Gopen2(id, "/", scalpel_h5p_default()), "opening the root group", "/")
            return HDF5Group(file: self, path: "/", id: gid)
        }
    }

    /// The size of the file in bytes (as HDF5 sees it, including what is not yet flushed).
    func byteCount() throws -> Int {
        try ensureOpen("/")
        var size: hsize_t = 0
        try check(H5Fget_filesize(id, &size), "reading the size of", "/")
        return Int(clamping: size)
    }

    /// Writes everything buffered to disk.
    public func flush() throws {
        try ensureOpen("/")
        try check(H5Fflush(id, H5F_SCOPE_LOCAL), "flushing", "/")
    }

    /// Flushes and closes the file and every object opened from it. Errors (a full disk) surface
    /// here. Calling it again does nothing.
    public func close() throws {
        guard isOpen else { return }
        HDF5Library.prepare()
        let flushed = H5Fflush(id, H5F_SCOPE_LOCAL)
        let flushMessage = flushed < 0 ? HDF5Library.lastMessage() : ""
        let closed = H5Fclose(id)
        id = -1
        if flushed < 0 { throw HDF5Error.failed(file: path, object: "/", operation: "flushing", reason: flushMessage) }
        if closed < 0 {
            throw HDF5Error.failed(file: path, object: "/", operation: "closing", reason: HDF5Library.lastMessage())
        }
    }

    deinit {
        if id >= 0 {
            HDF5Library.prepare()
            H5Fclose(id)
        }
    }

    // MARK: Helpers for the objects of this file

    /// Throws `.closed` after `close()`; otherwise prepares the library for a call.
    func ensureOpen(_ object: String) throws {
        guard isOpen else { throw HDF5Error.closed(file: path, object: object) }
        HDF5Library.prepare()
    }

    /// Returns `result`, or throws `.failed` with HDF5's message when it is negative.
    @discardableResult
    func check<T: BinaryInteger>(_ result: T, _ operation: String, _ object: String) throws -> T {
        if result < 0 {
            throw HDF5Error.failed(file: path, object: object, operation: operation, reason: HDF5Library.lastMessage())
        }
        return result
    }

    func invalid(_ object: String, _ reason: String) -> HDF5Error {
        .invalid(file: path, object: object, reason: reason)
    }
}
