import Foundation
import Scalpel

/// One prompt's row of `run`: the answer, the token scored for it (`answer_id`, `answer_token`: its
/// first token with `--first-token`), its rank (0 = top), logit and probability, the logit difference
/// against the corrupted answer, the prompt's tokens and the top predictions.
struct RunRecord: Record {
    let item: ItemResult
    /// `run --top-k`.
    let topShown: Int

    static let columns = ["prompt", "answer", "answer_id", "answer_token", "rank", "logit", "prob", "logit_diff", "tokens", "top"]

    var fields: [(name: String, value: FieldValue)] {
        [("prompt", .text(item.prompt)), ("answer", .text(item.answer)), ("answer_id", .int(item.score?.id)),
         ("answer_token", .text(item.score?.token)), ("rank", .int(item.score?.rank)),
         ("logit", .float(item.score?.logit)), ("prob", .double(item.score?.prob)), ("logit_diff", .float(item.logitDiff)),
         ("tokens", .ids(item.tokens)), ("top", .scores(Array(item.top.prefix(topShown))))]
    }
}

/// The study's per-prompt table, printed row by row as batches finish: the answer's rank, logit and
/// probability, the logit difference against the corrupted answer, and the top predictions; the
/// family's accuracy and mean logit difference close it. JSON is one object whatever the number
/// of prompts: `{"dataset", "records": [RunRecord…], "prompts", "accuracy", "correct",
/// "mean_logit_diff", "non_finite"}` (the summary follows the records because it is known only
/// once they are printed); CSV is `RunRecord`'s columns.
struct DatasetTable {
    let format: OutputFormat
    /// Top predictions shown per prompt: `run --top-k`.
    let topShown: Int
    let promptWidth: Int
    let answerWidth: Int
    private var json = JSONText()
    private var rows = 0

    init(_ dataset: PromptDataset, format: OutputFormat, topShown: Int) {
        self.format = format
        self.topShown = topShown
        promptWidth = min(max(dataset.items.map(\.prompt.count).max() ?? 6, 6), 60)
        answerWidth = max(10, (dataset.items.map { Output.shown($0.answer ?? "").count }.max() ?? 0) + 1)
    }

    mutating func begin(_ dataset: PromptDataset) throws {
        switch format {
        case .json: print("{\"dataset\":\(try json.fragment(dataset.name)),\"records\":[", terminator: "")
        case .csv: print(RunRecord.csvHeader)
        case .table:
            print("\(dataset.name): \(dataset.items.count) prompts")
            print("prompt".padding(toLength: promptWidth, withPad: " ", startingAt: 0) + "  "
                  + "answer".padding(toLength: answerWidth, withPad: " ", startingAt: 0) + "  rank    logit     prob   diff    top-\(topShown)")
        }
    }

    mutating func row(_ item: ItemResult) throws {
        defer { rows += 1 }
        let record = RunRecord(item: item, topShown: topShown)
        switch format {
        case .json: print((rows == 0 ? "" : ",") + (try json.fragment(record)), terminator: "")
        case .csv: print(record.csvLine)
        case .table:
            let prompt = item.prompt.count > promptWidth ? String(item.prompt.prefix(promptWidth - 1)) + "…" : item.prompt
            var line = prompt.padding(toLength: promptWidth, withPad: " ", startingAt: 0) + "  "
            line += Output.shown(item.answer ?? "").padding(toLength: answerWidth, withPad: " ", startingAt: 0)
            if let score = item.score {
                line += String(format: " %5d  %7.3f  %@", score.rank, score.logit, Output.percent(score.prob))
            } else {
                line += "      -        -        -"
            }
            line += item.logitDiff.map { String(format: " %6.2f", $0) } ?? "      -"
            line += "    " + item.top.prefix(topShown).map { Output.shown($0.token) }.joined(separator: " ")
            print(line)
        }
    }

    mutating func end(_ summary: DatasetSummary) throws {
        switch format {
        case .json:
            let fields = [("prompts", try json.fragment(summary.prompts)), ("accuracy", try json.fragment(summary.accuracy)),
                          ("correct", try json.fragment(summary.correct)), ("mean_logit_diff", try json.fragment(summary.meanLogitDiff))]
            print("]" + fields.map { ",\"\($0.0)\":\($0.1)" }.joined() + ",\"non_finite\":\(json.nonFinite)}")
        case .csv: break
        case .table:
            var footer = "\(summary.dataset): \(summary.prompts) prompts"
            if let accuracy = summary.accuracy {
                footer += String(format: ", answer ranked first in %d (%.1f%%)", summary.correct, accuracy * 100)
            }
            if let diff = summary.meanLogitDiff { footer += String(format: ", mean logit diff %.3f", diff) }
            print(footer)
        }
    }
}
