import XCTest
@testable import Scalpel

/// DESIGN.md "Output safety": no output path, however hostile, deletes or replaces anything but a
/// regular file (or a folder Scalpel wrote) the user asked for with --force; interruption, a
/// file-size limit or a failure leave no temporary file and the old output intact.
///
/// Every command runs in `scratch/work`, so that `-o ..` names the scratch folder, never a real one;
/// sentinel files in both folders must survive every case.
final class OutputSafetyTests: CLITestCase {
    var work: URL { scratch.appendingPathComponent("work") }
    var sentinels: [URL] { [scratch.appendingPathComponent("sentinel"), work.appendingPathComponent("keep.txt"),
                            work.appendingPathComponent("folder/inside.txt")] }

    override func setUp() {
        super.setUp()
        try! FileManager.default.createDirectory(at: work.appendingPathComponent("folder"), withIntermediateDirectories: true)
        for url in sentinels { try! Data("precious \(url.lastPathComponent)".utf8).write(to: url) }
    }

    func inWork(_ args: [String], prefix: String = "") throws -> Result {
        try scalpel(args, shellPrefix: "cd work && \(prefix)")
    }

    func assertSentinelsIntact(_ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for url in sentinels {
            XCTAssertEqual(try? Data(contentsOf: url), Data("precious \(url.lastPathComponent)".utf8), "\(what): \(url.path)", file: file, line: line)
        }
    }

