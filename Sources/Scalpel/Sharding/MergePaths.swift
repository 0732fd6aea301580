import Foundation

/// A paths part's payload: the search's settings, its families and directions, and the points of
/// the part's (direction, layer) units. The representations and mean offsets (Float32, the same in
/// every part) are read back from the part's own datasets.
struct PathsPayload: Codable {
    struct Family: Codable, Equatable { var name: String; var items: [String]; var values: [Int] }
    var template: VectorPaths.Template
    var leaveOneOut: Bool
    var layers: [Int]
    var hook: String
    var alphas: [UInt64]
    var families: [Family]
    var directions: [String]
    var points: [PathPoint]

    init(_ record: PathSweep.Record) {
        template = record.template; leaveOneOut = record.leaveOneOut; layers = record.layers; hook = record.hook.rawValue
        alphas = record.alphas.map(\.bitPattern)
        families = record.families.map { Family(name: $0.name, items: $0.items, values: $0.values) }
        directions = record.offsets.map(\.direction)
        points = record.offsets.flatMap(\.points)
    }

    /// Everything but the points: equal in every part of one run.
    func sameSearch(as other: PathsPayload) -> Bool {
        (template, leaveOneOut, layers, hook, alphas, directions) == (other.template, other.leaveOneOut, other.layers, other.hook, other.alphas, other.directions)
            && families == other.families
    }
}

extension ShardMerge {
    /// `paths --shard`: every (direction, layer) unit's points from the part that computed it, in
    /// the unsharded order; representations and offsets from the first part.
    static func mergePaths(_ parts: [PartialFile.Part], attributes: [String: String], to target: OutputTarget) throws {
        let payloads = try parts.map { try $0.decode(PathsPayload.self) }
        let first = payloads[0]
        guard let hook = HookPoint.Kind(rawValue: first.hook) else {
            throw ShardError.inconsistent(path: parts[0].path, reason: "unknown hook \(first.hook)")
        }
        let layerCount = first.layers.count
        var unitPoints = [[PathPoint]?](repeating: nil, count: parts[0].total)
        for (part, payload) in zip(parts, payloads) {
            guard payload.sameSearch(as: first) else {
                throw ShardError.foreign(path: part.path, first: parts[0].path, field: "path search", value: "different", expected: "the same")
            }
            for unit in part.indices { unitPoints[unit] = [] }
            for point in payload.points {
                guard let d = first.directions.firstIndex(of: point.direction), let l = first.layers.firstIndex(of: point.layer),
                      part.indices.contains(d * layerCount + l) else {
                    throw ShardError.inconsistent(path: part.path, reason: "it holds points of \(point.direction) at layer \(point.layer), not its own")
                }
                unitPoints[d * layerCount + l]!.append(point)
            }
        }
        guard first.directions.count * layerCount == parts[0].total, !unitPoints.contains(where: { $0 == nil }) else {
            throw ShardError.inconsistent(path: parts[0].path, reason: "the parts do not hold every (direction, layer) step of \(parts[0].total)")
        }
        let root = try parts[0].file.root
        func tensor(_ path: String) throws -> Tensor {
            do { return try root.dataset(path).readTensor() } catch {
                throw ShardError.inconsistent(path: parts[0].path, reason: "\(path) cannot be read")
            }
        }
        let families = try first.families.map { family in
            PathSweep.Record.Family(name: family.name, items: family.items, values: family.values,
                                    representations: try tensor("representations/\(family.name)/\(hook.rawValue)"))
        }
        let offsets = try first.directions.enumerated().map { d, direction in
            PathSweep.Record.Offset(direction: direction, delta: try tensor("offsets/\(PathsFile.groupName(direction))/delta"),
                                    points: (0..<layerCount).flatMap { unitPoints[d * layerCount + $0]! })
        }
        let record = PathSweep.Record(template: first.template, leaveOneOut: first.leaveOneOut, layers: first.layers, hook: hook,
                                      alphas: first.alphas.map(Double.init(bitPattern:)), families: families, offsets: offsets)
        try PathsFile.write(record, to: target, attributes: attributes)
    }
}
