import Foundation
import Scalpel

/// One top token of one lens cell: a CSV line, and an object of the JSON `records`.
struct LensRecord: Record {
    var promptIndex: Int, row: String, rowLabel: String, position: Int, rank: Int
    var score: TopToken
    var cell: LensCell

    static let columns = ["prompt_index", "row", "row_label", "position", "rank", "token_id", "token", "prob", "logit",
                          "target_prob", "target_rank", "target_logit", "logit_diff"]

    var fields: [(name: String, value: FieldValue)] {
        [("prompt_index", .int(promptIndex)), ("row", .text(row)), ("row_label", .text(rowLabel)), ("position", .int(position)),
         ("rank", .int(rank)), ("token_id", .int(score.id)), ("token", .text(score.token)), ("prob", .double(score.prob)),
         ("logit", .float(score.logit)), ("target_prob", .double(cell.target?.prob)), ("target_rank", .int(cell.target?.rank)),
         ("target_logit", .float(cell.target?.logit)), ("logit_diff", .float(cell.logitDiff))]
    }

    /// Every prompt, row, selected position and top token, in that order.
    static func all(_ result: LensResult) -> [LensRecord] {
        var records: [LensRecord] = []
        for (p, prompt) in result.prompts.enumerated() {
            for (r, row) in result.rows.enumerated() {
                for (j, position) in prompt.positions.enumerated() {
                    let cell = prompt.cells[r][j]
                    for (rank, score) in cell.top.enumerated() {
                        records.append(LensRecord(promptIndex: p, row: row, rowLabel: result.rowLabels[r], position: position,
                                                  rank: rank, score: score, cell: cell))
                    }
                }
            }
        }
        return records
    }
}

/// `lens --format json`: the prompts, one record per CSV line, and the per-row averages the table
/// prints (`summary`).
struct LensDocument: Encodable {
    struct PromptInfo: Encodable {
        var prompt: String
        var tokens: [Int]
        var positions: [Int]
        var target: Int?
        var foil: Int?

        // Every prompt has every key: null without a target or foil.
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: RecordKey.self)
            try c.encode(prompt, forKey: RecordKey("prompt")); try c.encode(tokens, forKey: RecordKey("tokens"))
            try c.encode(positions, forKey: RecordKey("positions"))
            try c.encode(target, forKey: RecordKey("target")); try c.encode(foil, forKey: RecordKey("foil"))
        }
    }

    var model: String
    var normalization: String
    var prompts: [PromptInfo]
    var records: [LensRecord]
    var summary: [LensSummaryRecord]

    init(_ result: LensResult) {
        model = result.model
        normalization = result.normalization.rawValue
        prompts = result.prompts.map { PromptInfo(prompt: $0.prompt, tokens: $0.tokens, positions: $0.positions, target: $0.target, foil: $0.foil) }
        records = LensRecord.all(result)
        summary = zip(result.summary, result.rowLabels).map { LensSummaryRecord(summary: $0, rowLabel: $1) }
    }
}

/// A row's averages over the prompts at the last position, as the table prints them.
struct LensSummaryRecord: Record {
    var summary: LensResult.RowSummary
    var rowLabel: String

    static let columns = ["row", "row_label", "mean_target_prob", "mean_target_rank", "target_top1", "mean_logit_diff"]

    var fields: [(name: String, value: FieldValue)] {
        [("row", .text(summary.row)), ("row_label", .text(rowLabel)), ("mean_target_prob", .double(summary.meanTargetProb)),
         ("mean_target_rank", .double(summary.meanTargetRank)), ("target_top1", .double(summary.targetTop1)),
         ("mean_logit_diff", .double(summary.meanLogitDiff))]
    }
}
