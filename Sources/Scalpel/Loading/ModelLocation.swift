import Foundation

/// Where `--model` points: nothing (the bundled model), a checkpoint folder, or a `.h5` model archive.
public enum ModelLocation {
    /// The small sequence model Scalpel trains and ships (`tools/train_sequence_model.py`).
    public static var bundledModelURL: URL {
        Bundle.module.url(forResource: "bundled-model", withExtension: nil)!
    }

    /// GPT-2's own `vocab.json` and `merges.txt` (50,257 pieces), shipped with Scalpel for the
    /// checkpoints `scalpel init` writes.
    public static var gpt2TokenizerURL: URL {
        Bundle.module.url(forResource: "gpt2-tokenizer", withExtension: nil)!
    }

    public static func load(_ path: String?) throws -> Model {
        // Named as plans name it (`base: bundled`), so its blocks' sources read `bundled:L5`.
        guard let path else { return try Checkpoint.load(from: bundledModelURL, name: "bundled") }
        let url = URL(fileURLWithPath: path)
        if url.pathExtension == "h5" {
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw FileError.missing(path: url.path, hint: "Build an archive with `scalpel build PLAN -o \(path)`.")
            }
            return try ModelArchive.load(from: url)
        }
        return try Checkpoint.load(from: url)
    }

    /// A model named in a plan: `bundled`, a path (relative to the plan's folder or the current
    /// folder), or a name looked up in the folder `$SCALPEL_MODELS` (e.g. `$SCALPEL_MODELS/gpt2`).
    public static func load(named name: String?, relativeTo folder: URL?, field: String) throws -> Model {
        guard let name, name != "bundled" else { return try load(nil) }
        let fm = FileManager.default
        var candidates = [URL(fileURLWithPath: name)]
        if let folder, !name.hasPrefix("/") { candidates.insert(folder.appendingPathComponent(name), at: 0) }
        if let root = ProcessInfo.processInfo.environment["SCALPEL_MODELS"], !name.contains("/") {
            candidates.append(URL(fileURLWithPath: root).appendingPathComponent(name))
        }
        guard let found = candidates.first(where: { fm.fileExists(atPath: $0.path) }) else {
            var tried: [String] = []
            for path in candidates.map(\.standardizedFileURL.path) where !tried.contains(path) { tried.append(path) }
            throw ModelLocationError.notFound(name: name, field: field, tried: tried)
        }
        return try load(found.path)
    }
}

public enum ModelLocationError: UserFacingError, Equatable {
    case notFound(name: String, field: String, tried: [String])

    public var message: String {
        switch self {
        case let .notFound(name, field, tried):
            let hint = name.contains("/") ? "Check the path, or pass --model DIR." : "Pass --model DIR, or put the checkpoint folder in $SCALPEL_MODELS/\(name)."
            return "\(field): no model \"\(name)\" (looked in \(tried.joined(separator: ", "))). \(hint)"
        }
    }
}