    func temporaries() -> [String] {
        [scratch, work].flatMap { folder in
            ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.contains(".partial-") }
        }
    }

    /// Every writing command, with `PATH` where its output goes.
    let writers: [[String]] = [
        ["lens", "--prompt", "1 2 3 4", "-o", "PATH"],
        ["lens", "--prompt", "1 2 3 4", "--plot", "PATH"],
        ["trace", "--prompt", "1 2 3 4", "--hooks", "blocks.0.hook_resid_post", "-o", "PATH"],
        ["paths", "--direction", "next", "--family", "digits", "-o", "PATH"],
        ["paths", "--direction", "next", "--family", "digits", "--plot", "PATH"],
        ["build", "PLAN", "-o", "PATH"],
        ["export-hf", "-o", "PATH"],
        ["init", "--config", "gpt2", "-o", "PATH"],
    ]

    func command(_ template: [String], output: String) throws -> [String] {
        let plan = try writePlan("blocks: [\"0-1\"]\n")
        return template.map { $0 == "PATH" ? output : $0 == "PLAN" ? plan.path : $0 } + ["--force"]
    }

    func testFolderNamesAreRefusedEvenWithForce() throws {
        for template in writers {
            for output in ["", ".", "..", "./", "../", "folder", "folder/", "/"] {
                let args = try command(template, output: output)
                let result = try inWork(args)
                let what = "scalpel \(args.joined(separator: " "))"
                XCTAssertEqual(result.status, 1, "\(what): \(result.stderr)")
                XCTAssertTrue(result.stderr.hasPrefix("error:"), "\(what): \(result.stderr)")
                XCTAssertTrue(output.isEmpty ? result.stderr.contains("empty") : result.stderr.contains(output), "\(what): \(result.stderr)")
                assertSentinelsIntact(what)
            }
        }
        XCTAssertEqual(temporaries(), [])
    }

    func testSpecialFilesAreNeverReplaced() throws {
        XCTAssertEqual(mkfifo(work.appendingPathComponent("fifo").path, 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: work.appendingPathComponent("link.h5").path,
                                                   withDestinationPath: work.appendingPathComponent("keep.txt").path)
        for (path, what) in [("fifo", "a FIFO"), ("link.h5", "a symbolic link"), ("/dev/null", "a device")] {
            try expectBadInput(["lens", "--prompt", "1 2 3 4", "-o", path, "--force"], mentions: [path, what], inWork: true)
        }
        var info = stat()
        XCTAssertEqual(lstat(work.appendingPathComponent("fifo").path, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO)
        XCTAssertEqual(lstat("/dev/null", &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR)
        XCTAssertEqual(lstat(work.appendingPathComponent("link.h5").path, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFLNK)
        assertSentinelsIntact("special files")
    }

    func testExistingOutputNeedsForceAndForceReplacesIt() throws {
        let output = work.appendingPathComponent("lens.h5")
        try Data("old".utf8).write(to: output)
        try expectBadInput(["lens", "--prompt", "1 2 3 4", "-o", "lens.h5"], mentions: ["lens.h5", "--force"], inWork: true)
        XCTAssertEqual(try Data(contentsOf: output), Data("old".utf8))
        let result = try inWork(["lens", "--prompt", "1 2 3 4", "-o", "lens.h5", "--force"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertNotEqual(try Data(contentsOf: output), Data("old".utf8))
        XCTAssertEqual(temporaries(), [])
    }

    /// A file that appears at the output path while Scalpel writes is kept, and nothing is written.
    func testAFileThatAppearsMeanwhileIsNotReplaced() throws {
        let output = work.appendingPathComponent("race.bin")
        assertError(try OutputTarget(output, overwrite: false).write { temporary in
            try Data("mine".utf8).write(to: temporary)
            try Data("someone else's".utf8).write(to: output)
        }, OutputError.self, equals: .appeared(path: output.path))
        XCTAssertEqual(try Data(contentsOf: output), Data("someone else's".utf8))
        XCTAssertEqual(temporaries(), [])
    }

    /// A command's outputs land all or none: a failure before the end, or a second output that cannot
    /// be put in place, leaves the first as it was.
    func testOutputsOfOneCommandLandTogether() throws {
        let first = work.appendingPathComponent("first.bin"), second = work.appendingPathComponent("second.bin")
        try Data("old first".utf8).write(to: first)
        struct Stop: Error {}
        XCTAssertThrowsError(try OutputTarget.together {
            try OutputTarget(first, overwrite: true).write(Data("new first".utf8))
            throw Stop()
        })
        XCTAssertEqual(try Data(contentsOf: first), Data("old first".utf8))

        assertError(try OutputTarget.together {
            try OutputTarget(first, overwrite: true).write(Data("new first".utf8))
            try OutputTarget(second, overwrite: false).write { temporary in
                try Data("new second".utf8).write(to: temporary)
                try Data("someone else's".utf8).write(to: second)
            }
        }, OutputError.self, equals: .appeared(path: second.path))
        XCTAssertEqual(try Data(contentsOf: first), Data("old first".utf8))
        XCTAssertEqual(try Data(contentsOf: second), Data("someone else's".utf8))
        XCTAssertEqual(temporaries(), [])

        // Two outputs of one command at one path.
        try expectBadInput(["lens", "--prompt", "1 2 3 4", "-o", "same", "--plot", "./same", "--force"],
                           mentions: ["same", "two outputs"], inWork: true)
    }

    func testAnOutputNamedForAnotherFormatIsRefusedBeforeAnyFolderIsMade() throws {
        // -o writes HDF5 and --plot SVG: a name announcing JSON or PNG would hold something else.
        try expectBadInput(["lens", "--prompt", "1 2 3 4", "-o", "new/results.json"], mentions: ["new/results.json", "HDF5", "results.h5"], inWork: true)
        try expectBadInput(["lens", "--prompt", "1 2 3 4", "--plot", "new/lens.PNG"], mentions: ["new/lens.PNG", "SVG", "lens.svg"], inWork: true)
        try expectBadInput(["heads", "--pattern", "0.0", "--prompt", "1 2 3 4", "--html", "new/view.svg"], mentions: ["new/view.svg", "HTML", "view.html"], inWork: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.appendingPathComponent("new").path), "a refused output made its folder")
        // A fitting extension in any case, none, or one that names no format is taken as given.
        for name in ["r.H5", "r.hdf5", "r", "r.lens", "r.2026-12-02"] {
            let result = try inWork(["trace", "--prompt", "1 2", "--hooks", "blocks.0.hook_resid_post", "-o", name])
            XCTAssertEqual(result.status, 0, "\(name): \(result.stderr)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: work.appendingPathComponent(name).path), name)
        }
        assertSentinelsIntact("outputs named for another format")
    }

    func testPlanNamesCannotLeaveTheOutputsFolder() throws {
        for name in ["../../escape", "/tmp/escape", "a/b", ".hidden", ""] {
            let plan = try writePlan("name: \"\(name)\"\nblocks: [\"0\"]\n")
            try expectBadInput(["build", plan.path], mentions: ["name", "-o"], inWork: true)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.deletingLastPathComponent().appendingPathComponent("escape.h5").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/escape.h5"))
    }

    func testForceReplacesOnlyFoldersScalpelWrote() throws {
        try expectBadInput(["export-hf", "-o", "folder", "--force"], mentions: ["folder", "did not write"], inWork: true)
        XCTAssertEqual(try inWork(["export-hf", "-o", "hf"]).status, 0)
        try expectBadInput(["export-hf", "-o", "hf"], mentions: ["hf", "--force"], inWork: true)
        XCTAssertEqual(try inWork(["export-hf", "-o", "hf", "--force"]).status, 0)
        try Data("notes".utf8).write(to: work.appendingPathComponent("hf/notes.txt"))
        try expectBadInput(["export-hf", "-o", "hf", "--force"], mentions: ["hf", "notes.txt"], inWork: true)
        XCTAssertEqual(try Data(contentsOf: work.appendingPathComponent("hf/notes.txt")), Data("notes".utf8))
        assertSentinelsIntact("export-hf")
    }

    /// `init` reads its tokenizer before writing anything: a wrong folder leaves nothing behind.
    func testInitChecksItsTokenizerFirst() throws {
        try expectBadInput(["init", "--config", "gpt2", "-o", "ckpt", "--tokenizer", "nowhere"], mentions: ["nowhere/vocab.json"], inWork: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.appendingPathComponent("ckpt").path))
        XCTAssertEqual(temporaries(), [])
    }

    func testFileSizeLimitEndsInExit1WithTheOldFileIntact() throws {
        try Data("old trace".utf8).write(to: work.appendingPathComponent("trace.h5"))
        let result = try inWork(["trace", "--dataset", "digits", "--hooks", "blocks.*.hook_resid_post", "-o", "trace.h5", "--force"],
                                prefix: "ulimit -f 64 &&")
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("trace.h5") && result.stderr.contains("File too large"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: work.appendingPathComponent("trace.h5")), Data("old trace".utf8))
        XCTAssertEqual(temporaries(), [])
    }

    func testInterruptionRemovesTheTemporaryFile() throws {
        let prompts = (0..<4000).map { "\($0) \($0 + 1) \($0 + 2) \($0 + 3)" }.joined(separator: "\n")
        try Data(prompts.utf8).write(to: work.appendingPathComponent("prompts.txt"))
        try Data("old trace".utf8).write(to: work.appendingPathComponent("trace.h5"))
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            let process = Process()
            process.executableURL = Self.binary
            process.arguments = ["trace", "--dataset", "prompts.txt", "--hooks", "blocks.*", "-o", "trace.h5", "--force"]
            process.currentDirectoryURL = work
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // Signal once the temporary file exists, that is, while the trace is being written.
            let deadline = Date().addingTimeInterval(60)
            let mine = ".partial-\(process.processIdentifier)-"
            while !temporaries().contains(where: { $0.contains(mine) }) && process.isRunning && Date() < deadline { usleep(10_000) }
            XCTAssertTrue(process.isRunning, "the trace finished before it could be interrupted")
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(process.terminationReason, .exit, "signal \(signal): \(stderr)")
            XCTAssertEqual(process.terminationStatus, 1, "signal \(signal): \(stderr)")
            XCTAssertTrue(stderr.contains("interrupted"), stderr)
            XCTAssertEqual(temporaries(), [], "signal \(signal)")
            XCTAssertEqual(try Data(contentsOf: work.appendingPathComponent("trace.h5")), Data("old trace".utf8))
        }
    }
}

extension CLITestCase {
    /// `expectBadInput` run inside `scratch/work`.
    @discardableResult
    func expectBadInput(_ args: [String], mentions: [String], inWork: Bool, file: StaticString = #filePath, line: UInt = #line) throws -> Result {
        let result = try scalpel(args, shellPrefix: inWork ? "cd work &&" : nil, file: file, line: line)
        let command = "scalpel " + args.joined(separator: " ")
        XCTAssertEqual(result.status, 1, "\(command): exit status; stderr: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("error:"), "\(command): \(result.stderr)", file: file, line: line)
        for text in mentions where !result.stderr.contains(text) {
            XCTFail("\(command): stderr should mention \(text.debugDescription): \(result.stderr)", file: file, line: line)
        }
        return result
    }
}
