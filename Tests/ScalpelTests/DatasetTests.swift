import XCTest
@testable import Scalpel

final class DatasetTests: XCTestCase {
    func testStudyFamiliesMatchTheIssue() {
        let digits = StudyDatasets.digits.items
        XCTAssertEqual(digits.first, PromptItem(prompt: "1 2 3 4", answer: " 5", corruptedPrompt: "1 2 3 3", corruptedAnswer: " 4"))
        XCTAssertEqual(digits.last?.prompt, "20 21 22 23")
        XCTAssertEqual(digits.last?.answer, " 24")
        XCTAssertEqual(StudyDatasets.numberWords.items.map(\.answer!), [" five", " six", " seven", " eight", " nine", " ten"])
        XCTAssertEqual(StudyDatasets.months.items.last?.prompt, "August September October November")
        XCTAssertEqual(StudyDatasets.months.items.last?.answer, " December")
        XCTAssertEqual(StudyDatasets.days.items.first?.answer, " Thursday")
        XCTAssertEqual(StudyDatasets.letters.items.map(\.prompt), ["a b c d", "b c d e", "c d e f", "f g h i", "h i j k", "i j k l", "j k l m"])
        XCTAssertEqual(StudyDatasets.namesIsDigit.items[0].prompt, "Adam is 1. Bob is 2. Claire is 3. Don is 4. Eve is")
        XCTAssertEqual(StudyDatasets.namesIsDigit.items[0].corruptedPrompt, "Adam is 1. Bob is 2. Claire is 3. Don is 3. Eve is")
        XCTAssertEqual(StudyDatasets.wordIsDigit.items[0].prompt, "One is 1. Two is 2. Three is 3. Four is 4. Five is")
        XCTAssertTrue(StudyDatasets.wordIsDigit.items.contains { $0.prompt == "one is 1. two is 2. three is 3. four is 4. five is" })
    }

    func write(_ text: String, _ name: String) throws -> URL {
        let url = TestFiles.temporaryFolder().appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func testUserFamiliesFromYAMLJSONAndJSONLines() throws {
        let yaml = try write("name: planets\ndescription: inner planets\nitems:\n  - {prompt: \"Mercury Venus Earth\", answer: \" Mars\"}\n", "planets.yaml")
        XCTAssertEqual(try DatasetFiles.resolve(yaml.path).items, [PromptItem(prompt: "Mercury Venus Earth", answer: " Mars")])
        let json = try write(#"[{"name": "a", "items": [{"prompt": "x"}]}, {"name": "b", "items": [{"prompt": "y", "answer": " z"}]}]"#, "two.json")
        XCTAssertEqual(try DatasetFiles.load(json).map(\.name), ["a", "b"])
        let lines = try write("{\"prompt\": \"1 2 3\", \"answer\": \" 4\"}\n{\"prompt\": 5}\n", "p.jsonl")
        XCTAssertThrowsError(try DatasetFiles.load(lines)) { XCTAssertEqual($0 as? DatasetError, .malformed(path: lines.path, line: 2, reason: "field \"prompt\" must be a string")) }
        let missing = try write("name: x\nitems:\n  - {answer: \" 4\"}\n", "missing.yaml")
        XCTAssertThrowsError(try DatasetFiles.load(missing)) { XCTAssertTrue("\($0)".contains("items[0].prompt"), "\($0)") }
        XCTAssertThrowsError(try DatasetFiles.resolve("monthz")) { XCTAssertTrue("\($0)".contains("months"), "\($0)") }
    }

    func testTextPromptFiles() throws {
        let url = try write("# study prompts\n1 2 3 4\t 5\n\none two three\n", "p.txt")
        XCTAssertEqual(try DatasetFiles.load(url)[0].items, [PromptItem(prompt: "1 2 3 4", answer: " 5"), PromptItem(prompt: "one two three")])
        let bad = try write("ok\n\tno prompt\n", "bad.txt")
        XCTAssertThrowsError(try DatasetFiles.load(bad)) { XCTAssertTrue("\($0)".hasPrefix("\(bad.path):2:"), "\($0)") }
    }
}
