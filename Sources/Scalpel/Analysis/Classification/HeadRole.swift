import Foundation

/// What `scalpel classify` calls a head (the study's head functions, its sections 5–6 and Appendix B).
public enum HeadRole: String, CaseIterable, Sendable {
    /// Attends to the previous token (TransformerLens `previous_token_head`).
    case previousToken = "previous-token"
    /// Attends to the token after an earlier copy of the current one (the study's 5.5).
    case induction
    /// Attends to earlier copies of the current token (Appendix B's "duplicate detector").
    case duplicateDetector = "duplicate-detector"
    /// Attends from a token to earlier tokens of its own type (the study's early "similarity
    /// detection" heads; Appendix B's "<type> detector", named after the answer's family).
    case familyDetector = "family-detector"
    /// Attends from the last position to the family's items and its OV writes the token after the
    /// attended one (the study's 9.1 as a "next" head: I → I+1).
    case successor
    /// Attends from the last position to the family's items and its OV copies them (the study's
    /// "number mover" heads: attention × copy score).
    case mover
    /// Patching it moves the metric away from the clean answer (the study's negative heads, 0.10, 5.5).
    case suppressor
    /// Important by patching, but no score reaches its threshold.
    case unclassified

    /// Where a head of this role keeps its own activation in the candidate circuit (nil: left out).
    /// Detectors and induction heads write at the positions later heads read, so they keep `all`;
    /// movers and successor heads act at the last position, so they keep `[end]` (Table 2b's choice);
    /// suppressors are left out, as the study's "Top 10 Pos" circuit leaves the negative heads out;
    /// unclassified heads that patching found important keep `all`.
    public var circuitPositions: AblationPositions? {
        switch self {
        case .previousToken, .induction, .duplicateDetector, .familyDetector, .unclassified: return .all
        case .successor, .mover: return .only([-1])
        case .suppressor: return nil
        }
    }
}

/// The thresholds that name a head's role, in one place (docs/DECISIONS.md, "classify: roles and
/// thresholds"). Detector scores are TransformerLens `detect_head` scores (error measure `mul`: the
/// share of a head's attention on the detector's pattern), so 0.4 means "at least 40% of its
/// attention goes where the pattern says", far above what unrelated heads put there; copy and next
/// scores are shares of positions whose token is in the top 5 of the head's OV output.
public struct RoleThresholds: Sendable, Equatable {
    /// `previous-token` score (on seeded random repeated tokens) at least this: previous-token head.
    public var previousToken = 0.4
    /// `duplicate-token` score (random repeated tokens) at least this: duplicate detector.
    public var duplicateToken = 0.4
    /// `induction` score (random repeated tokens) at least this: induction head.
    public var induction = 0.4
    /// `same-family` score on the dataset (share of attention on earlier tokens of the token's own
    /// family) at least this: a "<family> detector". Higher than the others: on a pure sequence most
    /// earlier tokens are of the family, so a head spreading its attention scores well already.
    public var sameFamily = 0.6
    /// Mover score = (attention from the last position to the family's items) × (OV copy score) at
    /// least this: a mover. 9.1 in the study: top-5 copy score 0.59 with most of its attention on numbers.
    public var mover = 0.25
    /// Successor head: next score at least this, at least its copy score, and attention from the
    /// last position to the family's items at least `endAttention`.
    public var next = 0.3
    public var endAttention = 0.3

    public init() {}
}

/// Every score `classify` reads for one head; nil where it could not be measured (a detector with
/// nothing to score, a mover score when the answer belongs to no family).
public struct HeadEvidence: Sendable, Equatable {
    public var previousToken: Double?
    public var duplicateToken: Double?
    public var induction: Double?
    public var sameFamily: Double?
    public var copy: Double?
    public var next: Double?
    /// Mean attention from the last position to the prompt's tokens of the answer's family.
    public var endAttention: Double?
    /// endAttention × copy.
    public var mover: Double?

    public init(previousToken: Double? = nil, duplicateToken: Double? = nil, induction: Double? = nil, sameFamily: Double? = nil,
                copy: Double? = nil, next: Double? = nil, endAttention: Double? = nil) {
        self.previousToken = previousToken; self.duplicateToken = duplicateToken; self.induction = induction
        self.sameFamily = sameFamily; self.copy = copy; self.next = next; self.endAttention = endAttention
        mover = endAttention.flatMap { attention in copy.map { attention * $0 } }
    }
}

extension RoleThresholds {
    /// The role the scores give a head whose patching effect is positive, and the evidence that
    /// decided it. The first rule that holds wins, from the most specific attention pattern to the
    /// least: induction, previous-token, duplicate detector, successor, mover, family detector.
    public func patternRole(_ e: HeadEvidence) -> (role: HeadRole, evidence: String) {
        func at(_ value: Double?, _ threshold: Double) -> Bool { (value ?? -.infinity) >= threshold }
        func f(_ value: Double?) -> String { value.map { String(format: "%.2f", $0) } ?? "n/a" }
        if at(e.induction, induction) { return (.induction, "induction \(f(e.induction)) ≥ \(f(induction))" + copyNote(e)) }
        if at(e.previousToken, previousToken) { return (.previousToken, "previous-token \(f(e.previousToken)) ≥ \(f(previousToken))") }
        if at(e.duplicateToken, duplicateToken) { return (.duplicateDetector, "duplicate-token \(f(e.duplicateToken)) ≥ \(f(duplicateToken))") }
        if at(e.next, next), (e.next ?? 0) >= (e.copy ?? 0), at(e.endAttention, endAttention) {
            return (.successor, "next \(f(e.next)) ≥ \(f(next)) and ≥ copy \(f(e.copy)), end attention \(f(e.endAttention)) ≥ \(f(endAttention))")
        }
        if at(e.mover, mover) { return (.mover, "mover \(f(e.mover)) = end attention \(f(e.endAttention)) × copy \(f(e.copy)) ≥ \(f(mover))") }
        if at(e.sameFamily, sameFamily) { return (.familyDetector, "same-family \(f(e.sameFamily)) ≥ \(f(sameFamily))") }
        let best = [("previous-token", e.previousToken), ("duplicate-token", e.duplicateToken), ("induction", e.induction),
                    ("same-family", e.sameFamily), ("copy", e.copy), ("next", e.next), ("mover", e.mover)]
            .compactMap { name, value in value.map { (name, $0) } }.max { $0.1 < $1.1 }
        return (.unclassified, "no score reaches its threshold" + (best.map { " (highest: \($0.0) \(f($0.1)))" } ?? ""))
    }

    private func copyNote(_ e: HeadEvidence) -> String {
        guard let copy = e.copy else { return "" }
        return String(format: ", OV copy %.2f", copy)
    }

    /// The role of a head with patching effect `effect`: a suppressor when it is negative (with the
    /// role its scores alone would give, as `like`), else its pattern role.
    public func role(effect: Double, evidence: HeadEvidence) -> (role: HeadRole, like: HeadRole?, evidence: String) {
        let pattern = patternRole(evidence)
        if effect < 0 {
            return (.suppressor, pattern.role, String(format: "patch effect %.3f < 0; scores alone: %@ (%@)", effect, pattern.role.rawValue, pattern.evidence))
        }
        return (pattern.role, nil, pattern.evidence)
    }
}
