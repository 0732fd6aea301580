import Foundation
import Scalpel

/// Printing `scalpel classify` results: the table and the JSON (docs/DECISIONS.md, "Head classification").
enum ClassifyTable {
    static func f(_ v: Double?) -> String { v.map { $0.isFinite ? String(format: "%.2f", $0) : "n/a" } ?? "-" }

    static func print(_ c: Classification, items: Int, circuitFile: String?) {
        Swift.print("head classification on \(c.score.dataset) (\(items) item\(items == 1 ? "" : "s")), \(c.patch.metric.rawValue): clean \(String(format: "%.4f", c.patch.clean)), corrupted \(String(format: "%.4f", c.patch.corrupted))")
        Swift.print(ClassifyPage.selectionText(c.selection) + ": \(c.heads.count) head\(c.heads.count == 1 ? "" : "s")")
        let header = ["head", "effect", "role", "kept", "prev", "dup", "induct", "family", "copy", "next", "endatt", "mover"]
        let widths = [7, 8, 28, 5, 6, 6, 7, 7, 6, 6, 7, 6]
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }.joined(separator: " ")
        }
        Swift.print(line(header))
        for h in c.heads {
            let e = h.evidence
            let role = h.role.rawValue + (h.like.map { " (\($0.rawValue))" } ?? "")
                + (h.role == .familyDetector ? " (\(c.grids.answerFamilies.joined(separator: "/")))" : "")
            let kept = h.role.circuitPositions.map { $0 == .all ? "all" : "end" } ?? "-"
            Swift.print(line([h.circuitHead.description, String(format: "%.4f", h.effect), role, kept, f(e.previousToken), f(e.duplicateToken),
                              f(e.induction), f(e.sameFamily), f(e.copy), f(e.next), f(e.endAttention), f(e.mover)]))
        }
        Swift.print("why:")
        for h in c.heads { Swift.print("  \(h.circuitHead): \(h.reason)") }
        let s = c.score
        Swift.print("candidate circuit \(c.circuit.name) (\(c.circuit.size) head\(c.circuit.size == 1 ? "" : "s")): {\(c.circuit.headsText)}"
                    + (circuitFile.map { " → \($0)" } ?? ""))
        Swift.print(String(format: "score     %.4f", s.score))
        Swift.print(String(format: "full      %.4f", s.full))
        Swift.print(String(format: "fraction  %.4f", s.fraction))
        if let b = s.baselines {
            Swift.print(String(format: "baselines %d random circuits (seed %llu): mean %.4f, sd %.4f", b.n, b.seed, b.mean, b.sd))
            let z = c.zScore.map { String(format: "z = %.2f", $0) } ?? "z = n/a"
            let above = b.values.filter { $0 < s.score }.count
            Swift.print("          \(z); the circuit scores above \(above) of \(b.n) (percentile \(String(format: "%.0f", (c.percentile ?? 0) * 100)))")
        } else {
            Swift.print("baselines none (--baselines 0)")
        }
    }
}

