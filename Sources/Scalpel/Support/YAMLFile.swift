// libyaml, the C target Yams 5.0.1 (pinned in Package.swift) builds and SwiftPM makes visible to
// packages that depend on Yams. Its event parser lets us check a file without building it.
import CYaml
import Foundation
import Yams

/// Every YAML file Scalpel reads (plans, dataset files, `--families`) is parsed here.
///
/// Before Yams builds anything, one pass over libyaml's events (no recursion, no tree) refuses what
/// would crash or exhaust memory, and what Yams would silently get wrong:
/// - nesting deeper than `maximumDepth` (Yams builds trees recursively: ~5,000 levels overflow
///   the stack);
/// - aliases standing for more than `maximumAliasedValues` values in all (an alias bomb, "billion
///   laughs", takes gigabytes even when its last alias is never read). Values written out are not
///   limited: their memory grows with the file's size, not faster;
/// - a key given twice in one mapping (Yams keeps one without a word);
/// - an alias to an anchor not defined before it.
/// Aliases count as what they stand for, in both depth and size.
public enum YAMLFile {
    /// The study's files nest 4 levels; 64 leaves room for any hand-written file.
    public static let maximumDepth = 64
    /// Values (scalars and collections) that aliases may stand for, in all: far more than any plan
    /// or dataset file needs.
    public static let maximumAliasedValues = 100_000

    /// The document's root node (nil when the file holds no document), after `check`.
    static func compose(_ text: String, path: String) throws -> Node? {
        try check(text, path: path)
        do {
            return try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw YAMLFileError.syntax(path: path, line: line(of: error), reason: "\(error)")
        }
    }

    /// Checks depth, size, duplicate keys and aliases (see above) without building the document.
    static func check(_ text: String, path: String) throws {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLFileError.syntax(path: path, line: nil, reason: "libyaml could not start")
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var scan = EventScan(path: path)
            var finished = false
            while !finished {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    let reason = [parser.problem, parser.context].compactMap { $0.map { String(cString: $0) } }.joined(separator: ", ")
                    throw YAMLFileError.syntax(path: path, line: Int(parser.problem_mark.line) + 1, reason: reason)
                }
                defer { yaml_event_delete(&event) }
                finished = event.type == YAML_STREAM_END_EVENT
                try scan.take(event)
            }
        }
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case let .scanner(_, _, mark, _), let .parser(_, _, mark, _), let .composer(_, _, mark, _):
            return mark.line
        default: return nil
        }
    }
}

/// The running totals of `YAMLFile.check`.
private struct EventScan {
    /// A collection being read.
    struct Frame {
        var isMapping: Bool
        var anchor: String?
        var level: Int
        /// `nodes` before this collection started, to size it for its anchor.
        var nodesBefore: Int
        /// The deepest level reached inside it so far (aliases expanded).
        var deepest: Int
        /// Mappings alternate key, value: whether the next child is a key, and the scalar keys seen.
        var nextIsKey = true
        var keys: Set<String> = []
    }

    let path: String
    /// Values so far, aliases expanded; and how many of them aliases stand for.
    var nodes = 0
    var aliasedValues = 0
    var frames: [Frame] = []
    /// Per anchor, the values it stands for and how many levels deep it goes.
    var anchors: [String: (nodes: Int, height: Int)] = [:]

    init(path: String) { self.path = path }

    mutating func take(_ event: yaml_event_t) throws {
        let line = Int(event.start_mark.line) + 1
        switch event.type {
        case YAML_SCALAR_EVENT:
            let value = String(decoding: UnsafeBufferPointer(start: event.data.scalar.value, count: event.data.scalar.length), as: UTF8.self)
            try child(scalarKey: value, line: line)
            try add(nodes: 1, reaching: frames.count + 1, line: line)
            if let anchor = Self.string(event.data.scalar.anchor) { anchors[anchor] = (1, 1) }
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let anchored = anchors[name] else {
                throw YAMLFileError.syntax(path: path, line: line, reason: "alias *\(name) names no anchor &\(name) defined before it")
            }
            try child(scalarKey: nil, line: line)
            aliasedValues += anchored.nodes
            guard aliasedValues <= YAMLFile.maximumAliasedValues else {
                throw YAMLFileError.tooManyAliasedValues(path: path, line: line, limit: YAMLFile.maximumAliasedValues)
            }
            try add(nodes: anchored.nodes, reaching: frames.count + anchored.height, line: line)
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            try child(scalarKey: nil, line: line)
            let level = frames.count + 1
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            let anchor = Self.string(isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
            frames.append(Frame(isMapping: isMapping, anchor: anchor, level: level, nodesBefore: nodes, deepest: level))
            try add(nodes: 1, reaching: level, line: line)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let frame = frames.removeLast()
            if let anchor = frame.anchor { anchors[anchor] = (nodes - frame.nodesBefore, frame.deepest - frame.level + 1) }
            if !frames.isEmpty { frames[frames.count - 1].deepest = max(frames[frames.count - 1].deepest, frame.deepest) }
        default:
            break  // stream and document start and end
        }
    }

    /// A value starts inside the current collection: in a mapping, every other one is a key.
    private mutating func child(scalarKey: String?, line: Int) throws {
        guard let top = frames.indices.last, frames[top].isMapping else { return }
        defer { frames[top].nextIsKey.toggle() }
        guard frames[top].nextIsKey, let key = scalarKey else { return }
        guard frames[top].keys.insert(key).inserted else { throw YAMLFileError.duplicateKey(path: path, line: line, key: key) }
    }

    private mutating func add(nodes count: Int, reaching level: Int, line: Int) throws {
        guard level <= YAMLFile.maximumDepth else {
            throw YAMLFileError.tooDeep(path: path, line: line, limit: YAMLFile.maximumDepth)
        }
        nodes += count
        if let top = frames.indices.last { frames[top].deepest = max(frames[top].deepest, level) }
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafePointer($0)) }
    }
}

