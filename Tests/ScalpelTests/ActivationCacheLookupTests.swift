import XCTest
@testable import Scalpel

/// A lookup of an activation the run did not capture is a typed error, not a crash.
final class ActivationCacheLookupTests: XCTestCase {
    func testRequireReturnsCapturedAndThrowsForTheRest() throws {
        // The README's library example reads the cache this way.
        let readme = try String(contentsOf: TestFiles.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(readme.contains("run.cache.require(.residPost(3), prompt: 0)"))
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let cache = try model.run([[5, 6, 7]], capture: HookFilter([HookPoint.residPost(0)])).cache
        XCTAssertTrue(try cache.require(.residPost(0), prompt: 0).isIdentical(to: try XCTUnwrap(cache[.residPost(0), 0])))
        XCTAssertEqual(try cache.require(.residPost(0)).count, 1)
        XCTAssertThrowsError(try cache.require(.residPost(0), prompt: 1)) { error in
            XCTAssertEqual(error as? ActivationCacheError, .notCaptured("blocks.0.hook_resid_post"))
        }
        XCTAssertThrowsError(try cache.require(.residPre(1))) { error in
            XCTAssertEqual(error as? ActivationCacheError, .notCaptured("blocks.1.hook_resid_pre"))
        }
    }
}