/// `scalpel classify --format json` (docs/DECISIONS.md, "classify: JSON").
struct ClassifyJSON: Encodable {
    struct Selection: Encodable { let by: String; let value: Double }
    struct Thresholds: Encodable {
        let previousToken, duplicateToken, induction, sameFamily, mover, next, endAttention: Double
        enum CodingKeys: String, CodingKey {
            case previousToken = "previous_token", duplicateToken = "duplicate_token", induction, sameFamily = "same_family", mover, next
            case endAttention = "end_attention"
        }
    }
    struct Head: Encodable {
        let head: String, effect: Double?, raw: Double?, role: String, like: String?, kept: String?
        let previousToken, duplicateToken, induction, sameFamily, copy, next, endAttention, mover: Double?
        let evidence: String
        enum CodingKeys: String, CodingKey {
            case head, effect, raw, role, like, kept
            case previousToken = "previous_token", duplicateToken = "duplicate_token", induction, sameFamily = "same_family", copy, next
            case endAttention = "end_attention", mover, evidence
        }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(head, forKey: .head)
            for (key, value) in [(CodingKeys.effect, effect), (.raw, raw)] { try c.encode(value, forKey: key) }
            try c.encode(role, forKey: .role); try c.encode(like, forKey: .like); try c.encode(kept, forKey: .kept)
            for (key, value) in [(CodingKeys.previousToken, previousToken), (.duplicateToken, duplicateToken), (.induction, induction),
                                 (.sameFamily, sameFamily), (.copy, copy), (.next, next), (.endAttention, endAttention), (.mover, mover)] {
                try c.encode(value, forKey: key)
            }
            try c.encode(evidence, forKey: .evidence)
        }
    }
    struct Baselines: Encodable { let n: Int; let seed: UInt64; let mean: Double?; let sd: Double?; let values: [Double?] }

    let model: String, dataset: String, items: Int, metric: String
    let selection: Selection
    let clean: Double?, corrupted: Double?
    let thresholds: Thresholds
    let answerFamilies: [String]
    let heads: [Head]
    let circuit: String, circuitName: String, circuitSize: Int, circuitFile: String?
    let means: String
    let score: Double?, full: Double?, fraction: Double?
    let baselines: Baselines?
    let zScore: Double?, percentile: Double?
    let nonFinite: Int

    enum CodingKeys: String, CodingKey {
        case model, dataset, items, metric, selection, clean, corrupted, thresholds
        case answerFamilies = "answer_families", heads, circuit
        case circuitName = "circuit_name", circuitSize = "circuit_size", circuitFile = "circuit_file", means
        case score, full, fraction, baselines
        case zScore = "z_score", percentile
        case nonFinite = "non_finite"
    }

    init(_ c: Classification, model: String, items: Int, circuitFile: String?) {
        var bad = 0
        func finite(_ v: Double?) -> Double? {
            guard let v else { return nil }
            if !v.isFinite { bad += 1; return nil }
            return v
        }
        self.model = model; dataset = c.score.dataset; self.items = items; metric = c.patch.metric.rawValue
        switch c.selection {
        case let .threshold(t): selection = Selection(by: "threshold", value: t)
        case let .topK(k): selection = Selection(by: "top_k", value: Double(k))
        }
        clean = finite(c.patch.clean); corrupted = finite(c.patch.corrupted)
        let t = c.thresholds
        thresholds = Thresholds(previousToken: t.previousToken, duplicateToken: t.duplicateToken, induction: t.induction, sameFamily: t.sameFamily,
                                mover: t.mover, next: t.next, endAttention: t.endAttention)
        answerFamilies = c.grids.answerFamilies
        heads = c.heads.map { h in
            let e = h.evidence
            return Head(head: h.circuitHead.description, effect: finite(h.effect), raw: finite(h.raw), role: h.role.rawValue, like: h.like?.rawValue,
                        kept: h.role.circuitPositions.map { $0 == .all ? "all" : "end" },
                        previousToken: finite(e.previousToken), duplicateToken: finite(e.duplicateToken), induction: finite(e.induction),
                        sameFamily: finite(e.sameFamily), copy: finite(e.copy), next: finite(e.next), endAttention: finite(e.endAttention),
                        mover: finite(e.mover), evidence: h.reason)
        }
        circuit = "{" + c.circuit.headsText + "}"; circuitName = c.circuit.name; circuitSize = c.circuit.size; self.circuitFile = circuitFile
        means = c.score.meanKind.rawValue
        score = finite(c.score.score); full = finite(c.score.full); fraction = finite(c.score.fraction)
        baselines = c.score.baselines.map { b in Baselines(n: b.n, seed: b.seed, mean: finite(b.mean), sd: finite(b.sd), values: b.values.map { finite($0) }) }
        zScore = finite(c.zScore); percentile = finite(c.percentile)
        nonFinite = bad
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model); try c.encode(dataset, forKey: .dataset); try c.encode(items, forKey: .items)
        try c.encode(metric, forKey: .metric); try c.encode(selection, forKey: .selection)
        try c.encode(clean, forKey: .clean); try c.encode(corrupted, forKey: .corrupted)
        try c.encode(thresholds, forKey: .thresholds); try c.encode(answerFamilies, forKey: .answerFamilies)
        try c.encode(heads, forKey: .heads)
        try c.encode(circuit, forKey: .circuit); try c.encode(circuitName, forKey: .circuitName); try c.encode(circuitSize, forKey: .circuitSize)
        try c.encode(circuitFile, forKey: .circuitFile); try c.encode(means, forKey: .means)
        try c.encode(score, forKey: .score); try c.encode(full, forKey: .full); try c.encode(fraction, forKey: .fraction)
        try c.encode(baselines, forKey: .baselines)
        try c.encode(zScore, forKey: .zScore); try c.encode(percentile, forKey: .percentile)
        try c.encode(nonFinite, forKey: .nonFinite)
    }
}
