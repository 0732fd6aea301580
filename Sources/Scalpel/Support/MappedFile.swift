import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole regular file mapped read-only into memory (POSIX `mmap`), unmapped when the last
/// reference goes away. Tensors that borrow from the map keep this object alive as their owner.
///
/// The map is private and read-only: nothing is ever written through it. As with any memory map,
/// truncating the file on disk while it is mapped makes later reads of the lost pages fault.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// Start of the mapping; nil for an empty file (which cannot be mapped).
    public let base: UnsafeRawPointer?
    /// Size of the file in bytes.
    public let count: Int

    /// Maps the file at `path`. A missing file throws `FileError.missing` with `missingHint`;
    /// a folder, a special file or a failed open/map throws `FileError.unreadable`.
    public init(path: String, missingHint: String) throws {
        self.path = path
        try InputFile.checkRegular(path, missingHint: missingHint)  // never open a FIFO or device
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw FileError.missing(path: path, hint: missingHint) }
            throw FileError.unreadable(path: path, reason: MappedFile.describe(code))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw FileError.unreadable(path: path, reason: MappedFile.describe(errno))
        }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG else {
            throw FileError.unreadable(path: path, reason: kind == S_IFDIR ? "it is a folder, not a file" : "not a regular file")
        }
        guard info.st_size >= 0, let size = Int(exactly: info.st_size) else {
            throw FileError.unreadable(path: path, reason: "impossible file size \(info.st_size)")
        }
        count = size
        if size == 0 {
            base = nil
            return
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw FileError.unreadable(path: path, reason: "cannot map it into memory: \(MappedFile.describe(errno))")
        }
        base = UnsafeRawPointer(mapped)
    }

    /// The mapped bytes (empty for an empty file).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: base == nil ? 0 : count) }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    private static func describe(_ code: Int32) -> String {
        if code == EACCES || code == EPERM { return "permission denied" }
        return String(cString: strerror(code))
    }
}
