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
        do {
            let result = try write(temporary)
            guard rename(temporary.path, path) == 0 else {
                throw FileError.unwritable(path: path, reason: String(cString: strerror(errno)))
            }
            return result
        } catch {
            try? fm.removeItem(at: temporary)
            throw error
        }
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
