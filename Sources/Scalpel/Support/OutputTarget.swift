import CFileSystem
import Foundation

/// A file (or a folder of files, for `export-hf` and `init`) that the user asked Scalpel to write,
/// checked against DESIGN.md's output-safety contract when it is named, before any work:
/// - the path names an entry: not `""`, `.`, `..`, nor a path ending in `/`;
/// - a file's name does not announce another format than the one written (`-o results.json` for an
///   HDF5 file); names with no extension, or one Scalpel does not know, are taken as given;
/// - an existing entry is replaced only with `--force`, and only when it is a regular file (for a
///   folder output: a folder Scalpel wrote, recognised by its marker file and holding nothing else),
///   never a folder of the user's, a symbolic link, a device or a FIFO;
/// - missing parent folders are created (`mkdir -p`); nothing is ever removed to make room.
///
/// `write` creates a temporary entry exclusively next to the target and puts it in place with a
/// rename that never replaces an entry that appeared meanwhile unless `--force`. Inside
/// `OutputTarget.together`, every write waits for the end of the block, so that a command's outputs
/// land all or none. Interruption (see `handleSignals`) removes the temporary entries.
public struct OutputTarget: Sendable, Hashable {
    public enum Kind: Sendable { case file, folder }

    /// The format a file output is written in, so that a name announcing another one is refused.
    public enum Content: String, Sendable {
        case hdf5 = "an HDF5 file", svg = "an SVG picture", html = "an HTML page", yaml = "a YAML file"

        /// The extensions that fit; the first is suggested.
        var extensions: [String] {
            switch self {
            case .hdf5: return ["h5", "hdf5", "he5"]
            case .svg: return ["svg"]
            case .html: return ["html", "htm"]
            case .yaml: return ["yaml", "yml"]
            }
        }

        /// Extensions that name a format (lowercase): one of these that is not among `extensions`
        /// is a mistake, such as expecting JSON from `-o`.
        static let announcing: Set<String> = ["h5", "hdf5", "he5", "nc", "svg", "html", "htm", "yaml", "yml", "json", "jsonl",
                                              "csv", "tsv", "txt", "md", "png", "jpg", "jpeg", "pdf", "safetensors", "bin",
                                              "pt", "pth", "npy", "npz", "mat", "pkl"]
    }

    public let path: String
    public let kind: Kind
    public let overwrite: Bool
    public var url: URL { URL(fileURLWithPath: path) }

    /// The marker file in every folder Scalpel writes: JSON naming the tool and the files it wrote.
    public static let folderMarker = ".scalpel-output"

    public init(_ path: String, kind: Kind = .file, overwrite: Bool, content: Content? = nil) throws {
        self.path = path
        self.kind = kind
        self.overwrite = overwrite
        try checkName()
        if let content { try check(content) }
        try checkExisting()
        try prepareFolder()
    }

    public init(_ url: URL, kind: Kind = .file, overwrite: Bool, content: Content? = nil) throws {
        try self.init(url.path, kind: kind, overwrite: overwrite, content: content)
    }

    /// A default output path `folder/name.ext` built from a name read from a file (a plan's `name:`),
    /// which must be one path component of safe characters; `ext` is the content's first extension.
    public static func named(_ name: String, in folder: String, content: Content, field: String,
                             overwrite: Bool) throws -> OutputTarget {
        let safe = name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-+".unicodeScalars.contains($0) }
        guard safe, !name.isEmpty, !name.hasPrefix("."), name.utf8.count <= 200 else { throw OutputError.unsafeName(name: name, field: field) }
        return try OutputTarget("\(folder)/\(name).\(content.extensions[0])", overwrite: overwrite, content: content)
    }

    /// Several file outputs of one command with their formats (nil where not asked), checked before
    /// any work: each as `init` checks it, and all distinct.
    public static func files(_ outputs: [(path: String?, content: Content)], overwrite: Bool) throws -> [OutputTarget?] {
        let targets = try outputs.map { output in try output.path.map { try OutputTarget($0, overwrite: overwrite, content: output.content) } }
        try checkDistinct(targets.compactMap { $0 })
        return targets
    }

    // MARK: Checks made when the target is named

