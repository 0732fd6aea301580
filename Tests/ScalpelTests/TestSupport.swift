import Foundation
import XCTest
@testable import Scalpel

/// Locations of committed fixtures and of the shared GPT-2 tokenizer files.
enum TestFiles {
    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }
    static func model(_ name: String) -> URL { fixtures.appendingPathComponent("models/\(name)") }
    static func reference(_ name: String) -> URL { fixtures.appendingPathComponent("reference/\(name)") }

    /// The package root, found from this file's path.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `../shared/gpt2` next to the package: present in CI, absent in a user's own clone.
    static func sharedGPT2() throws -> URL {
        let url = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/gpt2")
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("vocab.json").path) else {
            throw XCTSkip("\(url.path) not found: the real GPT-2 vocabulary is needed for this test; it is present in CI")
        }
        return url
    }

    static func temporaryFolder() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scalpel-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A fixture model's reference outputs from PyTorch (tools/make_fixtures.py).
struct Reference {
    let prompts: [[Int]]
    let lensPrompts: [Int]
    let tensors: SafetensorsFile
    /// References of the hooks added after the first fixtures (`<name>.added.safetensors`).
    let added: SafetensorsFile

    init(_ name: String) throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: TestFiles.reference("\(name).json"))) as! [String: Any]
        prompts = json["prompts"] as! [[Int]]
        lensPrompts = json["lens_prompts"] as? [Int] ?? []
        tensors = try SafetensorsFile(url: TestFiles.reference("\(name).safetensors"))
        added = try SafetensorsFile(url: TestFiles.reference("\(name).added.safetensors"))
    }

    func tensor(_ hook: String, _ prompt: Int) throws -> Tensor? {
        let key = "\(hook)/\(prompt)"
        for file in [tensors, added] where file.entries[key] != nil { return try file.tensor(key) }
        return nil
    }
}

/// |actual − expected| ≤ tolerance × max(1, range of expected), elementwise; −inf must match −inf.
func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float = 1e-4, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "\(what): shape", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    let finite = expected.buffer.filter { $0.isFinite }
    let range = (finite.max() ?? 0) - (finite.min() ?? 0)
    let bound = tolerance * max(1, range)
    var worst: Float = 0, worstIndex = 0
    for i in 0..<expected.count {
        let e = expected[flat: i], a = actual[flat: i]
        if !e.isFinite {
            if a != e { XCTFail("\(what)[\(i)]: expected \(e), got \(a)", file: file, line: line); return }
            continue
        }
        let delta = abs(a - e)
        if !(delta <= worst) { worst = delta; worstIndex = i }
    }
    if ProcessInfo.processInfo.environment["SCALPEL_PRINT_WORST"] != nil { print("WORST \(what) \(worst) \(worst / max(1, range))") }
    XCTAssertLessThanOrEqual(worst, bound, "\(what): max |Δ| \(worst) at \(worstIndex) exceeds \(bound)", file: file, line: line)
}

func argmax(_ row: ArraySlice<Float>) -> Int { row.indices.max { row[$0] < row[$1] }! - row.startIndex }

/// A test case with a fresh scratch folder per test, removed afterwards (with any damaged fixture copies).
class ScratchTestCase: XCTestCase {
    var scratch: URL!

    override func setUp() {
        super.setUp()
        scratch = TestFiles.temporaryFolder()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: scratch)
        super.tearDown()
    }

    override class func tearDown() {
        BadInputFiles.removeAll()
        super.tearDown()
    }
}
