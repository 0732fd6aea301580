import XCTest
@testable import Scalpel

/// The bundled model run by Scalpel (not PyTorch) reproduces what tools/train_sequence_model.py
/// measured with PyTorch: the model card's accuracy per family on the held-out prompts, and the
/// saved logits.
final class BundledModelTests: XCTestCase {
    struct HeldOut: Decodable {
        struct Family: Decodable { var name: String; var correct: Int; var total: Int }
        struct Item: Decodable {
            var family: String, prompt: String, answer: String
            var token_ids: [Int]
            var answer_id: Int
            var correct: Bool
        }
        var families: [Family]
        var prompts: [Item]
    }

    let folder = ModelLocation.bundledModelURL

    func heldOut() throws -> HeldOut {
        try JSONDecoder().decode(HeldOut.self, from: Data(contentsOf: folder.appendingPathComponent("heldout.json")))
    }

    func testHeldOutAccuracyPerFamilyMatchesTheModelCard() throws {
        let model = try ModelLocation.load(nil)
        let heldOut = try heldOut()
        // Scalpel's tokenizer gives the ids the training script used, BOS included.
        let tokens = try heldOut.prompts.map { try model.encode(prompt: $0.prompt) }
        XCTAssertEqual(tokens, heldOut.prompts.map(\.token_ids))
        XCTAssertEqual(try heldOut.prompts.map { try model.answerID($0.answer) }, heldOut.prompts.map(\.answer_id))
        let logits = try model.run(tokens).logits
        var correct: [String: Int] = [:]
        for (item, row) in zip(heldOut.prompts, logits) {
            let top = row.buffer.withMemoryRebound(to: Float.self) { Softmax.topIndices($0, k: 1)[0] }
            XCTAssertEqual(top == item.answer_id, item.correct, "\(item.family): \(item.prompt)")
            correct[item.family, default: 0] += top == item.answer_id ? 1 : 0
        }
        for family in heldOut.families {
            XCTAssertEqual(correct[family.name, default: 0], family.correct, "\(family.name): \(family.correct)/\(family.total) in the model card")
        }
        // The card's table states the same numbers.
        let card = try String(contentsOf: folder.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)
        let rows = card.split(separator: "\n").filter { $0.hasPrefix("| ") }
        for family in heldOut.families {
            let row = rows.last { $0.hasPrefix("| \(family.name) |") }  // the accuracy table follows the corpus table
            XCTAssertNotNil(row, "MODEL_CARD.md has a row for \(family.name)")
            XCTAssertTrue(row?.contains("| \(family.total) | \(family.correct) |") ?? false,
                          "MODEL_CARD.md quotes \(family.name) as \(family.correct) of \(family.total): \(row ?? "")")
        }
    }

    func testLogitsEqualPyTorch() throws {
        let model = try ModelLocation.load(nil)
        let reference = try SafetensorsFile(url: folder.appendingPathComponent("reference_logits.safetensors"))
        let expected = try reference.tensor("logits")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("heldout.json"))) as! [String: Any]
        let prompts = try XCTUnwrap((json["reference_logits"] as? [String: Any])?["prompts"] as? [[String: Any]])
        let ids = prompts.map { $0["token_ids"] as! [Int] }
        XCTAssertEqual(ids.count, expected.shape[0])
        let logits = try model.run(ids).logits
        for (p, row) in logits.enumerated() {
            assertClose(row.reshaped([model.vocabSize]), expected.rows(p..<(p + 1)).reshaped([model.vocabSize]), "reference prompt \(p)")
        }
    }
}