    private func checkName() throws {
        guard !path.isEmpty else { throw OutputError.emptyPath }
        let last = path.split(separator: "/").last.map(String.init) ?? ""
        guard !path.hasSuffix("/"), last != ".", last != "..", !last.isEmpty else { throw OutputError.notAName(path: path) }
    }

    private func check(_ content: Content) throws {
        let ext = url.pathExtension.lowercased()
        guard Content.announcing.contains(ext), !content.extensions.contains(ext) else { return }
        let fitting = url.deletingPathExtension().appendingPathExtension(content.extensions[0]).lastPathComponent
        throw OutputError.wrongExtension(path: path, content: content, suggested: fitting)
    }

    private func checkExisting() throws {
        switch FileSystemEntry(path) {
        case .none: return
        case .file:
            guard kind == .file else { throw OutputError.fileNotFolder(path: path) }
        case .folder:
            guard kind == .folder else { throw OutputError.isFolder(path: path) }
            if let reason = Self.foreignContent(ofFolder: path) { throw OutputError.foreignFolder(path: path, reason: reason) }
        case let .other(what):
            throw OutputError.notReplaceable(path: path, what: what)
        }
        guard overwrite else { throw FileError.exists(path: path) }
    }

    /// Why an existing folder is not one Scalpel wrote (nil when it is, with nothing else in it).
    static func foreignContent(ofFolder path: String) -> String? {
        let marker = URL(fileURLWithPath: path).appendingPathComponent(folderMarker)
        guard case .file = FileSystemEntry(marker.path), let size = try? InputFile.checkRegular(marker.path, missingHint: ""),
              size < 1 << 20, let data = try? InputFile.read(marker.path, missingHint: ""),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              json["tool"] as? String == "scalpel", let files = json["files"] as? [String] else {
            return "it has no \(folderMarker) marker"
        }
        let present = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        let foreign = present.filter { $0 != folderMarker && !files.contains($0) }.sorted()
        return foreign.isEmpty ? nil : "it holds files Scalpel did not write: \(foreign.prefix(5).joined(separator: ", "))"
    }

