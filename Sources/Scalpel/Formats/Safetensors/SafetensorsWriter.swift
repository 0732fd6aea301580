import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes float32 tensors in the safetensors format.
public enum SafetensorsWriter {
    /// Writes `tensors` (as F32, in the given order) and `metadata` to `target`.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String],
                             to target: OutputTarget) throws {
        var seen = Set<String>()
        for (name, _) in tensors {
            if name == "__metadata__" {
                throw SafetensorsError.invalidTensorName(path: target.path, tensor: name, reason: "the name is reserved for the metadata")
            }
            guard seen.insert(name).inserted else {
                throw SafetensorsError.invalidTensorName(path: target.path, tensor: name, reason: "two tensors have this name")
            }
        }
        try target.write { temporary in try writeFile(tensors, metadata: metadata, at: temporary) }
    }

    /// Writes the file at `url` directly (inside an output's temporary file or folder), with tensor
    /// names already checked. The header is padded with spaces to a multiple of 8 bytes, as the
    /// reference writer does, so the data region (and every tensor) starts 8-byte aligned.
    static func writeFile(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String], at url: URL) throws {
        let path = url.path

        var parts: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { JSONText.quote($0.key) + ":" + JSONText.quote($0.value) }
            parts.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for (name, tensor) in tensors {
            let size = tensor.count * MemoryLayout<Float>.size
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            parts.append(JSONText.quote(name) + ":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }

        guard let file = fopen(path, "wb") else {
            throw FileError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        var failed = false
        func put(_ pointer: UnsafeRawPointer, _ count: Int) {
            if !failed, count > 0, fwrite(pointer, 1, count, file) != count { failed = true }
        }
        var length = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &length) { put($0.baseAddress!, 8) }
        header.withUnsafeBytes { put($0.baseAddress!, $0.count) }
        for (_, tensor) in tensors {
            #if _endian(little)
            put(UnsafeRawPointer(tensor.pointer), tensor.count * 4)
            #else
            let swapped = tensor.buffer.map { $0.bitPattern.littleEndian }
            swapped.withUnsafeBytes { put($0.baseAddress!, $0.count) }
            #endif
        }
        let reason = failed ? String(cString: strerror(errno)) : ""
        if fclose(file) != 0 && !failed {
            throw FileError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        if failed { throw FileError.unwritable(path: path, reason: reason) }
    }
}
