import Foundation
import Scalpel

/// The study's per-prompt table: the answer's rank, logit and probability, the logit difference
/// against the corrupted answer, and the top predictions.
enum DatasetTable {
    static func print(_ evaluation: DatasetEvaluation, format: OutputFormat, topShown: Int = 5) throws {
        switch format {
        case .json: try Output.json(evaluation)
        case .csv:
            Swift.print("prompt,answer,rank,logit,prob,logit_diff,top")
            for item in evaluation.items {
                var fields: [String] = [Output.csvField(item.prompt), Output.csvField(item.answer ?? "")]
                if let score = item.score {
                    fields += ["\(score.rank)", "\(score.logit)", "\(score.prob)"]
                } else {
                    fields += ["", "", ""]
                }
                fields.append(item.logitDiff.map { "\($0)" } ?? "")
                fields.append(Output.csvField(item.top.prefix(topShown).map(\.token).joined(separator: "|")))
                Swift.print(fields.joined(separator: ","))
            }
        case .table:
            var header = "\(evaluation.dataset): \(evaluation.items.count) prompts"
            if let accuracy = evaluation.accuracy {
                let correct = evaluation.items.filter { $0.score?.rank == 0 }.count
                header += String(format: ", answer ranked first in %d (%.1f%%)", correct, accuracy * 100)
            }
            if let diff = evaluation.meanLogitDiff { header += String(format: ", mean logit diff %.3f", diff) }
            Swift.print(header)
            let width = min(max(evaluation.items.map(\.prompt.count).max() ?? 6, 6), 60)
            let answerWidth = max(10, (evaluation.items.map { Output.shown($0.answer ?? "").count }.max() ?? 0) + 1)
            Swift.print("prompt".padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                        + "answer".padding(toLength: answerWidth, withPad: " ", startingAt: 0) + "  rank    logit     prob   diff    top-\(topShown)")
            for item in evaluation.items {
                let prompt = item.prompt.count > width ? String(item.prompt.prefix(width - 1)) + "…" : item.prompt
                var line = prompt.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                line += Output.shown(item.answer ?? "").padding(toLength: answerWidth, withPad: " ", startingAt: 0)
                if let score = item.score {
                    line += String(format: " %5d  %7.3f  %@", score.rank, score.logit, Output.percent(score.prob))
                } else {
                    line += "      -        -        -"
                }
                line += item.logitDiff.map { String(format: " %6.2f", $0) } ?? "      -"
                line += "    " + item.top.prefix(topShown).map { Output.shown($0.token) }.joined(separator: " ")
                Swift.print(line)
            }
        }
    }
}
