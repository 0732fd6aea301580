import CHDF5
import Foundation

/// Errors from reading or writing HDF5 files. Each names the file and, where there is one, the
/// object path inside it (`/blocks/3/attn/W_Q`), and says what to do.
public enum HDF5Error: UserFacingError, Equatable {
    /// The file exists but is not HDF5, or is damaged or truncated.
    case notHDF5(file: String, reason: String)
    /// The file is open elsewhere: in this program (with other access), or locked by another one.
    case inUse(file: String, reason: String)
    /// The file could not be created.
    case cannotCreate(file: String, reason: String)
    /// No group, dataset or attribute at `object`.
    case missing(file: String, object: String)
    /// Something already exists at `object`.
    case alreadyExists(file: String, object: String)
    /// The object holds another kind of thing than the caller expects (a group, not a dataset;
    /// strings, not float32 numbers).
    case wrongKind(file: String, object: String, expected: String, found: String)
    /// Shapes or counts disagree (an appended batch, dimension labels, a row range).
    case wrongShape(file: String, object: String, expected: String, found: String)
    /// An argument that cannot be stored (an empty name, a NUL character, a gzip level of 12).
    case invalid(file: String, object: String, reason: String)
    /// The file was closed before this object was used.
    case closed(file: String, object: String)
    /// Any other failure reported by the HDF5 library.
    case failed(file: String, object: String, operation: String, reason: String)

    public var message: String {
        switch self {
        case let .notHDF5(file, reason):
            return "\(file): not a readable HDF5 file (\(reason)). It may be another format, or damaged or truncated by an interrupted run; write it again."
        case let .inUse(file, reason):
            return "\(file): the file is in use (\(reason)). Let the other program (or the other use of it in this one) finish, then try again."
        case let .cannotCreate(file, reason):
            return "\(file): cannot create an HDF5 file (\(reason)). Choose a writable output path."
        case let .missing(file, object):
            return "\(file): no \(object) in this HDF5 file. Check the name, or list the file's contents (h5ls -r, or h5py)."
        case let .alreadyExists(file, object):
            return "\(file): \(object) already exists. Each object is written once; write to a new file."
        case let .wrongKind(file, object, expected, found):
            return "\(file): \(object) is \(found), expected \(expected). The file was not written for this purpose, or by another version."
        case let .wrongShape(file, object, expected, found):
            return "\(file): \(object): expected \(expected), found \(found)."
        case let .invalid(file, object, reason):
            return "\(file): \(object): \(reason)."
        case let .closed(file, object):
            return "\(file): the file was closed before \(object) was used. Keep the file open until its last use."
        case let .failed(file, object, operation, reason):
            return "\(file): \(object): \(operation) failed (\(reason)). Check the disk space and permissions; if reading, the file may be damaged."
        }
    }
}

/// Process-wide HDF5 set-up and error-stack helpers.
enum HDF5Library {
    /// HDF5's exit handler would close files that are still open. After a failed close (a full
    /// disk, a file-size limit) HDF5 1.10 keeps a dangling id, and closing it again at exit crashed
    /// the process after it had reported the error; the operating system reclaims the files anyway.
    private static let opened: Bool = {
        H5dont_atexit()
        return H5open() >= 0
    }()

    /// Opens the library (so the H5T_* globals are valid) and silences automatic error printing
    /// on the calling thread. Cheap; called before every operation because the silencing is
    /// per thread in thread-safe builds.
    static func prepare() {
        _ = opened
        scalpel_h5e_silence()
    }

    /// The calling thread's current HDF5 error stack as one line, and whether it says the file
    /// is in use (open or locked).
    static func lastError() -> (message: String, inUse: Bool) {
        var buffer = [CChar](repeating: 0, count: 1024)
        let inUse = scalpel_h5e_message(&buffer, buffer.count) != 0
        let text = String(cString: buffer)
        return (text.isEmpty ? "no detail from HDF5" : text, inUse)
    }

    static func lastMessage() -> String { lastError().message }
}
