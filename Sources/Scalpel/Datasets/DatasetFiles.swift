import Foundation
import Yams  // Node, the composed document

/// Prompt families from the user's files, and name resolution for `--dataset`.
///
/// - `.yaml` / `.yml` / `.json`: one family `{name, description, items: [{prompt, answer,
///   corrupted_prompt, corrupted_answer}]}`, or a list of them, or `{datasets: [...]}`.
/// - `.jsonl`: one item object per line.
/// - `.txt`: one prompt per line, optionally followed by a tab and its answer; `#` starts a comment line.
public enum DatasetFiles {
    /// The extensions of dataset files.
    static let fileExtensions = ["yaml", "yml", "json", "jsonl", "txt"]

    /// A built-in name (`months`) or a file path.
    public static func resolve(_ nameOrPath: String) throws -> PromptDataset {
        if let builtIn = StudyDatasets.named(nameOrPath) { return builtIn }
        let looksLikeFile = nameOrPath.contains("/") || fileExtensions.contains(URL(fileURLWithPath: nameOrPath).pathExtension)
            || FileManager.default.fileExists(atPath: nameOrPath)
        guard looksLikeFile else { throw DatasetError.unknown(name: nameOrPath, known: StudyDatasets.all.map(\.name)) }
        let families = try load(URL(fileURLWithPath: nameOrPath))
        guard families.count == 1 else {
            throw DatasetError.malformed(path: nameOrPath, line: nil,
                                         reason: "holds \(families.count) families (\(families.map(\.name).joined(separator: ", "))); give a file with one family")
        }
        return families[0]
    }

    public static func load(_ url: URL) throws -> [PromptDataset] {
        let path = url.path
        let text = try InputFile.readText(path, missingHint: "Give a built-in dataset name (see `scalpel datasets`) or an existing file.")
        let stem = url.deletingPathExtension().lastPathComponent
        let families: [PromptDataset]
        switch url.pathExtension.lowercased() {
        case "txt": families = [PromptDataset(name: stem, description: "prompts from \(url.lastPathComponent)", items: try textItems(text, path: path))]
        case "jsonl": families = [PromptDataset(name: stem, description: "prompts from \(url.lastPathComponent)", items: try jsonLines(text, path: path))]
        default: families = try structured(text, path: path)
        }
        guard !families.isEmpty, families.allSatisfy({ !$0.items.isEmpty }) else { throw FileError.empty(path: path) }
        var seen = Set<String>()
        for family in families where !seen.insert(family.name).inserted { throw DatasetError.duplicate(path: path, name: family.name) }
        return families
    }

    static func textItems(_ text: String, path: String) throws -> [PromptItem] {
        var items: [PromptItem] = []
        for (index, line) in InputFile.lines(text).enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count <= 2, !fields[0].isEmpty, fields.count == 1 || !fields[1].isEmpty else {
                throw DatasetError.malformed(path: path, line: index + 1,
                                             reason: "expected a prompt, optionally followed by one tab and its answer; found \(fields.count) tab-separated fields")
            }
            items.append(PromptItem(prompt: fields[0], answer: fields.count == 2 ? fields[1] : nil))
        }
        return items
    }

    /// One JSON object per line, with the fields of `PromptItem.CodingKeys` and nothing else.
    static func jsonLines(_ text: String, path: String) throws -> [PromptItem] {
        var items: [PromptItem] = []
        let known = PromptItem.CodingKeys.allCases.map(\.rawValue)
        for (index, line) in InputFile.lines(text).enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            func problem(_ reason: String) -> DatasetError { .malformed(path: path, line: index + 1, reason: reason) }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw problem("not a JSON object {\"prompt\": …} (fields: \(known.joined(separator: ", ")))")
            }
            if let key = JSONKeys.firstDuplicate(in: Data(line.utf8)) { throw problem("field \"\(key)\" is given twice; keep one") }
            for key in object.keys.sorted() where !known.contains(key) {
                throw problem("unknown field \"\(key)\". Known fields: \(known.joined(separator: ", ")).")
            }
            var fields: [String: String] = [:]
            for (key, value) in object where !(value is NSNull) {
                guard let text = value as? String else { throw problem("field \"\(key)\" must be a string") }
                fields[key] = text
            }
            guard let prompt = fields["prompt"], !prompt.isEmpty else { throw problem("\"prompt\" is missing or empty") }
            items.append(PromptItem(prompt: prompt, answer: fields["answer"],
                                    corruptedPrompt: fields["corrupted_prompt"], corruptedAnswer: fields["corrupted_answer"]))
        }
        return items
    }

    /// A family, a list of families, or `{datasets: [families]}`, in YAML or JSON.
    static func structured(_ text: String, path: String) throws -> [PromptDataset] {
        let reader = YAMLFields(path: path)
        guard let root = try YAMLFile.compose(text, path: path) else { return [] }
        if root.sequence != nil {
            return try reader.list(root, at: "").enumerated().map { try family($1, reader: reader, field: "[\($0)]") }
        }
        if root["datasets"] != nil {
            let entries = try reader.mapping(root, at: "", known: ["datasets"], expected: "{datasets: [families]}")
            return try reader.list(entries["datasets"]!, at: "datasets").enumerated().map {
                try family($1, reader: reader, field: "datasets[\($0)]")
            }
        }
        return [try family(root, reader: reader, field: "")]
    }

    static func family(_ node: Node, reader: YAMLFields, field: String) throws -> PromptDataset {
        func at(_ key: String) -> String { field.isEmpty ? key : "\(field).\(key)" }
        let entries = try reader.mapping(node, at: field, known: ["name", "description", "items"],
                                         expected: "a family {name, description, items: [{prompt, answer, corrupted_prompt, corrupted_answer}]}")
        let name = try reader.string(try reader.required(entries, "name", in: node, at: field), at: at("name"), numbersAsText: false)
        let description = try entries["description"].map { try reader.string($0, at: at("description")) } ?? ""
        let items = try reader.list(try reader.required(entries, "items", in: node, at: field), at: at("items"))
        return PromptDataset(name: name, description: description, items: try items.enumerated().map { index, item in
            try self.item(item, reader: reader, field: at("items[\(index)]"))
        })
    }

    static func item(_ node: Node, reader: YAMLFields, field: String) throws -> PromptItem {
        let known = PromptItem.CodingKeys.allCases.map(\.rawValue)
        let entries = try reader.mapping(node, at: field, known: known, expected: "an item {prompt, answer, corrupted_prompt, corrupted_answer}")
        let prompt = try reader.string(try reader.required(entries, "prompt", in: node, at: field), at: "\(field).prompt", numbersAsText: false)
        guard !prompt.isEmpty else { throw reader.unexpected(entries["prompt"], at: "\(field).prompt", expected: "a non-empty prompt") }
        func optional(_ key: String) throws -> String? { try entries[key].map { try reader.string($0, at: "\(field).\(key)", numbersAsText: false) } }
        return PromptItem(prompt: prompt, answer: try optional("answer"),
                          corruptedPrompt: try optional("corrupted_prompt"), corruptedAnswer: try optional("corrupted_answer"))
    }
}
