import Foundation

/// Every HDF5 file Scalpel writes: made under a temporary name and renamed when complete, with root
/// attributes `format`, `tool_version` and the caller's provenance (model, plan, command line).
/// With `partial`, the file is one shard's part of a sweep (`PartialFile`): `format` is
/// `scalpel-partial`, the final format is named in `final_format`, and `shard/` holds what `merge` needs.
enum ScalpelFile {
    static func write(to target: OutputTarget, format: String, attributes: [String: String],
                      partial: PartialFile.Mark? = nil, _ body: (HDF5Group) throws -> Void) throws {
        try target.write { temporary in
            let file = try HDF5File.create(at: temporary, overwrite: true)
            let root = try file.root
            try root.setAttribute("format", partial == nil ? format : PartialFile.format)
            try root.setAttribute("tool_version", ScalpelVersion.string)
            for (key, value) in attributes.sorted(by: { $0.key < $1.key }) { try root.setAttribute(key, value) }
            try partial?.write(root, finalFormat: format)
            try body(root)
            try file.close()
        }
    }
}