    private func prepareFolder() throws {
        let folder = url.deletingLastPathComponent()
        switch FileSystemEntry(folder.path) {
        case .folder: break
        case .none:
            do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
                throw FileError.unwritable(path: path, reason: "cannot create folder \(folder.path)")
            }
        case .file, .other: throw FileError.unwritable(path: path, reason: "\(folder.path) is not a folder")
        }
        // Permission bits say nothing for root or special file systems (/proc): try creating an entry.
        Staging.shared.discard(try makeTemporary())
    }

    // MARK: Writing

    /// Calls `body` with a temporary path next to the target (a new empty file, or a new empty
    /// folder), then puts it in place, or, inside `together`, at the end of the block. On any error
    /// the temporary entry is removed and an existing output is left as it was.
    public func write<R>(_ body: (URL) throws -> R) throws -> R {
        let temporary = try makeTemporary()
        do {
            let result = try body(URL(fileURLWithPath: temporary))
            Self.holdForTests()
            if kind == .folder { try writeMarker(in: temporary) }
            try Staging.shared.finish(StagedOutput(target: self, temporary: temporary))
            return result
        } catch {
            Staging.shared.discard(temporary)
            throw Self.reported(error, writing: temporary, for: path)
        }
    }

    /// `SCALPEL_TEST_HOLD_OUTPUT=SECONDS` keeps a finished temporary file that long before it is
    /// put in place, so that tests (tools/run_shards.py) can interrupt a command while it writes.
    static func holdForTests() {
        guard let text = ProcessInfo.processInfo.environment["SCALPEL_TEST_HOLD_OUTPUT"], let seconds = Double(text), seconds > 0 else { return }
        Thread.sleep(forTimeInterval: min(seconds, 60))
    }

    /// Writes `data` (see `write(_:)`).
    public func write(_ data: Data) throws {
        try write { temporary in
            do { try data.write(to: temporary) } catch {
                throw FileError.unwritable(path: path, reason: Self.systemReason(of: error))
            }
        }
    }

    /// Runs `body`, whose outputs are all put in place at its end, or none of them if it throws.
    public static func together<R>(_ body: () throws -> R) throws -> R {
        Staging.shared.begin()
        let result: R
        do { result = try body() } catch {
            Staging.shared.abandon()
            throw error
        }
        try Staging.shared.commitCollected()
        return result
    }

    /// Checks that several targets of one command are distinct paths.
    public static func checkDistinct(_ targets: [OutputTarget]) throws {
        var seen = Set<String>()
        for target in targets where !seen.insert(target.url.standardizedFileURL.path).inserted {
            throw OutputError.duplicate(path: target.path)
        }
    }

    /// Creates a new temporary entry next to the target, registered for clean-up as it is created.
    private func makeTemporary() throws -> String {
        try Staging.shared.register { try createTemporary() }
    }

    private func createTemporary() throws -> String {
        let folder = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        for _ in 0..<16 {
            let temporary = "\(folder)/.\(name.prefix(120)).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let created: Bool
            switch kind {
            case .file:
                let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                if fd >= 0 { close(fd) }
                created = fd >= 0
            case .folder:
                created = mkdir(temporary, 0o755) == 0
            }
            if created { return temporary }
            if errno != EEXIST {
                throw FileError.unwritable(path: path, reason: "cannot create a file in \(folder): \(String(cString: strerror(errno)))")
            }
        }
        throw FileError.unwritable(path: path, reason: "cannot create a temporary file in \(folder)")
    }

    private func writeMarker(in folder: String) throws {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        let marker: [String: Any] = ["tool": "scalpel", "tool_version": ScalpelVersion.string, "files": files]
        let data = try JSONSerialization.data(withJSONObject: marker, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: folder).appendingPathComponent(Self.folderMarker))
    }

    /// Removes a temporary file, or folder and its files.
    static func remove(_ path: String) { _ = scalpel_remove_tree(path) }

    // MARK: Errors

    /// A failure to write the temporary entry (a full disk, a file-size limit) is reported against
    /// the output the user named; other errors pass through.
    static func reported(_ error: Error, writing temporary: String, for destination: String) -> Error {
        func named(_ path: String) -> String? {
            path.hasPrefix(temporary) ? destination + path.dropFirst(temporary.count) : nil
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
                return FileError.unwritable(path: path, reason: systemReason(of: error))
            }
        default: break
        }
        return error
    }

    /// The system's words for a Foundation error (`No space left on device`).
    static func systemReason(of error: Error) -> String {
        if let cocoa = error as? CocoaError, let posix = cocoa.underlying as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        return (error as? CocoaError).map { "\($0.code)" } ?? error.localizedDescription
    }

    /// The system's words in an HDF5 error stack (`error message = 'File too large'`), else all of it.
    static func systemReason(_ reason: String) -> String {
        guard let start = reason.range(of: "error message = '"),
              let end = reason[start.upperBound...].firstIndex(of: "'") else { return reason }
        return String(reason[start.upperBound..<end])
    }
}

extension OutputTarget {
    nonisolated(unsafe) private static var signalSources: [DispatchSourceSignal] = []
    /// The thread that writes outputs (the command line's main thread), stopped before clean-up.
    nonisolated(unsafe) private static var writer: pthread_t?

    /// Makes SIGINT, SIGTERM and SIGHUP remove every temporary output and exit 1 with a message, and
    /// turns a file-size limit (SIGXFSZ) into a write error that is reported like a full disk. The
    /// command line calls it once, at start, on the thread that will write the outputs.
    public static func handleSignals() {
        signal(SIGXFSZ, SIG_IGN)
        writer = pthread_self()
        // A queue of its own gets a thread even while the computation keeps every core busy.
        let queue = DispatchQueue(label: "scalpel.signals")
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")] {
            // Written in advance: after the writer is stopped, nothing may allocate.
            let plain = Array("error: interrupted by \(name).\n".utf8CString.dropLast())
            let removed = Array(("error: interrupted by \(name); removed the unfinished output, and any earlier file "
                                 + "at the output path is unchanged.\n").utf8CString.dropLast())
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                let message = Staging.shared.removeAllForExit(stopping: writer) > 0 ? removed : plain
                message.withUnsafeBufferPointer { _ = Glibc.write(2, $0.baseAddress, $0.count) }
                // _exit: no atexit handlers while the stopped thread may be inside any library.
                _exit(1)
            }
            // Until the source is registered the signal is ignored: wait for that, so that no
            // signal after this call is lost.
            let registered = DispatchSemaphore(value: 0)
            source.setRegistrationHandler { registered.signal() }
            source.resume()
            _ = registered.wait(timeout: .now() + 2)
            signalSources.append(source)
        }
    }

    /// Removes every temporary output before the process ends early (out of memory).
    public static func abandonAll() { _ = Staging.shared.removeAllForExit(stopping: writer) }
}

