import CCrypto
import Foundation

/// SHA-256 of files, for recording which checkpoint an archive was built from, and of buffers.
public enum SHA256 {
    public static func hex(ofFile url: URL) throws -> String {
        let file = try MappedFile(path: url.path, missingHint: "The checkpoint file disappeared while Scalpel was reading it.")
        var digest = [UInt8](repeating: 0, count: 32)
        let ok = digest.withUnsafeMutableBufferPointer { out in
            scalpel_sha256(file.bytes.baseAddress, file.bytes.count, out.baseAddress)
        }
        guard ok == 1 else { throw FileError.unreadable(path: url.path, reason: "SHA-256 failed") }
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        _ = scalpel_sha256(bytes.baseAddress, bytes.count, &digest)
        return digest
    }

    public static func hex(of data: Data) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        data.withUnsafeBytes { bytes in _ = scalpel_sha256(bytes.baseAddress, bytes.count, &digest) }
        return digest.map { String(format: "%02x", $0) }.joined()
    }
}
