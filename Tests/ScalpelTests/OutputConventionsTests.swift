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
        try expectBadInput(["paths", "--add-vector", "blocks.0.hook_mlp_out", "--vector-prompt", "1 2 3", "--prompt", "1 2 3",
                            "--expect", " 4", "--layer", "0", "--format", "csv"], mentions: ["--add-vector", "csv"])
        // The commands that print rows do print CSV.
        for args in [["run", "--prompt", "1 2 3 4"], ["run", "--dataset", "digits"], ["tokenize", "1 2"], ["lens", "--prompt", "1 2 3"]] {
            let result = try scalpel(args + ["--format", "csv"])
            XCTAssertEqual(result.status, 0, "\(args): \(result.stderr)")
            XCTAssertTrue(result.stdout.split(separator: "\n").first?.contains(",") ?? false, "\(args): \(result.stdout)")
        }
    }

    func testDatasetTableShowsTopK() throws {
        let json = try scalpel(["run", "--dataset", "months", "--top-k", "8", "--format", "json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let items = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]])
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
        XCTAssertEqual(json["tokens"] as? [Int], [50256, 464, 412, 733, 417, 8765, 318, 287, 262, 1748, 286])
        XCTAssertEqual((json["answer"] as? [String: Any])?["id"] as? Int, 6342)
    }

    func testLensRowsOfASlicedModelNameTheirSourceBlock() throws {
        let result = try scalpel(["lens", "--blocks", "0-3,5", "--prompt", "1 2 3 4", "--target", " 5"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("L5 pre"), result.stdout)
        XCTAssertFalse(result.stdout.contains("L4 pre"), result.stdout)
        XCTAssertTrue(result.stdout.contains("final"), result.stdout)
    }
}
