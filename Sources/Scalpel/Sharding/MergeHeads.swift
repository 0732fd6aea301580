import Foundation

/// `scalpel heads --shard K/N` (docs/DECISIONS.md "Sharding"): what a part of a detector or copy-score
/// sweep holds, and how `merge` puts the parts back into the file one unsharded run writes.
///
/// Units: detectors deal batches of `HeadDetection.batchSize` prompts (prompt p goes to shard
/// (p / 16) mod N + 1), each prompt's per-head scores computed in the batch the unsharded run
/// computes it in, and the merge sums them prompt after prompt as that run does. Copy scores deal
/// layers (layer l to shard l mod N + 1): a layer's heads are scanned together (`TopScan`), so a
/// layer computed alone is the unsharded layer bit for bit; every shard scores all positions.
struct HeadsPayload: Codable {
    struct Detect: Codable {
        var detectors: [String]
        var excludeBOS: Bool, excludeCurrentToken: Bool
        var families: [String]?
        var layers: Int, heads: Int
        /// Bit patterns of `DetectionScores.sums` of the part's prompts, and their counts.
        var sums: [UInt64], counts: [Int]
    }

    struct Copy: Codable {
        var layers: Int, heads: Int
        /// Hits per head, [layer, head] row-major; −1 where the model has no such head or the part
        /// did not score its layer.
        var copyHits: [Int], nextHits: [Int]
        var positions: Int
        /// Every scored row as (prompt, pos, token, next).
        var rows: [[Int]]
        /// Table heads of the part's layers: "L.H" → per row, the top-k ids.
        var tables: [String: [[Int]]]
        var sign: Float, k: Int
    }

    var prompts: PromptsPayload
    var detect: Detect?
    var copy: Copy?
}

/// Marks of `heads` partial files.
public enum HeadsShard {
    /// Root attribute `shard_block` of a copy-score part: its units are layers, one at a time.
    static let layerBlock = 1

    /// A detector part: the shard's prompts (`scores.prompts`) of `total`, with their exact scores.
    public static func mark(_ scores: DetectionScores, detection: HeadDetection, run: ShardRun, total: Int, prompts: PromptsGroup,
                            attributes: [String: String]) throws -> PartialFile.Mark {
        let payload = HeadsPayload(prompts: PromptsPayload(prompts), detect: .init(
            detectors: detection.detectors.map(\.rawValue), excludeBOS: detection.excludeBOS, excludeCurrentToken: detection.excludeCurrentToken,
            families: detection.families?.names, layers: scores.layers, heads: scores.heads,
            sums: scores.sums.map(\.bitPattern), counts: scores.counts), copy: nil)
        return try PartialFile.Mark(kind: .heads, run: run, total: total, indices: scores.prompts, attributes: attributes, payload: payload)
    }

    /// A copy-score part: the layers `layers` of a model of `total` blocks.
    public static func mark(_ result: CopyScores.Result, layers: [Int], run: ShardRun, total: Int, prompts: PromptsGroup,
                            attributes: [String: String]) throws -> PartialFile.Mark {
        func hits(_ grid: HeadGrid) -> [Int] { grid.values.map { $0.map { Int(($0 * Double(result.positions)).rounded()) } ?? -1 } }
        let payload = HeadsPayload(prompts: PromptsPayload(prompts), detect: nil, copy: .init(
            layers: result.copy.layers, heads: result.copy.heads, copyHits: hits(result.copy), nextHits: hits(result.next),
            positions: result.positions, rows: result.rows.map { [$0.prompt, $0.pos, $0.token, $0.next] },
            tables: Dictionary(uniqueKeysWithValues: result.tables.map { ($0.key.description, $0.value) }), sign: result.sign, k: result.k))
        return try PartialFile.Mark(kind: .heads, run: ShardRun(shard: run.shard, parameters: run.parameters, block: layerBlock),
                                    total: total, indices: layers, attributes: attributes, payload: payload)
    }
}

extension ShardMerge {
    static func mergeHeads(_ parts: [PartialFile.Part], attributes: [String: String], to target: OutputTarget) throws {
        let payloads = try parts.map { try $0.decode(HeadsPayload.self) }
        if payloads.allSatisfy({ $0.detect != nil }) {
            try mergeDetectors(parts, payloads.map { $0.detect! }, prompts: payloads.map(\.prompts), attributes: attributes, to: target)
        } else if payloads.allSatisfy({ $0.copy != nil }) {
            try mergeCopyScores(parts, payloads.map { $0.copy! }, prompts: payloads[0].prompts, attributes: attributes, to: target)
        } else {
            throw ShardError.foreign(path: parts[0].path, first: parts[0].path, field: "heads analysis", value: "mixed", expected: "one analysis")
        }
    }

