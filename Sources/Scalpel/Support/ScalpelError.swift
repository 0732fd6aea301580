import Foundation

/// An error caused by the user's input (a file, a field, a value). The command line prints
/// `message` and exits with status 1; any other error is an internal one (status 2).
///
/// Each concern has its own error enum conforming to this protocol, so errors are types and the
/// wording lives next to the code that detects them.
public protocol UserFacingError: Error, CustomStringConvertible {
    var message: String { get }
}

extension UserFacingError {
    public var description: String { message }
}

/// Errors about files in general: missing, unreadable, unwritable, refusing to overwrite.
public enum FileError: UserFacingError, Equatable {
    case missing(path: String, hint: String)
    /// A folder, FIFO, device or socket where a file is expected; `kind` says which ("a folder").
    case notRegular(path: String, kind: String)
    case binary(path: String, offset: Int)
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case exists(path: String)
    case notUTF8(path: String)
    case empty(path: String)

    public var message: String {
        switch self {
        case let .missing(path, hint): return "\(path): no such file. \(hint)"
        case let .binary(path, offset): return "\(path): has a NUL byte at byte \(offset), so it is not a text file. Give a UTF-8 text file."
        case let .notRegular(path, kind): return "\(path): is not a regular file (it is \(kind)). Give the path of a file."
        case let .unreadable(path, reason): return "\(path): cannot read (\(reason))."
        case let .unwritable(path, reason): return "\(path): cannot write (\(reason)). Choose a writable output path with -o."
        case let .exists(path): return "\(path) already exists. Pass --force to overwrite it, or choose another path with -o."
        case let .notUTF8(path): return "\(path): not valid UTF-8 text. Save the file as UTF-8."
        case let .empty(path): return "\(path): the file is empty. Give at least one prompt."
        }
    }
}
