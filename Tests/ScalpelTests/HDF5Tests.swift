import Foundation
import XCTest
@testable import Scalpel

final class HDF5Tests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("scalpel-hdf5-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func url(_ name: String) -> URL { folder.appendingPathComponent(name) }

    /// Values whose bits a lossy path would change: NaN payloads, -0, infinities, subnormals.
    private func awkwardTensor(_ shape: [Int]) -> Tensor {
        var generator = SystemRandomNumberGenerator()
        let special: [Float] = [Float(bitPattern: 0x7FC0_1234), Float(bitPattern: 0xFFA0_0001), -0.0, .infinity,
                                -.infinity, .leastNonzeroMagnitude, -.leastNormalMagnitude, .greatestFiniteMagnitude]
        return Tensor(shape: shape) { buffer in
            for i in buffer.indices {
                buffer[i] = i < special.count ? special[i] : Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &generator))
            }
        }
    }

    private func assertThrows<E: Error & Equatable>(_ expected: E, file: StaticString = #filePath, line: UInt = #line,
                                                    _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? E, expected, "\(error)", file: file, line: line)
        }
    }

    // MARK: Whole datasets

    func testTensorsRoundTripBitIdenticallyAtEveryRank() throws {
        let shapes: [[Int]] = [[], [1], [7], [3, 5], [2, 3, 4], [2, 1, 3, 2], [0], [0, 3], [4, 0]]
        let tensors = shapes.map(awkwardTensor)
        let path = url("tensors.h5")
        do {
            let file = try HDF5File.create(at: path)
            let root = try file.root
            for (i, t) in tensors.enumerated() {
                try root.writeTensor("plain/\(i)", t)
                try root.writeTensor("gzip/\(i)", t, gzip: 6)
            }
            try file.close()
        }
        let file = try HDF5File.open(path)
        let root = try file.root
        for (i, t) in tensors.enumerated() {
            for group in ["plain", "gzip"] {
                let read = try root.readTensor("\(group)/\(i)")
                XCTAssertTrue(read.isIdentical(to: t), "\(group)/\(i): \(read.shape) vs \(t.shape)")
                XCTAssertEqual(try root.dataset("\(group)/\(i)").elementType, .float32)
            }
        }
        XCTAssertNil(try root.dataset("plain/3").chunkShape)
        XCTAssertFalse(try root.dataset("plain/3").isCompressed)
        XCTAssertEqual(try root.dataset("gzip/3").chunkShape, [3, 5])
        XCTAssertTrue(try root.dataset("gzip/3").isCompressed)
        try file.close()
    }

    func testGzipChunksLargeTensorsByRows() throws {
        let t = awkwardTensor([1000, 768])  // 3 MB: chunks of about 1 MiB of whole rows
        let path = url("big.h5")
        let file = try HDF5File.create(at: path)
        let ds = try file.root.writeTensor("x", t, gzip: 1)
        XCTAssertEqual(try ds.chunkShape, [341, 768])
        try file.close()
        XCTAssertTrue(try HDF5File.open(path).root.readTensor("x").isIdentical(to: t))
    }

    func testNestedGroupsListingAndExistence() throws {
        let path = url("groups.h5")
        let file = try HDF5File.create(at: path)
        let root = try file.root
        let attn = try root.createGroup("blocks/3/attn")
        XCTAssertEqual(attn.path, "/blocks/3/attn")
        _ = try root.createGroup("blocks/3/mlp")
        _ = try root.createGroup("blocks/10")
        try attn.writeTensor("W_Q", Tensor(shape: [2, 2], data: [1, 2, 3, 4]))
        try root.writeTensor("blocks/3/mlp/W_in", Tensor(shape: [1], data: [5]))
        try file.close()

        let reopened = try HDF5File.open(path)
        let r = try reopened.root
        XCTAssertEqual(try r.childNames(), ["blocks"])
        XCTAssertEqual(try r.group("blocks").childNames(), ["10", "3"])
        XCTAssertEqual(try r.group("blocks/3").childNames(), ["attn", "mlp"])
        let block = try r.group("/blocks/3")
        XCTAssertEqual(try block.childNames(), ["attn", "mlp"])
        XCTAssertEqual(try block.group("attn").path, "/blocks/3/attn")
        XCTAssertEqual(try block.readTensor("attn/W_Q").scalars, [1, 2, 3, 4])
        XCTAssertEqual(try block.readTensor("/blocks/3/mlp/W_in").scalars, [5])
        XCTAssertTrue(r.exists("blocks/3/attn/W_Q"))
        XCTAssertTrue(r.exists("/blocks/10"))
        XCTAssertFalse(r.exists("blocks/4"))
        XCTAssertFalse(r.exists("blocks/4/attn"))
        XCTAssertFalse(r.exists("blocks/3/attn/W_Q/deeper"))
        XCTAssertEqual(try r.objectInfo("blocks/3").kind, .group)
        XCTAssertEqual(try r.objectInfo("blocks/3/attn/W_Q").kind, .dataset)
        XCTAssertEqual(try r.group("blocks/10").childNames(), [])
    }

    func testAttributesOfEveryKind() throws {
        let path = url("attributes.h5")
        let longText = String(repeating: "{\"name\": \"gpt2\", \"note\": \"ünïcödé ✓ 模型\"}\n", count: 5000)  // ~250 KB
        do {
            let file = try HDF5File.create(at: path)
            let root = try file.root
            try root.setAttribute("format", "scalpel-model")
            try root.setAttribute("config", longText)
            try root.setAttribute("empty", "")
            try root.setAttribute("version", 1)
            try root.setAttribute("negative", -42)
            try root.setAttribute("huge", Int.max)
            try root.setAttribute("eps", 1e-5)
            try root.setAttribute("shape", [12, 768, 3072])
            try root.setAttribute("none", [Int]())
            try root.setAttribute("replaced", "first")
            try root.setAttribute("replaced", 2)  // replacing may change the kind
            let group = try root.createGroup("blocks/0")
            try group.setAttribute("kind", "transformer block")
            let ds = try group.writeTensor("b", Tensor(zeros: [3]))
            try ds.setAttribute("note", "bias ✓")
            try file.close()
        }
        let file = try HDF5File.open(path)
        let root = try file.root
        XCTAssertEqual(try root.stringAttribute("format"), "scalpel-model")
        XCTAssertEqual(try root.stringAttribute("config"), longText)
        XCTAssertEqual(try root.stringAttribute("empty"), "")
        XCTAssertEqual(try root.intAttribute("version"), 1)
        XCTAssertEqual(try root.intAttribute("negative"), -42)
        XCTAssertEqual(try root.intAttribute("huge"), Int.max)
        XCTAssertEqual(try root.doubleAttribute("eps"), 1e-5)
        XCTAssertEqual(try root.doubleAttribute("version"), 1.0)
        XCTAssertEqual(try root.intArrayAttribute("shape"), [12, 768, 3072])
        XCTAssertEqual(try root.intArrayAttribute("none"), [])
        XCTAssertEqual(try root.intAttribute("replaced"), 2)
        XCTAssertEqual(try root.attributeNames(),
                       ["config", "empty", "eps", "format", "huge", "negative", "none", "replaced", "shape", "version"])
        XCTAssertTrue(root.hasAttribute("eps"))
        XCTAssertFalse(root.hasAttribute("nope"))
        XCTAssertEqual(try root.group("blocks/0").stringAttribute("kind"), "transformer block")
        XCTAssertEqual(try root.dataset("blocks/0/b").stringAttribute("note"), "bias ✓")

        assertThrows(HDF5Error.missing(file: path.path, object: "attribute \"nope\" of /")) {
            _ = try root.stringAttribute("nope")
        }
        assertThrows(HDF5Error.wrongKind(file: path.path, object: "attribute \"format\" of /",
                                         expected: "integers", found: "strings")) {
            _ = try root.intAttribute("format")
        }
        assertThrows(HDF5Error.wrongShape(file: path.path, object: "attribute \"shape\" of /",
                                          expected: "one value", found: "3 values")) {
            _ = try root.intAttribute("shape")
        }
    }

    func testStringAndInt32Datasets() throws {
        let path = url("strings.h5")
        let texts = ["Hello", "", "naïve café — 東京 🚀", "line\nbreak\ttab", String(repeating: "x", count: 10_000)]
        let tokens: [Int32] = [15496, 995, -1, 40, 1101, 257]
        do {
            let file = try HDF5File.create(at: path)
            let root = try file.root
            try root.writeStrings("texts", texts, dims: ["prompt"])
            try root.writeStrings("none", [])
            try root.writeInt32("tokens", tokens, shape: [2, 3], dims: ["prompt", "pos"], gzip: 4)
            XCTAssertThrowsError(try root.writeStrings("bad", ["a\u{0}b"])) { error in
                guard case HDF5Error.invalid = error else { return XCTFail("\(error)") }
            }
            XCTAssertFalse(root.exists("bad"))
            XCTAssertThrowsError(try root.writeInt32("short", [1, 2], shape: [3])) { error in
                guard case HDF5Error.wrongShape = error else { return XCTFail("\(error)") }
            }
            try file.close()
        }
        let root = try HDF5File.open(path).root
        XCTAssertEqual(try root.readStrings("texts"), texts)
        XCTAssertEqual(try root.readStrings("none"), [])
        XCTAssertEqual(try root.dataset("texts").elementType, .string)
        XCTAssertEqual(try root.dataset("texts").readStrings(rows: 2..<4), Array(texts[2..<4]))
        let read = try root.readInt32("tokens")
        XCTAssertEqual(read.values, tokens)
        XCTAssertEqual(read.shape, [2, 3])
        XCTAssertEqual(try root.dataset("tokens").elementType, .int32)
        XCTAssertEqual(try root.dataset("tokens").readInt32(rows: 1..<2).values, [40, 1101, 257])
        XCTAssertEqual(try root.dataset("tokens").dimensionLabels(), ["prompt", "pos"])
        XCTAssertEqual(try root.dataset("tokens").stringAttribute("dims"), "prompt,pos")
    }

    func testHardLinkSharesOneStoredObject() throws {
        let path = url("tied.h5")
        let embedding = awkwardTensor([50, 16])
        do {
            let file = try HDF5File.create(at: path)
            let root = try file.root
            try root.writeTensor("embed/W_E", embedding, dims: ["vocab", "d_model"])
            try root.linkHard(from: "embed/W_E", to: "unembed/W_U")  // creates the group unembed
            assertThrows(HDF5Error.alreadyExists(file: path.path, object: "/unembed/W_U")) {
                try root.linkHard(from: "embed/W_E", to: "unembed/W_U")
            }
            assertThrows(HDF5Error.missing(file: path.path, object: "/embed/nope")) {
                try root.linkHard(from: "embed/nope", to: "unembed/x")
            }
            try file.close()
        }
        let root = try HDF5File.open(path).root
        XCTAssertTrue(try root.readTensor("embed/W_E").isIdentical(to: embedding))
        XCTAssertTrue(try root.readTensor("unembed/W_U").isIdentical(to: embedding))
        let a = try root.objectInfo("embed/W_E"), b = try root.objectInfo("unembed/W_U")
        XCTAssertEqual(a.address, b.address)
        XCTAssertEqual(a.linkCount, 2)
        XCTAssertEqual(b, a)
        XCTAssertEqual(try root.dataset("unembed/W_U").stringAttribute("dims"), "vocab,d_model")
        XCTAssertEqual(try root.objectInfo("embed").linkCount, 1)
    }

    // MARK: Appending

    func testAppendableDatasetsGrowOnePromptPerChunk() throws {
        let path = url("activations.h5")
        let batches = [awkwardTensor([2, 4, 3]), awkwardTensor([3, 4, 3]), awkwardTensor([1, 4, 3])]
        let prompts = ["first", "zweite Zeile ü", "третий", "四", "🚀 five", "six"]
        let tokens: [Int32] = (0..<24).map { $0 % 5 == 4 ? -1 : $0 }

        try OutputTarget(path, overwrite: false).write { temporary in
            let file = try HDF5File.create(at: temporary, overwrite: true)  // the empty temporary file exists
            let root = try file.root
            let resid = try root.createAppendable("blocks.0.hook_resid_post", .float32, rowShape: [4, 3],
                                                  dims: ["prompt", "pos", "d_model"], gzip: 4)
            let toks = try root.createAppendable("tokens", .int32, rowShape: [4], dims: ["prompt", "pos"])
            let texts = try root.createAppendable("prompts", .string, dims: ["prompt"], chunkRows: 2)
            XCTAssertEqual(try resid.shape, [0, 4, 3])
            XCTAssertTrue(try resid.isAppendable)
            var written = 0
            for batch in batches {
                let n = batch.shape[0]
                try resid.append(batch)
                try toks.append(int32: Array(tokens[(written * 4)..<((written + n) * 4)]))
                try texts.append(strings: Array(prompts[written..<(written + n)]))
                written += n
                XCTAssertEqual(try resid.shape, [written, 4, 3])
            }
            try resid.append(Tensor(zeros: [0, 4, 3]))  // an empty batch changes nothing
            XCTAssertEqual(try resid.shape, [6, 4, 3])

            assertThrows(HDF5Error.wrongShape(file: temporary.path, object: "/blocks.0.hook_resid_post",
                                              expected: "rows of shape [4, 3]", found: "rows of shape [4, 2]")) {
                try resid.append(Tensor(zeros: [1, 4, 2]))
            }
            assertThrows(HDF5Error.wrongShape(file: temporary.path, object: "/tokens",
                                              expected: "whole rows of 4 values", found: "3 values")) {
                try toks.append(int32: [1, 2, 3])
            }
            assertThrows(HDF5Error.wrongKind(file: temporary.path, object: "/tokens",
                                             expected: "strings", found: "int32 numbers")) {
                try toks.append(strings: ["x"])
            }
            let fixed = try root.writeTensor("fixed", Tensor(zeros: [2]))
            assertThrows(HDF5Error.wrongKind(file: temporary.path, object: "/fixed",
                                             expected: "an appendable dataset (made by createAppendable)",
                                             found: "a fixed-size dataset")) {
                try fixed.append(Tensor(zeros: [1]))
            }
            XCTAssertEqual(try resid.shape, [6, 4, 3])
            try file.close()
        }

        let file = try HDF5File.open(path)
        let root = try file.root
        let resid = try root.dataset("blocks.0.hook_resid_post")
        XCTAssertEqual(try resid.shape, [6, 4, 3])
        XCTAssertEqual(try resid.chunkShape, [1, 4, 3])
        XCTAssertTrue(try resid.isCompressed)
        XCTAssertEqual(try resid.dimensionLabels(), ["prompt", "pos", "d_model"])
        XCTAssertEqual(try resid.stringAttribute("dims"), "prompt,pos,d_model")
        let all = try resid.readTensor()
        let expected = batches.flatMap { $0.scalars }
        XCTAssertEqual(all.scalars.map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertTrue(try resid.readTensor(rows: 2..<5).isIdentical(to: batches[1]))
        XCTAssertEqual(try resid.readTensor(rows: 3..<3).shape, [0, 4, 3])
        assertThrows(HDF5Error.wrongShape(file: path.path, object: "/blocks.0.hook_resid_post",
                                          expected: "rows 5..<7", found: "6 rows")) {
            _ = try resid.readTensor(rows: 5..<7)
        }

        let toks = try root.dataset("tokens")
        XCTAssertEqual(try toks.readInt32().values, tokens)
        XCTAssertEqual(try toks.readInt32().shape, [6, 4])
        XCTAssertEqual(try toks.chunkShape, [1, 4])
        XCTAssertFalse(try toks.isCompressed)
        XCTAssertEqual(try toks.dimensionLabels(), ["prompt", "pos"])

        let texts = try root.dataset("prompts")
        XCTAssertEqual(try texts.readStrings(), prompts)
        XCTAssertEqual(try texts.chunkShape, [2])
        XCTAssertEqual(try texts.dimensionLabels(), ["prompt"])
        XCTAssertEqual(try texts.stringAttribute("dims"), "prompt")
        try file.close()

        // Reopened for writing, an appendable dataset keeps growing.
        let again = try HDF5File.open(path, writable: true)
        try again.root.dataset("prompts").append(strings: ["seven"])
        try again.close()
        XCTAssertEqual(try HDF5File.open(path).root.readStrings("prompts"), prompts + ["seven"])
    }

    func testCreateAppendableRejectsBadArguments() throws {
        let path = url("bad.h5")
        let root = try HDF5File.create(at: path).root
        XCTAssertThrowsError(try root.createAppendable("a", .float32, rowShape: [4], dims: ["prompt"])) { error in
            XCTAssertEqual(error as? HDF5Error, .wrongShape(file: path.path, object: "/a", expected: "2 dimension labels",
                                                            found: "1 (prompt)"))
        }
        XCTAssertThrowsError(try root.createAppendable("b", .float32, rowShape: [4], dims: ["prompt", "p,os"]))
        XCTAssertThrowsError(try root.createAppendable("c", .float32, rowShape: [0]))
        XCTAssertThrowsError(try root.createAppendable("d", .float32, gzip: 10))
        XCTAssertThrowsError(try root.createAppendable("e", .float32, chunkRows: 0))
        XCTAssertThrowsError(try root.createAppendable("f", .string, rowShape: [2]))
        XCTAssertEqual(try root.childNames(), [])
    }

    // MARK: Failures

    func testGarbageEmptyAndTruncatedFilesFailClearly() throws {
        let garbage = url("garbage.h5")
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: garbage)
        XCTAssertThrowsError(try HDF5File.open(garbage)) { error in
            guard case let HDF5Error.notHDF5(file, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, garbage.path)
            XCTAssertTrue((error as! HDF5Error).message.contains(garbage.path))
        }

        let empty = url("empty.h5")
        try Data().write(to: empty)
        XCTAssertThrowsError(try HDF5File.open(empty)) { error in
            guard case HDF5Error.notHDF5 = error else { return XCTFail("\(error)") }
        }

        let whole = url("whole.h5")
        let file = try HDF5File.create(at: whole)
        try file.root.writeTensor("x", awkwardTensor([256, 64]))
        try file.root.setAttribute("note", "a file to cut short")
        try file.close()
        let bytes = try Data(contentsOf: whole)
        for keep in [bytes.count / 2, bytes.count - 1, 600, 100] {
            let truncated = url("truncated-\(keep).h5")
            try bytes.prefix(keep).write(to: truncated)
            XCTAssertThrowsError(try HDF5File.open(truncated), "kept \(keep) bytes") { error in
                guard case HDF5Error.notHDF5 = error else { return XCTFail("\(error)") }
            }
        }

        XCTAssertThrowsError(try HDF5File.open(url("missing.h5"))) { error in
            guard case FileError.missing = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try HDF5File.open(folder)) { error in
            guard case FileError.notRegular(_, "a folder") = error else { return XCTFail("\(error)") }
        }
    }

    func testErrorsNameTheFileAndObject() throws {
        let path = url("errors.h5")
        let file = try HDF5File.create(at: path)
        let root = try file.root
        try root.writeStrings("texts", ["a"])
        let group = try root.createGroup("g")
        let p = path.path

        assertThrows(HDF5Error.missing(file: p, object: "/nope")) { _ = try root.readTensor("nope") }
        assertThrows(HDF5Error.missing(file: p, object: "/g/nope")) { _ = try group.dataset("nope") }
        assertThrows(HDF5Error.alreadyExists(file: p, object: "/texts")) { try root.writeStrings("texts", ["b"]) }
        assertThrows(HDF5Error.alreadyExists(file: p, object: "/g")) { _ = try root.createGroup("g") }
        assertThrows(HDF5Error.wrongKind(file: p, object: "/texts", expected: "float numbers", found: "strings")) {
            _ = try root.readTensor("texts")
        }
        assertThrows(HDF5Error.wrongKind(file: p, object: "/g", expected: "a dataset", found: "a group")) {
            _ = try root.dataset("g")
        }
        assertThrows(HDF5Error.wrongKind(file: p, object: "/texts", expected: "a group", found: "a dataset")) {
            _ = try root.group("texts")
        }
        assertThrows(FileError.exists(path: p)) { _ = try HDF5File.create(at: path) }

        try file.close()
        try file.close()  // a second close does nothing
        assertThrows(HDF5Error.closed(file: p, object: "/g/x")) { try group.writeTensor("x", Tensor(zeros: [1])) }
        assertThrows(HDF5Error.closed(file: p, object: "/")) { _ = try file.root }
        XCTAssertFalse(group.exists("x"))

        // A read-only file refuses writes with HDF5's reason.
        let readOnly = try HDF5File.open(path)
        XCTAssertThrowsError(try readOnly.root.writeTensor("y", Tensor(zeros: [1]))) { error in
            guard case let HDF5Error.failed(file, object, operation, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, p)
            XCTAssertEqual(object, "/y")
            XCTAssertEqual(operation, "creating the dataset")
            XCTAssertFalse(reason.isEmpty)
        }
        // A file open here cannot be opened for writing or overwritten meanwhile.
        XCTAssertThrowsError(try HDF5File.open(path, writable: true)) { error in
            guard case HDF5Error.inUse(p, _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try HDF5File.create(at: path, overwrite: true)) { error in
            guard case HDF5Error.inUse(p, _) = error else { return XCTFail("\(error)") }
        }
        // Overwriting is explicit.
        try readOnly.close()
        let replaced = try HDF5File.create(at: path, overwrite: true)
        XCTAssertEqual(try replaced.root.childNames(), [])
    }
}