    static func mergeDetectors(_ parts: [PartialFile.Part], _ payloads: [HeadsPayload.Detect], prompts: [PromptsPayload],
                               attributes: [String: String], to target: OutputTarget) throws {
        let slots = try promptSlots(parts)
        let first = payloads[0]
        let detectors = first.detectors.compactMap(HeadDetector.init(rawValue:))
        guard detectors.count == first.detectors.count, !detectors.isEmpty else {
            throw ShardError.inconsistent(path: parts[0].path, reason: "unknown detectors \(first.detectors)")
        }
        let width = detectors.count * first.layers * first.heads
        var scores: [DetectionScores] = []
        for (part, payload) in zip(parts, payloads) {
            guard payload.detectors == first.detectors, payload.layers == first.layers, payload.heads == first.heads else {
                throw ShardError.foreign(path: part.path, first: parts[0].path, field: "detectors", value: "\(payload.detectors)", expected: "\(first.detectors)")
            }
            guard payload.sums.count == part.indices.count * width, payload.counts.count == payload.sums.count else {
                throw ShardError.inconsistent(path: part.path, reason: "its payload holds \(payload.sums.count) scores, not \(part.indices.count * width)")
            }
            scores.append(DetectionScores(detectors: detectors, layers: payload.layers, heads: payload.heads, prompts: part.indices,
                                          sums: payload.sums.map(Double.init(bitPattern:)), counts: payload.counts))
        }
        var detection = HeadDetection(detectors: detectors, excludeBOS: first.excludeBOS, excludeCurrentToken: first.excludeCurrentToken)
        detection.families = first.families.map { TokenFamilies(names: $0, family: [:]) }
        let group = PromptsPayload.interleaved(prompts, slots: slots).group
        try HeadsFile.write(DetectionScores.joined(scores).grids(), detection: detection, prompts: group, to: target, attributes: attributes)
    }

    static func mergeCopyScores(_ parts: [PartialFile.Part], _ payloads: [HeadsPayload.Copy], prompts: PromptsPayload,
                                attributes: [String: String], to target: OutputTarget) throws {
        let first = payloads[0]
        guard first.rows.allSatisfy({ $0.count == 4 }), first.positions == first.rows.count else {
            throw ShardError.inconsistent(path: parts[0].path, reason: "its scored positions are damaged")
        }
        var copyHits = first.copyHits.map { _ in -1 }, nextHits = copyHits
        var tables: [HeadIndex: [[Int]]] = [:]
        for (part, payload) in zip(parts, payloads) {
            guard payload.layers == first.layers, payload.heads == first.heads, payload.rows == first.rows, payload.sign == first.sign,
                  payload.k == first.k, payload.copyHits.count == first.layers * first.heads, payload.nextHits.count == payload.copyHits.count else {
                throw ShardError.foreign(path: part.path, first: parts[0].path, field: "scored positions", value: "different", expected: "the same")
            }
            for layer in part.indices where (0..<first.layers).contains(layer) {
                for head in 0..<first.heads {
                    copyHits[layer * first.heads + head] = payload.copyHits[layer * first.heads + head]
                    nextHits[layer * first.heads + head] = payload.nextHits[layer * first.heads + head]
                }
            }
            for (name, table) in payload.tables {
                guard let head = HeadIndex(name) else { throw ShardError.inconsistent(path: part.path, reason: "table of \"\(name)\"") }
                tables[head] = table
            }
        }
        func grid(_ hits: [Int]) -> HeadGrid {
            HeadGrid(layers: first.layers, heads: first.heads, values: hits.map { $0 < 0 ? nil : Double($0) / Double(first.positions) })
        }
        let rows = first.rows.map { CopyScores.Row(prompt: $0[0], pos: $0[1], token: $0[2], next: $0[3]) }
        let result = CopyScores.Result(copy: grid(copyHits), next: grid(nextHits), positions: first.positions, rows: rows, tables: tables,
                                       sign: first.sign, k: first.k)
        try HeadsFile.write(result, prompts: prompts.group, to: target, attributes: attributes)
    }
}

extension ShardAdvice {
    /// `heads --copy-scores`: heads × scored positions (144 heads × 388 positions take about a second).
    public static let headPositionsAbove = 5_000_000
}
