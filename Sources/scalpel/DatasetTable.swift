import Foundation
import Scalpel

/// The study's per-prompt table, printed row by row as batches finish: the answer's rank, logit and
/// probability, the logit difference against the corrupted answer, and the top predictions; the
/// family's accuracy and mean logit difference close it.
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
        case .json: print("{\"dataset\":\(try json.fragment(dataset.name)),\"items\":[", terminator: "")
        case .csv: print("prompt,answer,rank,logit,prob,logit_diff,top")
        case .table:
            print("\(dataset.name): \(dataset.items.count) prompts")
            print("prompt".padding(toLength: promptWidth, withPad: " ", startingAt: 0) + "  "
                  + "answer".padding(toLength: answerWidth, withPad: " ", startingAt: 0) + "  rank    logit     prob   diff    top-\(topShown)")
        }
    }

    mutating func row(_ item: ItemResult) throws {
        defer { rows += 1 }
        switch format {
        case .json: print((rows == 0 ? "" : ",") + (try json.fragment(item)), terminator: "")
        case .csv:
            var fields: [String] = [Output.csvField(item.prompt), Output.csvField(item.answer ?? "")]
            fields += item.score.map { ["\($0.rank)", "\($0.logit)", "\($0.prob)"] } ?? ["", "", ""]
            fields.append(item.logitDiff.map { "\($0)" } ?? "")
            fields.append(Output.csvField(item.top.prefix(topShown).map(\.token).joined(separator: "|")))
            print(fields.joined(separator: ","))
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
                          ("correct", try json.fragment(summary.correct)), ("meanLogitDiff", try json.fragment(summary.meanLogitDiff))]
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
