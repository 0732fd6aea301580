import Foundation

/// Writes an output file under a temporary name in the same folder and renames it into place only
/// when the writer finishes: a failed or interrupted run leaves neither a half-written file nor a
/// damaged old one.
public enum AtomicOutput {
    /// Calls `write` with a temporary path next to `destination`, then renames it to `destination`.
    /// Refuses an existing destination unless `overwrite`. On any error the temporary file is removed.
    public static func write<R>(to destination: URL, overwrite: Bool,
                                _ write: (URL) throws -> R) throws -> R {
        let fm = FileManager.default
        let path = destination.path
        if fm.fileExists(atPath: path) && !overwrite { throw FileError.exists(path: path) }
        let folder = destination.deletingLastPathComponent()
        do {
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw FileError.unwritable(path: path, reason: "cannot create folder \(folder.path)")
        }
        guard fm.isWritableFile(atPath: folder.path) else {
            throw FileError.unwritable(path: path, reason: "folder \(folder.path) is not writable")
        }
        let temporary = folder.appendingPathComponent(".\(destination.lastPathComponent).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        // Permission bits say nothing for root or special file systems (/proc): try creating a file.
        let probe = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard probe >= 0 else {
            throw FileError.unwritable(path: path, reason: "cannot create a file in \(folder.path): \(String(cString: strerror(errno)))")
        }
        close(probe)
        unlink(temporary.path)
        do {
            let result = try write(temporary)
            try replace(path, with: temporary.path)
            return result
        } catch {
            try? fm.removeItem(at: temporary)
            throw reported(error, writing: temporary, for: destination)
        }
    }

    /// A failure to write the temporary file (a full disk, a file-size limit) is reported against
    /// the destination the user named, as an unwritable path; other errors pass through.
    static func reported(_ error: Error, writing temporary: URL, for destination: URL) -> Error {
        func named(_ path: String) -> String? {
            path.hasPrefix(temporary.path) ? destination.path + path.dropFirst(temporary.path.count) : nil
        }
        switch error {
        case let FileError.unwritable(path, reason):
            if let path = named(path) { return FileError.unwritable(path: path, reason: reason) }
        case let HDF5Error.failed(file, object, operation, reason):
            if let path = named(file) { return FileError.unwritable(path: path, reason: "\(operation) \(object) failed: \(systemReason(reason))") }
        case let HDF5Error.cannotCreate(file, reason):
            if let path = named(file) { return FileError.unwritable(path: path, reason: systemReason(reason)) }
        case let error as CocoaError:  // Data.write and FileManager inside the writer
            if let file = error.filePath, let path = named(file) {
                return FileError.unwritable(path: path, reason: (error.underlying as? POSIXError).map { String(cString: strerror($0.code.rawValue)) } ?? "\(error.code)")
            }
        default: break
        }
        return error
    }

    /// The system's words in an HDF5 error stack (`error message = 'File too large'`), else all of it.
    static func systemReason(_ reason: String) -> String {
        guard let start = reason.range(of: "error message = '"),
              let end = reason[start.upperBound...].firstIndex(of: "'") else { return reason }
        return String(reason[start.upperBound..<end])
    }

    /// Renames `temporary` to `path`. A folder cannot be renamed over a non-empty folder, so an old
    /// one is first moved aside and removed only once the new one is in place.
    private static func replace(_ path: String, with temporary: String) throws {
        var isFolder: ObjCBool = false
        let fm = FileManager.default
        if fm.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue {
            let aside = temporary + ".old"
            guard rename(path, aside) == 0 else { throw FileError.unwritable(path: path, reason: String(cString: strerror(errno))) }
            guard rename(temporary, path) == 0 else {
                _ = rename(aside, path)
                throw FileError.unwritable(path: path, reason: String(cString: strerror(errno)))
            }
            try? fm.removeItem(atPath: aside)
            return
        }
        guard rename(temporary, path) == 0 else { throw FileError.unwritable(path: path, reason: String(cString: strerror(errno))) }
    }

    /// Writes `data` atomically (see `write(to:overwrite:_:)`), reporting a full disk as an unwritable path.
    public static func write(_ data: Data, to destination: URL, overwrite: Bool) throws {
        try write(to: destination, overwrite: overwrite) { temporary in
            do { try data.write(to: temporary) } catch {
                throw FileError.unwritable(path: destination.path, reason: error.localizedDescription)
            }
        }
    }
}
