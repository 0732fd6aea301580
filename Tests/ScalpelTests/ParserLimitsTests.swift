import Foundation
import XCTest
@testable import Scalpel

/// Hostile input files for the library's parsers: each test builds the file that crashed, hung or
/// was silently misread, and checks for a typed error naming the file (and line and field).
final class ParserLimitsTests: ScratchTestCase {

    func write(_ text: String, _ name: String) throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    // MARK: YAML limits (every YAML load goes through YAMLFile)

    /// 5,000 levels overflowed the stack in Yams (a crash); now refused at the 65th level.
    func testDeepNestingIsRefusedInEveryYAMLFile() throws {
        let flow = String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)
        let plan = try write("name: deep\nblocks: [\"0\"]\ndescription: " + flow + "\n", "deep-plan.yaml")
        assertError(try Plan.load(plan), YAMLFileError.self, equals: .tooDeep(path: plan.path, line: 3, limit: 64),
                    mentions: [plan.path + ":3", "64 levels"])
        let dataset = try write("name: d\nitems:\n  - prompt: " + flow + "\n", "deep.yaml")
        assertError(try DatasetFiles.load(dataset), YAMLFileError.self, mentions: [dataset.path + ":3", "64 levels"])
        let families = try write(flow, "deep-families.yaml")
        assertError(try SequenceFamilies.load(families), YAMLFileError.self, mentions: [families.path + ":1", "64 levels"])
        // Block style: each level indented one more space.
        let block = (0..<200).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " x\n"
        let blockFile = try write(block, "deep-block.yaml")
        assertError(try DatasetFiles.load(blockFile), YAMLFileError.self, mentions: [blockFile.path + ":64", "64 levels"])
        // 64 levels are fine.
        XCTAssertNoThrow(try YAMLFile.check(String(repeating: "[", count: 64) + String(repeating: "]", count: 64), path: "ok"))
    }

    /// "Billion laughs": nine levels of ten aliases each, never used by the plan. It took 3.6 GB and
    /// then crashed; now it stops when aliases stand for 100,000 values.
    func testAliasBombIsRefusedEvenWhenUnused() throws {
        var lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for level in 1..<9 { lines.append("a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]") }
        let bomb = lines.joined(separator: "\n")
        let plan = try write("blocks: [\"0\"]\nedits: []\nchecks: []\n" + "description: x\n" + "name: bomb\n" + "models: {}\n", "ok.yaml")
        XCTAssertNoThrow(try Plan.load(plan))
        let bombPlan = try write("blocks: [\"0\"]\nunused:\n" + bomb.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n", "bomb.yaml")
        assertError(try Plan.load(bombPlan), YAMLFileError.self, equals: .tooManyAliasedValues(path: bombPlan.path, line: 7, limit: 100_000),
                    mentions: [bombPlan.path + ":7", "100000 values", "alias"])
        let bombData = try write("name: x\nitems: [{prompt: a}]\n" + bomb + "\n", "bomb-dataset.yaml")
        assertError(try DatasetFiles.load(bombData), YAMLFileError.self, mentions: [bombData.path, "aliases"])
        // Values written out are not limited: 30,000 items are 150,000 values.
        let big = try write("name: big\nitems:\n" + String(repeating: "  - {prompt: a, answer: \" b\"}\n", count: 30_000), "big.yaml")
        XCTAssertEqual(try DatasetFiles.load(big)[0].items.count, 30_000)
    }

    /// Aliases count as deep as what they stand for: 64 aliases of a 63-level list nested in each other.
    func testAliasesCannotBuildDepth() throws {
        var text = "a0: &a0 " + String(repeating: "[", count: 60) + String(repeating: "]", count: 60) + "\n"
        for level in 1..<10 { text += "a\(level): &a\(level) [[[[[*a\(level - 1)]]]]]\n" }
        let url = try write(text, "alias-depth.yaml")
        assertError(try DatasetFiles.load(url), YAMLFileError.self, equals: .tooDeep(path: url.path, line: 2, limit: 64))
    }

    func testUndefinedAliasAndSyntaxErrorsNameTheLine() throws {
        let url = try write("blocks: [\"0\"]\nname: *nowhere\n", "alias.yaml")
        assertError(try Plan.load(url), YAMLFileError.self, mentions: [url.path + ":2", "*nowhere"])
        let broken = try write("name: x\nitems: [{prompt: \"a}]\n", "broken.yaml")
        assertError(try DatasetFiles.load(broken), YAMLFileError.self, mentions: [broken.path + ":", "not valid YAML"])
    }

    // MARK: Strict fields

    func testDuplicateKeysAreErrors() throws {
        let plan = try write("blocks: [\"0\"]\nname: a\nblocks: [\"1\"]\n", "dup.yaml")
        assertError(try Plan.load(plan), YAMLFileError.self, equals: .duplicateKey(path: plan.path, line: 3, key: "blocks"),
                    mentions: [plan.path + ":3", "\"blocks\"", "twice"])
        let dataset = try write("name: d\nitems:\n  - {prompt: a, answer: \" b\", answer: \" c\"}\n", "dup-item.yaml")
        assertError(try DatasetFiles.load(dataset), YAMLFileError.self, mentions: [dataset.path + ":3", "\"answer\""])
        let json = try write(#"{"name": "d", "items": [{"prompt": "a"}], "name": "e"}"#, "dup.json")
        assertError(try DatasetFiles.load(json), YAMLFileError.self, mentions: [json.path + ":1", "\"name\""])
        let jsonl = try write("{\"prompt\": \"a\"}\r\n{\"prompt\": \"b\", \"prompt\": \"c\"}\r\n", "dup.jsonl")
        assertError(try DatasetFiles.load(jsonl), DatasetError.self, mentions: [jsonl.path + ":2", "\"prompt\"", "twice"])
        // The same key in two different mappings is fine.
        XCTAssertNoThrow(try DatasetFiles.load(try write("name: d\nitems:\n  - {prompt: a}\n  - {prompt: b}\n", "ok.yaml")))
    }

    func testDatasetFilesRefuseUnknownAndWrongTypedFields() throws {
        let unknown = try write("name: d\nitems:\n  - prompt: a\n    anwser: \" b\"\n", "typo.yaml")
        assertError(try DatasetFiles.load(unknown), YAMLFileError.self,
                    mentions: [unknown.path + ":4", "items[0].anwser", "unknown field", "answer"])
        let wrongType = try write("name: d\nitems:\n  - prompt: [a, b]\n", "list.yaml")
        assertError(try DatasetFiles.load(wrongType), YAMLFileError.self, equals: .unexpected(location: "\(wrongType.path):3, items[0].prompt", found: "a list", expected: "a string"))
        let nullPrompt = try write("name: d\nitems:\n  - prompt:\n", "null.yaml")
        assertError(try DatasetFiles.load(nullPrompt), YAMLFileError.self, mentions: [nullPrompt.path, "items[0].prompt", "a string"])
        let itemsNotList = try write("name: d\nitems: {prompt: a}\n", "map.yaml")
        assertError(try DatasetFiles.load(itemsNotList), YAMLFileError.self, mentions: [itemsNotList.path + ":2", "items", "a list"])
        let topLevel = try write("- name: a\n  items: [{prompt: x}]\n  colour: red\n", "top.yaml")
        assertError(try DatasetFiles.load(topLevel), YAMLFileError.self, mentions: [topLevel.path + ":3", "[0].colour"])
        let jsonl = try write("{\"prompt\": \"a\", \"anwser\": \" b\"}\n", "typo.jsonl")
        assertError(try DatasetFiles.load(jsonl), DatasetError.self, mentions: [jsonl.path + ":1", "\"anwser\"", "answer"])
        let plan = try write("blocks: [\"0\"]\nchecks:\n  - {prompt: \"1 2\", answer: [\" 3\"]}\n", "check.yaml")
        assertError(try Plan.load(plan), YAMLFileError.self, mentions: [plan.path + ":3", "checks[0].answer", "a string"])
        let models = try write("blocks: [\"0\"]\nmodels: [a, b]\n", "models.yaml")
        assertError(try Plan.load(models), YAMLFileError.self, mentions: [models.path + ":2", "models", "name: path"])
    }

    /// Int64.max as a family value wrapped when `paths` stepped to the next value.
    func testFamilyValuesAreBounded() throws {
        let huge = try write("- {name: big, items: [a, b], values: [1, 9223372036854775807]}\n", "families.yaml")
        assertError(try SequenceFamilies.load(huge), YAMLFileError.self,
                    equals: .outOfRange(location: "\(huge.path):1, [0].values[1]", value: Int.max, range: SequenceFamilies.valueRange),
                    mentions: [huge.path + ":1", "values[1]", "9223372036854775807", "-1000000"])
        let text = try write("- {name: t, items: [a, b], values: [1, two]}\n", "text.yaml")
        assertError(try SequenceFamilies.load(text), YAMLFileError.self, mentions: ["values[1]", "an integer"])
        let counts = try write("- name: c\n  items: [a, b]\n  values: [1]\n", "counts.yaml")
        assertError(try SequenceFamilies.load(counts), YAMLFileError.self, mentions: [counts.path + ":3", "[0].values", "one value per item"])
        let unknown = try write("- {name: u, items: [a], vals: [1]}\n", "unknown.yaml")
        assertError(try SequenceFamilies.load(unknown), YAMLFileError.self, mentions: ["[0].vals", "unknown field"])
        XCTAssertEqual(try SequenceFamilies.load(try write("- {name: ok, items: [a, b], values: [-3, 1000000]}\n", "ok.yaml"))[0].values, [-3, 1_000_000])
    }

    // MARK: config.json

    func testConfigFieldsAreTypedStrictly() throws {
        func config(_ edit: (inout [String: Any]) -> Void) throws -> URL {
            let folder = scratch.appendingPathComponent("model-\(UUID().uuidString)")
            try FileManager.default.copyItem(at: TestFiles.model("tiny-hub"), to: folder)
            return try BadInputFiles.editConfig(folder, edit).appendingPathComponent("config.json")
        }
        let cases: [(field: String, value: Any, mention: String)] = [
            ("n_layer", true, "true"), ("n_embd", 64.5, "64.5"), ("n_head", "4", "\"4\""),
            ("vocab_size", 1 << 40, "1099511627776"), ("layer_norm_epsilon", "1e-5", "\"1e-5\""),
            ("layer_norm_epsilon", 0, "0"), ("layer_norm_epsilon", -1e-5, "-1"), ("layer_norm_epsilon", 1e-60, "e-60"),
            ("layer_norm_epsilon", NSNull(), "null"),
            ("bos_token_id", 1000, "1000"), ("n_inner", "256", "\"256\""), ("scale_attn_weights", "yes", "\"yes\""),
            ("model_type", 2, "2"), ("architectures", "GPT2LMHeadModel", "GPT2LMHeadModel"),
        ]
        for (field, value, mention) in cases {
            let url = try config { $0[field] = value }
            XCTAssertThrowsError(try GPT2Config.load(from: url), "\(field): \(value)") { error in
                let message = "\(error)"
                XCTAssertTrue(error is ConfigError, message)
                for text in [url.path, "\"\(field)\"", mention] where !message.contains(text) { XCTFail("\(field): \(message) lacks \(text)") }
            }
        }
        // A bad epsilon used to become 1e-5 without a word; a good one is kept.
        XCTAssertEqual(try GPT2Config.load(from: try config { $0["layer_norm_epsilon"] = 1e-6 }).layerNormEpsilon, 1e-6)
        XCTAssertEqual(try GPT2Config.load(from: try config { $0["n_inner"] = NSNull() }).nInner, 256)

        let duplicated = try config { _ in }
        let text = try String(contentsOf: duplicated, encoding: .utf8)
        try Data(text.replacingOccurrences(of: "{", with: "{\"n_layer\": 1, ", options: [], range: text.range(of: "{")).utf8).write(to: duplicated)
        assertError(try GPT2Config.load(from: duplicated), ConfigError.self, equals: .duplicateField(path: duplicated.path, field: "n_layer"),
                    mentions: [duplicated.path, "\"n_layer\"", "twice"])
    }

    func testJSONDuplicateKeyScanner() {
        XCTAssertNil(JSONKeys.firstDuplicate(in: Data(#"{"a": {"a": 1}, "b": ["a", "a"], "c": "a"}"#.utf8)))
        XCTAssertEqual(JSONKeys.firstDuplicate(in: Data(#"{"x": [{"k\"q": 1, "k\"q": 2}]}"#.utf8)), #"k\"q"#)
        XCTAssertEqual(JSONKeys.firstDuplicate(in: Data(#"{"a": 1, "b": {}, "a": 2}"#.utf8)), "a")
    }

    // MARK: Line endings

    func testPromptFilesWithAnyLineEnding() throws {
        let expected = [PromptItem(prompt: "1 2 3 4", answer: " 5"), PromptItem(prompt: "one two")]
        for (name, end) in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")] {
            let txt = try write(["# comment", "1 2 3 4\t 5", "", "one two"].joined(separator: end) + end, "\(name).txt")
            XCTAssertEqual(try DatasetFiles.load(txt)[0].items, expected, name)
            let jsonl = try write([#"{"prompt": "1 2 3 4", "answer": " 5"}"#, #"{"prompt": "one two"}"#].joined(separator: end), "\(name).jsonl")
            XCTAssertEqual(try DatasetFiles.load(jsonl)[0].items, expected, name)
            let yaml = try write(["name: n", "items:", "  - {prompt: \"1 2 3 4\", answer: \" 5\"}", "  - prompt: one two"].joined(separator: end), "\(name).yaml")
            XCTAssertEqual(try DatasetFiles.load(yaml)[0].items, expected, name)
            let plan = try write(["name: p", "blocks:", "  - \"0-1\"", "  - \"2.mlp\""].joined(separator: end), "\(name)-plan.yaml")
            XCTAssertEqual(try Plan.load(plan).blocks.map(\.description), ["0-1", "2.mlp"], name)
        }
        // Errors count lines the same way whatever the line end.
        let bad = try write("ok\r\n\tno prompt\r\n", "bad-crlf.txt")
        assertError(try DatasetFiles.load(bad), DatasetError.self, mentions: [bad.path + ":2"])
        let badCR = try write("ok\r\rx\ty\tz\r", "bad-cr.txt")
        assertError(try DatasetFiles.load(badCR), DatasetError.self, mentions: [badCR.path + ":3"])
    }

    /// A NUL byte is valid UTF-8, but a file holding one is binary, not a prompt or plan file.
    func testTextFilesWithNULBytesAreRefused() throws {
        for name in ["p.txt", "p.jsonl", "p.yaml", "plan.yaml"] {
            let url = try write("1 2 3 4\n5 6\u{0}7 8\n", name)
            let load: () throws -> Void = name == "plan.yaml" ? { _ = try Plan.load(url) } : { _ = try DatasetFiles.load(url) }
            assertError(try load(), FileError.self, equals: .binary(path: url.path, offset: 11), mentions: [url.path, "NUL", "byte 11"])
        }
    }

    func testMergesWithCarriageReturnsOnly() throws {
        try #"{"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#.write(to: scratch.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        for end in ["\r", "\r\n", "\n"] {
            try Data(["#version: 0.2", "a b", "Ġ ab"].joined(separator: end).utf8).write(to: scratch.appendingPathComponent("merges.txt"))
            let tokenizer = try GPT2Tokenizer.load(from: scratch)
            XCTAssertEqual(tokenizer.encode("ab ab"), [2, 4], end.debugDescription)
        }
        try Data("a b\rb a\r".utf8).write(to: scratch.appendingPathComponent("merges.txt"))
        assertError(try GPT2Tokenizer.load(from: scratch), TokenizerError.self,
                    equals: .mergeNotInVocab(path: scratch.appendingPathComponent("merges.txt").path, line: 2, piece: "ba"))
    }

    // MARK: Tokenizer files

    func testVocabularyIDsAreChecked() throws {
        let vocab = scratch.appendingPathComponent("vocab.json")
        try Data("a b\n".utf8).write(to: scratch.appendingPathComponent("merges.txt"))
        func load(_ text: String) throws -> GPT2Tokenizer {
            try Data(text.utf8).write(to: vocab)
            return try GPT2Tokenizer.load(from: scratch)
        }
        // One huge id used to size the id table (a crash).
        assertError(try load(#"{"a": 0, "b": 1, "ab": 9223372036854775807}"#), TokenizerError.self,
                    equals: .vocabIDTooLarge(path: vocab.path, piece: "ab", id: Int.max, count: 3),
                    mentions: [vocab.path, "\"ab\"", "9223372036854775807", "0 to 2"])
        assertError(try load(#"{"a": 0, "b": 1, "ab": 1e30}"#), TokenizerError.self, equals: .vocabBadID(path: vocab.path, piece: "ab"))
        assertError(try load(#"{"a": 0, "b": true, "ab": 2}"#), TokenizerError.self, equals: .vocabBadID(path: vocab.path, piece: "b"))
        assertError(try load("{}"), TokenizerError.self, equals: .vocabEmpty(path: vocab.path), mentions: [vocab.path, "empty"])
        assertError(try load(#"{"a": 0, "b": 1, "ab": 2, "a": 3}"#), TokenizerError.self,
                    equals: .vocabDuplicatePiece(path: vocab.path, piece: "a"), mentions: [vocab.path, "\"a\"", "twice"])
        XCTAssertEqual(try load(#"{"a": 0, "b": 1, "ab": 2}"#).encode("ab"), [2])
    }

    // MARK: Files that are not regular files

    /// A FIFO hung every reader (opening it waits for a writer); a folder was "no such file".
    func testFIFOsFoldersAndDevicesAreNotRegularFiles() throws {
        let fifo = scratch.appendingPathComponent("fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let folder = scratch.appendingPathComponent("folder.yaml")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (path, kind) in [(fifo.path, "a FIFO"), (folder.path, "a folder"), ("/dev/null", "a device")] {
            let url = URL(fileURLWithPath: path)
            let expected = FileError.notRegular(path: path, kind: kind)
            let mentions = [path, "is not a regular file", kind]
            assertError(try Plan.load(url), FileError.self, equals: expected, mentions: mentions)
            assertError(try DatasetFiles.load(url), FileError.self, equals: expected, mentions: mentions)
            assertError(try SequenceFamilies.load(url), FileError.self, equals: expected, mentions: mentions)
            assertError(try GPT2Config.load(from: url), FileError.self, equals: expected, mentions: mentions)
            assertError(try GPT2Tokenizer(vocabURL: url, mergesURL: url), FileError.self, equals: expected, mentions: mentions)
            assertError(try SafetensorsFile(url: url), FileError.self, equals: expected, mentions: mentions)
            assertError(try HDF5File.open(url), FileError.self, equals: expected, mentions: mentions)
            assertError(try MappedFile(path: path, missingHint: ""), FileError.self, equals: expected, mentions: mentions)
        }
        // Inside a checkpoint folder: a FIFO as config.json, model.safetensors or vocab.json.
        for name in ["config.json", "model.safetensors", "vocab.json"] {
            let parent = scratch.appendingPathComponent("fifo-" + name)
            try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
            let model = try BadInputFiles.copy("tiny-hub", into: parent)
            let file = model.appendingPathComponent(name)
            try? FileManager.default.removeItem(at: file)
            XCTAssertEqual(mkfifo(file.path, 0o600), 0)
            assertError(try Checkpoint.load(from: model), FileError.self, equals: .notRegular(path: file.path, kind: "a FIFO"))
        }
        let archive = scratch.appendingPathComponent("fifo.h5")
        XCTAssertEqual(mkfifo(archive.path, 0o600), 0)
        assertError(try ModelLocation.load(archive.path), FileError.self, mentions: [archive.path, "is not a regular file"])
        // Missing files are still "no such file".
        assertError(try Plan.load(scratch.appendingPathComponent("absent.yaml")), FileError.self, mentions: ["no such file"])
    }

    // MARK: Hook globs and block lists

    /// Matching tried every split at every star: 8 stars ran past a minute, 12 would take hours.
    func testGlobWithManyStarsMatchesInLinearTime() {
        let name = String(repeating: "a", count: 60) + "b"
        let stars = String(repeating: "a*", count: 12)
        XCTAssertFalse(HookFilter.glob(stars + "c", name))
        XCTAssertTrue(HookFilter.glob(stars + "b", name))
        let filter = HookFilter([String(repeating: "*.", count: 12) + "hook_nothing"])
        XCTAssertFalse(filter.matches("blocks.11.attn.hook_pattern" + String(repeating: ".x", count: 40)))
    }

    func testGlobSemantics() {
        let cases: [(String, String, Bool)] = [
            ("*", "", true), ("", "", true), ("", "a", false), ("*", "blocks.0.hook_resid_pre", true),
            ("blocks.*.hook_resid_post", "blocks.11.hook_resid_post", true),
            ("blocks.*.hook_resid_post", "blocks.11.hook_resid_pre", false),
            ("blocks.*.attn.*", "blocks.9.attn.hook_pattern", true), ("blocks.*.attn.*", "blocks.9.hook_attn_out", false),
            ("*post", "blocks.1.hook_resid_post", true), ("hook_*", "hook_embed", true), ("hook_*", "ln_final.hook_scale", false),
            ("a*b*c", "abc", true), ("a*b*c", "aXbYbZc", true), ("a*b*c", "acb", false), ("**", "x", true), ("a**", "a", true),
        ]
        for (pattern, text, expected) in cases {
            XCTAssertEqual(HookFilter.glob(pattern, text), expected, "\(pattern) ~ \(text)")
        }
    }

    func testEmptyHookAndBlockListsAreErrors() {
        for list in ["", " ", ",", "blocks.*.hook_resid_post,", "a,,b"] {
            assertError(try HookFilter(list: list), HookFilterError.self, equals: .emptyPattern(list: list), mentions: ["--hooks", "empty"])
        }
        XCTAssertEqual(try HookFilter(list: " hook_embed , blocks.*.hook_resid_post").patterns, ["hook_embed", "blocks.*.hook_resid_post"])
        for list in ["", "  "] {
            assertError(try Plan.inline(blocks: list), PlanError.self, equals: .emptyBlockList(location: "--blocks"), mentions: ["--blocks", "empty"])
        }
        assertError(try Plan.inline(blocks: "0,,1"), PlanError.self, equals: .blockSyntax(location: "--blocks", entry: ""))
        XCTAssertEqual(try Plan.inline(blocks: "0-7,9.mlp").blocks.map(\.description), ["0-7", "9.mlp"])
    }
}
