import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one way the library checks and reads an input file, so that a folder, a FIFO or a device
/// given where a file is expected gets "is not a regular file" instead of "no such file", a
/// permission error, or a hang (opening a FIFO for reading waits for a writer; opening some
/// devices has side effects). What is at the path is found with `stat`, before anything opens it.
public enum InputFile {
    /// Throws unless `path` names a regular file (symbolic links are followed); returns its size.
    /// `missingHint` says what to give instead when nothing is there.
    @discardableResult
    public static func checkRegular(_ path: String, missingHint: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw error(errno, path: path, missingHint: missingHint) }
        return try regularSize(info, path: path)
    }

    /// The whole contents of the regular file at `path`.
    public static func read(_ path: String, missingHint: String) throws -> Data {
        try checkRegular(path, missingHint: missingHint)
        // O_NONBLOCK: if a FIFO replaced the file since `stat`, the open returns at once and the
        // check below refuses it. It does not change reads of a regular file.
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw error(errno, path: path, missingHint: missingHint) }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw error(errno, path: path, missingHint: missingHint) }
        try regularSize(info, path: path)
        do {
            return try handle.readToEnd() ?? Data()
        } catch {
            throw FileError.unreadable(path: path, reason: error.localizedDescription)
        }
    }

    /// The contents of a text file as UTF-8 (a leading byte-order mark is dropped).
    public static func readText(_ path: String, missingHint: String) throws -> String {
        var data = try read(path, missingHint: missingHint)
        if data.starts(with: [0xEF, 0xBB, 0xBF]) { data = data.dropFirst(3) }
        // A NUL byte is valid UTF-8 but means a binary file given where text belongs.
        if let nul = data.firstIndex(of: 0) { throw FileError.binary(path: path, offset: nul - data.startIndex) }
        guard let text = String(data: data, encoding: .utf8) else { throw FileError.notUTF8(path: path) }
        return text
    }

    /// The lines of `text`, whatever its line ends: "\n", "\r\n" or a lone "\r" (old Mac files).
    /// Split on bytes, not Characters: "\r\n" is one Character, and so is a space followed by a
    /// combining mark. A final line end does not start another line.
    public static func lines(_ text: String) -> [Substring] {
        lineRanges(text.utf8).map { Substring(text.utf8[$0]) }
    }

    /// Where the lines of UTF-8 bytes are, their ends left out (as `lines`). "\n" and "\r" are
    /// single bytes that no multi-byte character contains, so splitting bytes splits characters.
    public static func lineRanges<Bytes: BidirectionalCollection<UInt8>>(_ bytes: Bytes) -> [Range<Bytes.Index>] {
        var lines: [Range<Bytes.Index>] = []
        var start = bytes.startIndex, index = start
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == 0x0A || byte == 0x0D {
                lines.append(start..<index)
                index = bytes.index(after: index)
                if byte == 0x0D, index < bytes.endIndex, bytes[index] == 0x0A { index = bytes.index(after: index) }
                start = index
            } else {
                index = bytes.index(after: index)
            }
        }
        if start < bytes.endIndex { lines.append(start..<bytes.endIndex) }
        return lines
    }

    @discardableResult
    private static func regularSize(_ info: stat, path: String) throws -> Int {
        switch FileSystemEntry(mode: info.st_mode) {
        case .file:
            guard let size = Int(exactly: info.st_size), size >= 0 else {
                throw FileError.unreadable(path: path, reason: "impossible file size \(info.st_size)")
            }
            return size
        case .folder: throw FileError.notRegular(path: path, kind: "a folder")
        case let .other(kind): throw FileError.notRegular(path: path, kind: kind)
        case .none: throw FileError.notRegular(path: path, kind: "a special file")  // stat found something
        }
    }

    private static func error(_ code: Int32, path: String, missingHint: String) -> FileError {
        switch code {
        case ENOENT, ENOTDIR: return .missing(path: path, hint: missingHint)
        case EACCES, EPERM: return .unreadable(path: path, reason: "permission denied")
        default: return .unreadable(path: path, reason: String(cString: strerror(code)))
        }
    }
}
