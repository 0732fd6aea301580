import Foundation

/// An attribution part's payload: the part's prompts and its batches' exact sums.
struct AttributionPayload: Codable {
    var prompts: PromptsPayload
    var sums: AttributionSums
}

extension ShardMerge {
    /// `attribute --shard`: every part's batches back in batch order, averaged as one run averages them.
    static func mergeAttribution(_ parts: [PartialFile.Part], attributes: [String: String], to target: OutputTarget) throws {
        let payloads = try parts.map { try $0.decode(AttributionPayload.self) }
        let slots = try promptSlots(parts)
        let first = payloads[0].sums
        var batches: [AttributionSums.Batch] = []
        var seen = Set<Int>()
        for (part, payload) in zip(parts, payloads) {
            guard payload.prompts.items.count == part.indices.count, payload.sums.items == part.indices.count else {
                throw ShardError.inconsistent(path: part.path, reason: "its payload holds \(payload.sums.items) prompts, not \(part.indices.count)")
            }
            guard payload.sums.layouts == first.layouts, payload.sums.direction == first.direction else {
                throw ShardError.foreign(path: part.path, first: parts[0].path, field: "attribution grid", value: "different", expected: "the same")
            }
            for batch in payload.sums.batches {
                guard seen.insert(batch.index).inserted, batch.values.count == first.layouts.count,
                      zip(batch.values, first.layouts).allSatisfy({ $0.count == $1.labels.count }) else {
                    throw ShardError.inconsistent(path: part.path, reason: "its batch \(batch.index) is repeated or has the wrong size")
                }
                batches.append(batch)
            }
        }
        let sums = AttributionSums(layouts: first.layouts, direction: first.direction, batches: batches)
        guard sums.items == parts[0].total else {
            throw ShardError.inconsistent(path: parts[0].path, reason: "the parts hold \(sums.items) prompts, not \(parts[0].total)")
        }
        let group = PromptsPayload.interleaved(payloads.map(\.prompts), slots: slots).group
        try AttributionFile.write(sums.averaged(), prompts: group, to: target, attributes: attributes)
    }
}
