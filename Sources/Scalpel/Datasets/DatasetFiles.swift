import Foundation
import Yams

/// Prompt families from the user's files, and name resolution for `--dataset`.
///
/// - `.yaml` / `.yml` / `.json`: one family `{name, description, items: [{prompt, answer,
///   corrupted_prompt, corrupted_answer}]}`, or a list of them, or `{datasets: [...]}`.
/// - `.jsonl`: one item object per line.
/// - `.txt`: one prompt per line, optionally followed by a tab and its answer; `#` starts a comment line.
public enum DatasetFiles {
    /// A built-in name (`months`) or a file path.
    public static func resolve(_ nameOrPath: String) throws -> PromptDataset {
        if let builtIn = StudyDatasets.named(nameOrPath) { return builtIn }
        let looksLikeFile = nameOrPath.contains("/") || ["yaml", "yml", "json", "jsonl", "txt"].contains(URL(fileURLWithPath: nameOrPath).pathExtension)
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
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileError.missing(path: path, hint: "Give a built-in dataset name (see `scalpel datasets`) or an existing file.")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw FileError.notUTF8(path: path) }
        let stem = url.deletingPathExtension().lastPathComponent
        let families: [PromptDataset]
        switch url.pathExtension.lowercased() {
        case "txt": families = [PromptDataset(name: stem, description: "prompts from \(url.lastPathComponent)", items: try textItems(text, path: path))]
        case "jsonl": families = [PromptDataset(name: stem, description: "prompts from \(url.lastPathComponent)", items: try jsonLines(text, path: path))]
        default: families = try structured(text, path: path)
        }
        guard families.allSatisfy({ !$0.items.isEmpty }) else { throw FileError.empty(path: path) }
        var seen = Set<String>()
        for family in families where !seen.insert(family.name).inserted { throw DatasetError.duplicate(path: path, name: family.name) }
        return families
    }

    static func textItems(_ text: String, path: String) throws -> [PromptItem] {
        var items: [PromptItem] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? String(raw.dropLast()) : String(raw)
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

    static func jsonLines(_ text: String, path: String) throws -> [PromptItem] {
        var items: [PromptItem] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            do {
                let item = try JSONDecoder().decode(PromptItem.self, from: Data(line.utf8))
                guard !item.prompt.isEmpty else { throw DatasetError.malformed(path: path, line: index + 1, reason: "\"prompt\" is empty") }
                items.append(item)
            } catch let error as DatasetError {
                throw error
            } catch {
                throw DatasetError.malformed(path: path, line: index + 1,
                                             reason: "not a JSON object with a string \"prompt\" (and optional \"answer\", \"corrupted_prompt\", \"corrupted_answer\")")
            }
        }
        return items
    }

    static func structured(_ text: String, path: String) throws -> [PromptDataset] {
        struct Wrapper: Decodable { var datasets: [PromptDataset] }
        let decoder = YAMLDecoder()
        do {
            if let list = try? decoder.decode([PromptDataset].self, from: text) { return list }
            if let wrapper = try? decoder.decode(Wrapper.self, from: text) { return wrapper.datasets }
            return [try decoder.decode(PromptDataset.self, from: text)]
        } catch let error as YamlError {
            throw DatasetError.malformed(path: path, line: yamlLine(error), reason: "not valid YAML/JSON (\(error))")
        } catch let DecodingError.keyNotFound(key, context) {
            throw DatasetError.malformed(path: path, line: nil, reason: "field \(fieldPath(context.codingPath + [key])) is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw DatasetError.malformed(path: path, line: nil, reason: "field \(fieldPath(context.codingPath)) has the wrong type: \(context.debugDescription)")
        } catch {
            throw DatasetError.malformed(path: path, line: nil,
                                         reason: "expected a family {name, description, items: [{prompt, answer, corrupted_prompt, corrupted_answer}]} or a list of them")
        }
    }

    static func fieldPath(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case let .scanner(_, _, mark, _), let .parser(_, _, mark, _), let .composer(_, _, mark, _):
            return mark.line
        default: return nil
        }
    }
}