/// Typed access to a composed YAML document. Errors name the file, the line and the field
/// (`plan.yaml:4, edits[0].mode`).
struct YAMLFields {
    let path: String

    func location(_ node: Node?, _ field: String) -> String {
        let line = node?.mark.map { ":\($0.line)" } ?? ""
        return field.isEmpty ? "\(path)\(line)" : "\(path)\(line), \(field)"
    }

    /// The entries of a mapping whose keys must all be among `known`.
    func mapping(_ node: Node, at field: String, known: [String], expected: String) throws -> [String: Node] {
        guard let mapping = node.mapping else { throw unexpected(node, at: field, expected: expected) }
        var entries: [String: Node] = [:]
        for (key, value) in mapping {
            let name = key.scalar?.string ?? "\(key)"
            guard known.contains(name) else {
                throw YAMLFileError.unknownField(location: location(key, field.isEmpty ? name : "\(field).\(name)"), known: known)
            }
            entries[name] = value
        }
        return entries
    }

    /// The value of a required field.
    func required(_ entries: [String: Node], _ key: String, in node: Node, at field: String) throws -> Node {
        guard let value = entries[key] else {
            throw YAMLFileError.missingField(location: location(node, field.isEmpty ? key : "\(field).\(key)"))
        }
        return value
    }

    /// A scalar, as text: `blocks: [5]` is the block "5". A null, list or mapping is an error, and so
    /// is an unquoted number or boolean unless `numbersAsText` (an answer `3` is not the token " 3").
    func string(_ node: Node, at field: String, numbersAsText: Bool = true) throws -> String {
        guard let scalar = node.scalar, node.null == nil || scalar.style != .plain else {
            throw unexpected(node, at: field, expected: "a string")
        }
        if !numbersAsText, scalar.style == .plain, node.bool != nil || node.int != nil || node.float != nil {
            throw YAMLFileError.unexpected(location: location(node, field), found: scalar.string, expected: "a string in quotes")
        }
        return scalar.string
    }

    /// The error for a value that is not what `field` needs, showing what was found.
    func unexpected(_ node: Node?, at field: String, expected: String) -> YAMLFileError {
        let found: String
        switch node {
        case nil: found = "nothing"
        case .sequence(let list)?: found = list.isEmpty ? "an empty list" : "a list"
        case .mapping?: found = "a mapping"
        case .scalar(let scalar)?:
            if node?.null != nil && scalar.style == .plain { found = "null" } else {
                found = "\"" + (scalar.string.count > 40 ? scalar.string.prefix(40) + "…" : scalar.string) + "\""
            }
        }
        return .unexpected(location: location(node, field), found: found, expected: expected)
    }

    func list(_ node: Node, at field: String) throws -> [Node] {
        guard let sequence = node.sequence else { throw unexpected(node, at: field, expected: "a list") }
        return Array(sequence)
    }

    func strings(_ node: Node, at field: String) throws -> [String] {
        try list(node, at: field).enumerated().map { try string($1, at: "\(field)[\($0)]") }
    }

    func int(_ node: Node, at field: String, in range: ClosedRange<Int>) throws -> Int {
        guard node.scalar?.style == .plain, let value = node.int else {
            throw unexpected(node, at: field, expected: "an integer")
        }
        guard range.contains(value) else {
            throw YAMLFileError.outOfRange(location: location(node, field), value: value, range: range)
        }
        return value
    }
}

/// What can be wrong with a YAML file as YAML: its syntax, its size, its keys and the types of its
/// fields. What the values mean is checked by each file's own reader (`PlanError`, `DatasetError`).
public enum YAMLFileError: UserFacingError, Equatable {
    case syntax(path: String, line: Int?, reason: String)
    case tooDeep(path: String, line: Int, limit: Int)
    case tooManyAliasedValues(path: String, line: Int, limit: Int)
    case duplicateKey(path: String, line: Int, key: String)
    case unknownField(location: String, known: [String])
    case missingField(location: String)
    case unexpected(location: String, found: String, expected: String)
    case outOfRange(location: String, value: Int, range: ClosedRange<Int>)

    public var message: String {
        switch self {
        case let .syntax(path, line, reason):
            return "\(path)\(line.map { ":\($0)" } ?? ""): not valid YAML (\(reason))."
        case let .tooDeep(path, line, limit):
            return "\(path):\(line): nested more than \(limit) levels deep (lists and mappings inside each other, aliases "
                + "counted as what they stand for). Scalpel reads at most \(limit) levels; flatten the file."
        case let .tooManyAliasedValues(path, line, limit):
            return "\(path):\(line): the aliases (*name) of this file stand for more than \(limit) values in all. Scalpel "
                + "refuses this, which is how an alias bomb exhausts memory; write the values out instead of aliasing them."
        case let .duplicateKey(path, line, key):
            return "\(path):\(line): key \"\(key)\" appears twice in the same mapping. Keep one of them."
        case let .unknownField(location, known):
            return "\(location): unknown field. Known fields: \(known.joined(separator: ", "))."
        case let .missingField(location):
            return "\(location): required field is missing."
        case let .unexpected(location, found, expected):
            return "\(location): expected \(expected), found \(found)."
        case let .outOfRange(location, value, range):
            return "\(location): \(value) is out of range; give an integer from \(range.lowerBound) to \(range.upperBound)."
        }
    }
}