/// What is at a path (for outputs, without following a final symbolic link).
enum FileSystemEntry {
    case none, file, folder
    /// A symbolic link, FIFO, device or socket, named for messages.
    case other(String)

    init(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { self = .none; return }
        self.init(mode: info.st_mode)
    }

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .file
        case S_IFDIR: self = .folder
        case S_IFLNK: self = .other("a symbolic link")
        case S_IFIFO: self = .other("a FIFO")
        case S_IFCHR, S_IFBLK: self = .other("a device")
        case S_IFSOCK: self = .other("a socket")
        default: self = .other("a special file")
        }
    }
}

/// A written temporary entry waiting to be put in place of its target.
struct StagedOutput {
    let target: OutputTarget
    let temporary: String
}

/// The temporary entries of this process: put in place together, or removed on error or signal.
/// One lock orders commits against signal clean-up, so an interruption finds every output either
/// fully in place or not at all.
final class Staging: @unchecked Sendable {
    static let shared = Staging()
    private let lock = NSLock()
    /// Each temporary path, with its C string made in advance for clean-up on a signal.
    private var temporaries: [String: [CChar]] = [:]
    /// Outputs written inside `OutputTarget.together`, put in place at its end.
    private var collected: [StagedOutput]?

    /// Creates a temporary entry and records it under the lock, so that a signal arriving meanwhile
    /// finds it recorded.
    func register(_ create: () throws -> String) throws -> String {
        try lock.withLock {
            let temporary = try create()
            temporaries[temporary] = Array(temporary.utf8CString)
            return temporary
        }
    }

    func discard(_ temporary: String) { lock.withLock { removeTemporary(temporary) } }

    /// Removes a temporary entry and forgets it; called with the lock held.
    private func removeTemporary(_ temporary: String) {
        temporaries[temporary] = nil
        OutputTarget.remove(temporary)
    }

    func begin() { lock.withLock { collected = [] } }

    func finish(_ output: StagedOutput) throws {
        let later: Bool = lock.withLock {
            guard collected != nil else { return false }
            collected!.append(output)
            return true
        }
        if !later { try commit([output]) }
    }

    func abandon() {
        lock.withLock {
            for output in collected ?? [] { removeTemporary(output.temporary) }
            collected = nil
        }
    }

    func commitCollected() throws {
        let outputs: [StagedOutput] = lock.withLock {
            defer { collected = nil }
            return collected ?? []
        }
        try commit(outputs)
    }

    /// Puts every output in place, or none: an old output is swapped with the new one (so it can be
    /// swapped back if a later one fails) and removed only when all are in place.
    func commit(_ outputs: [StagedOutput]) throws {
        try lock.withLock {
            var swapped: [StagedOutput] = [], created: [StagedOutput] = []
            func undo() {
                for output in created.reversed() { _ = rename(output.target.path, output.temporary) }
                for output in swapped.reversed() { _ = scalpel_rename_exchange(output.temporary, output.target.path) }
                for output in outputs { removeTemporary(output.temporary) }
            }
            for output in outputs {
                do {
                    if try Self.putInPlace(output) { swapped.append(output) } else { created.append(output) }
                } catch {
                    undo()
                    throw error
                }
            }
            for output in outputs {
                temporaries[output.temporary] = nil
                // After a swap the old output sits at the temporary path.
                if swapped.contains(where: { $0.temporary == output.temporary }) { OutputTarget.remove(output.temporary) }
            }
        }
    }

