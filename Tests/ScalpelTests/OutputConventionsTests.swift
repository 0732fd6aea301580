import XCTest
@testable import Scalpel

/// DESIGN.md "Output conventions" through the binary: the version, `inspect --format json`, only the
/// `--format` values a command honours, `--top-k` in the dataset table, lens rows named by source block.
final class OutputConventionsTests: CLITestCase {
    func testVersionIsTheOneFilesRecord() throws {
        let result = try scalpel(["--version"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), ScalpelVersion.string)
    }

    func testInspectJSONHasOneObjectPerBlockWithItsSource() throws {
        let result = try scalpel(["inspect", "--blocks", "0-3,5", "--format", "json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["model", "config", "parameters", "tied_embeddings", "tokenizer", "blocks", "non_finite"])
        let config = try XCTUnwrap(json["config"] as? [String: Any])
        XCTAssertEqual(Set(config.keys), ["n_layer", "n_embd", "n_head", "n_inner", "n_positions", "vocab_size",
                                          "layer_norm_epsilon", "bos_token_id"])
        XCTAssertEqual(config["n_layer"] as? Int, 5)
        let model = try ModelLocation.load(nil)
        XCTAssertGreaterThan(json["parameters"] as? Int ?? 0, 0)
        XCTAssertEqual(json["tokenizer"] as? Bool, true)
        let blocks = try XCTUnwrap(json["blocks"] as? [[String: Any]])
        XCTAssertEqual(blocks.map { $0["source"] as? String }, ["bundled:L0", "bundled:L1", "bundled:L2", "bundled:L3", "bundled:L5"])
        XCTAssertEqual(blocks.map { $0["index"] as? Int }, [0, 1, 2, 3, 4])
        XCTAssertEqual(Set(blocks[0].keys), ["index", "source", "parts", "n_heads", "ablated_heads", "ablated_neurons"])
        XCTAssertEqual(blocks[4]["parts"] as? String, "attn,mlp")
        XCTAssertEqual(blocks[4]["n_heads"] as? Int, model.config.nHead)

        let half = try scalpel(["inspect", "--blocks", "0,1.mlp.noln", "--format", "json"])
        let halfBlocks = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(half.stdout.utf8)) as? [String: Any])?["blocks"] as? [[String: Any]])
        XCTAssertEqual(halfBlocks[1]["parts"] as? String, "mlp.noln")
        XCTAssertTrue(halfBlocks[1]["n_heads"] is NSNull)
    }

    func testFormatOffersOnlyWhatEachCommandHonours() throws {
        try expectBadInput(["datasets", "--format", "csv"], mentions: ["'csv'", "'table' and 'json'"])
        try expectBadInput(["bench", "--format", "csv"], mentions: ["'csv'", "'table' and 'json'"])
        try expectBadInput(["inspect", "--format", "csv"], mentions: ["'csv'"])
        try expectBadInput(["paths", "add-vector", "blocks.0.hook_mlp_out", "--vector-prompt", "1 2 3", "--prompt", "1 2 3",
                            "--expect", " 4", "--layer", "0", "--format", "csv"], mentions: ["'csv'", "'table' and 'json'"])
        // The commands that print rows do print CSV.
        for args in [["run", "--prompt", "1 2 3 4"], ["run", "--dataset", "digits"], ["tokenize", "1 2"], ["lens", "--prompt", "1 2 3"]] {
            let result = try scalpel(args + ["--format", "csv"])
            XCTAssertEqual(result.status, 0, "\(args): \(result.stderr)")
            XCTAssertTrue(result.stdout.split(separator: "\n").first?.contains(",") ?? false, "\(args): \(result.stdout)")
        }
    }

    /// Each command that prints rows: the keys of every JSON record are the CSV header's columns, in
    /// the same set (JSON keys are sorted, CSV columns in reading order), and one prompt has the
    /// shape of a dataset.
    func testJSONRecordKeysAreTheCSVColumns() throws {
        let commands: [[String]] = [
            ["run", "--prompt", "1 2 3 4", "--answer", " 5"], ["run", "--dataset", "months", "--top-k", "3"],
            ["tokenize", "1 2 3"], ["lens", "--prompt", "1 2 3", "--target", " 4", "--positions", "all"],
            ["lens", "--dataset", "months", "--top-k", "2"], ["paths", "--direction", "next", "--family", "digits", "--alphas", "0:1:0.5"],
        ]
        var shapes: [String: Set<String>] = [:]
        for args in commands {
            let csv = try scalpel(args + ["--format", "csv"]), json = try scalpel(args + ["--format", "json"])
            XCTAssertEqual(csv.status, 0, "\(args): \(csv.stderr)")
            XCTAssertEqual(json.status, 0, "\(args): \(json.stderr)")
            let rows = Self.csvRows(csv.stdout)
            let header = try XCTUnwrap(rows.first)
            XCTAssertEqual(header.count, Set(header).count, "\(args): \(header)")
            let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(args)")
            let records = try XCTUnwrap(document["records"] as? [[String: Any]], "\(args)")
            XCTAssertFalse(records.isEmpty, "\(args)")
            for record in records { XCTAssertEqual(Set(record.keys), Set(header), "\(args)") }
            XCTAssertEqual(rows.count, records.count + 1, "\(args): one CSV line per record")
            for row in rows { XCTAssertEqual(row.count, header.count, "\(args): \(row)") }
            XCTAssertEqual(document["non_finite"] as? Int, 0, "\(args)")
            let shape = Set(document.keys)
            if let earlier = shapes[args[0]] { XCTAssertEqual(shape, earlier, "\(args): one JSON shape per command") }
            shapes[args[0]] = shape
            for key in shape { XCTAssertTrue(Self.isSnakeCase(key), "\(args): \(key)") }
        }
        XCTAssertEqual(shapes["run"], ["dataset", "records", "prompts", "accuracy", "correct", "mean_logit_diff", "non_finite"])
        XCTAssertEqual(shapes["lens"], ["model", "normalization", "prompts", "records", "summary", "non_finite"])

        // The lens summary has the columns the table prints, every key present.
        let lens = try scalpel(["lens", "--dataset", "months", "--format", "json"])
        let summary = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(lens.stdout.utf8)) as? [String: Any])?["summary"] as? [[String: Any]])
        XCTAssertEqual(Set(summary[0].keys), ["row", "row_label", "mean_target_prob", "mean_target_rank", "target_top1", "mean_logit_diff"])
    }

    /// Commands that print JSON only: every key at every depth is snake_case.
    func testJSONOnlyCommandsUseSnakeCaseKeys() throws {
        for args in [["inspect"], ["datasets"], ["datasets", "months"],
                     ["bench", "--runs", "1", "--batch-runs", "1", "--batch", "2", "--tokens", "4", "--attribution", "digits"]] {
            let result = try scalpel(args + ["--format", "json"])
            XCTAssertEqual(result.status, 0, "\(args): \(result.stderr)")
            var keys: [String] = []
            func collect(_ value: Any) {
                if let object = value as? [String: Any] { keys += object.keys; object.values.forEach(collect) }
                if let array = value as? [Any] { array.forEach(collect) }
            }
            collect(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)))
            XCTAssertFalse(keys.isEmpty, "\(args)")
            for key in keys { XCTAssertTrue(Self.isSnakeCase(key), "\(args): \(key)") }
        }
        // Every dataset item has every key, null where a file gave none.
        try "a b c\nd e\t f\n".write(to: scratch.appendingPathComponent("p.txt"), atomically: true, encoding: .utf8)
        let listed = try scalpel(["datasets", "p.txt", "--format", "json"])
        let items = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]])
        for item in items { XCTAssertEqual(Set(item.keys), ["prompt", "answer", "corrupted_prompt", "corrupted_answer"]) }
        XCTAssertTrue(items[0]["answer"] is NSNull)
    }

    /// RFC 4180 rows: quoted fields may hold commas, quotes ("") and line breaks.
    static func csvRows(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = "", quoted = false
        var characters = Array(text)[...]
        while let c = characters.popFirst() {
            if quoted {
                if c == "\"" {
                    if characters.first == "\"" { field.append("\""); characters.removeFirst() } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" { quoted = true
            } else if c == "," { row.append(field); field = ""
            } else if c == "\n" { row.append(field); rows.append(row); row = []; field = ""
            } else { field.append(c) }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }

    static func isSnakeCase(_ key: String) -> Bool {
        !key.isEmpty && key.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }
    }

    /// ArgumentParser's usage errors and Scalpel's own start with the same prefix; `--no-bos` exists
    /// only where prompts are encoded.
    func testOneErrorPrefixAndNoBOSOnlyWhereItMeansSomething() throws {
        let usage = try scalpel(["run", "--top-k"])
        XCTAssertEqual(usage.status, 1)
        XCTAssertTrue(usage.stderr.hasPrefix("error: "), usage.stderr)
        let own = try scalpel(["run", "--prompt", "1 2", "--answer", " 5 6 7"])
        XCTAssertEqual(own.status, 1)
        XCTAssertTrue(own.stderr.hasPrefix("error: "), own.stderr)
        for command in ["inspect", "bench", "paths"] {
            let result = try scalpel([command, "--no-bos"])
            XCTAssertEqual(result.status, 1, command)
            XCTAssertTrue(result.stderr.hasPrefix("error: Unknown option '--no-bos'"), "\(command): \(result.stderr)")
        }
        let tokens = try scalpel(["tokenize", "1 2", "--no-bos", "--format", "json"])
        XCTAssertEqual(tokens.status, 0, tokens.stderr)
        XCTAssertFalse(tokens.stdout.contains("<|endoftext|>"), tokens.stdout)
    }

    func testDatasetTableShowsTopK() throws {
        let json = try scalpel(["run", "--dataset", "months", "--top-k", "8", "--format", "json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let items = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["records"] as? [[String: Any]])
        let top = try XCTUnwrap(items.first?["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 8)
        let eighth = "|" + (top[7]["token"] as? String ?? "?").replacingOccurrences(of: "\n", with: "\\n") + "|"
        let table = try scalpel(["run", "--dataset", "months", "--top-k", "8"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("top-8"), table.stdout)
        let row = try XCTUnwrap(table.stdout.split(separator: "\n").first { $0.hasPrefix("January February March April") })
        XCTAssertTrue(row.hasSuffix(eighth), "\(row) should end with the 8th token \(eighth)")
    }

    /// `init` without `--tokenizer` writes GPT-2's own tokenizer files (shipped with Scalpel), so the
    /// checkpoint reads text with GPT-2's ids. distilgpt2 is the smallest preset (6 blocks, 330 MB).
    func testInitWritesGPT2sTokenizerByDefault() throws {
        let made = try scalpel(["init", "--config", "distilgpt2", "-o", "ckpt"])
        XCTAssertEqual(made.status, 0, made.stderr)
        for name in ["vocab.json", "merges.txt"] {
            XCTAssertEqual(try Data(contentsOf: scratch.appendingPathComponent("ckpt/\(name)")),
                           try Data(contentsOf: ModelLocation.gpt2TokenizerURL.appendingPathComponent(name)), name)
        }
        let result = try scalpel(["run", "--model", "ckpt", "--prompt", "The Eiffel Tower is in the city of", "--answer", " Paris",
                                  "--top-k", "3", "--format", "json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let record = try XCTUnwrap((json["records"] as? [[String: Any]])?.first)
        XCTAssertEqual(record["tokens"] as? [Int], [50256, 464, 412, 733, 417, 8765, 318, 287, 262, 1748, 286])
        XCTAssertEqual(record["answer_id"] as? Int, 6342)
    }

    func testLensRowsOfASlicedModelNameTheirSourceBlock() throws {
        let result = try scalpel(["lens", "--blocks", "0-3,5", "--prompt", "1 2 3 4", "--target", " 5"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("L5 pre"), result.stdout)
        XCTAssertFalse(result.stdout.contains("L4 pre"), result.stdout)
        XCTAssertTrue(result.stdout.contains("final"), result.stdout)
    }
}