    /// Renames one temporary entry to its target; true when it swapped places with an old output.
    private static func putInPlace(_ output: StagedOutput) throws -> Bool {
        let target = output.target, path = target.path, temporary = output.temporary
        func failure() -> FileError { FileError.unwritable(path: path, reason: String(cString: strerror(errno))) }
        switch FileSystemEntry(path) {
        case .none:
            if scalpel_rename_noreplace(temporary, path) == 0 { return false }
            if errno == EEXIST || errno == ENOTEMPTY { throw OutputError.appeared(path: path) }
            guard errno == EINVAL || errno == ENOSYS else { throw failure() }
            // A file system without renameat2 flags: link(2) refuses an existing name too.
            if target.kind == .file {
                guard link(temporary, path) == 0 else { throw errno == EEXIST ? OutputError.appeared(path: path) : failure() }
                unlink(temporary)
            } else {
                guard rename(temporary, path) == 0 else { throw failure() }
            }
            return false
        case .file where target.kind == .file && target.overwrite,
             .folder where target.kind == .folder && target.overwrite && OutputTarget.foreignContent(ofFolder: path) == nil:
            if scalpel_rename_exchange(temporary, path) == 0 { return true }
            guard errno == EINVAL || errno == ENOSYS, target.kind == .file else { throw failure() }
            guard rename(temporary, path) == 0 else { throw failure() }
            return false
        default:
            // Something else appeared, or the output was changed into something Scalpel must keep.
            throw target.overwrite ? OutputError.notReplaceable(path: path, what: "no longer an output Scalpel can replace")
                                   : OutputError.appeared(path: path)
        }
    }

    /// Before the process exits early (a signal, out of memory): stops the writing thread unless it
    /// is this one, then removes every temporary entry with system calls only, since the stopped
    /// thread may hold any lock. Returns how many there were. The lock stays held, so no commit can
    /// start afterwards; the caller exits.
    func removeAllForExit(stopping writer: pthread_t?) -> Int {
        lock.lock()
        if let writer, pthread_equal(writer, pthread_self()) == 0 { _ = scalpel_park_thread(UInt(writer), SIGUSR2) }
        for (_, path) in temporaries { path.withUnsafeBufferPointer { _ = scalpel_remove_tree($0.baseAddress!) } }
        return temporaries.count
    }
}

/// Errors about output paths (DESIGN.md "Output safety").
public enum OutputError: UserFacingError, Equatable {
    case emptyPath
    case notAName(path: String)
    case isFolder(path: String)
    case fileNotFolder(path: String)
    case foreignFolder(path: String, reason: String)
    case notReplaceable(path: String, what: String)
    case appeared(path: String)
    case duplicate(path: String)
    case unsafeName(name: String, field: String)
    case wrongExtension(path: String, content: OutputTarget.Content, suggested: String)

    public var message: String {
        switch self {
        case .emptyPath:
            return "the output path is empty. Name a file, e.g. -o outputs/result.h5."
        case let .notAName(path):
            return "\(path): names a folder, not an output. Name a file inside it, e.g. \(path.hasSuffix("/") ? path : path + "/")result.h5 (--force never replaces a folder)."
        case let .isFolder(path):
            return "\(path) is a folder. Name a file inside it, e.g. \(path)/result.h5 (--force never replaces a folder)."
        case let .fileNotFolder(path):
            return "\(path) is a file, and this command writes a folder. Choose a new folder name."
        case let .foreignFolder(path, reason):
            return "\(path) is a folder Scalpel did not write (\(reason)); --force replaces only folders Scalpel wrote itself. Choose a new folder name."
        case let .notReplaceable(path, what):
            return "\(path) is \(what); Scalpel replaces only regular files (even with --force). Choose another output path."
        case let .appeared(path):
            return "\(path) was created by someone else while Scalpel was writing it; it was left as it is and nothing was written. Pass --force to replace it, or choose another path."
        case let .duplicate(path):
            return "\(path) is named for two outputs of this command. Give each output its own path."
        case let .unsafeName(name, field):
            return "\(field) \"\(name)\" cannot name an output file: use one name of letters, digits, '.', '_', '-' or '+' (not starting with '.'), or give the output path with -o."
        case let .wrongExtension(path, content, suggested):
            let streams = content == .hdf5 ? " (tables, JSON and CSV go to standard output with --format)" : ""
            return "\(path): this output is \(content.rawValue), but its name says .\(URL(fileURLWithPath: path).pathExtension). Name it like \(suggested)\(streams)."
        }
    }
}
