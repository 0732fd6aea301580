import Foundation
import Scalpel

/// One (direction, layer, α) of the path search: a CSV line and an object of the JSON `records`.
struct PathsRecord: Record {
    var summary: PathSummary

    static let columns = ["direction", "layer", "alpha", "count", "decode_top1", "decode_top5", "decode_mean_rank",
                          "propagated_top1", "propagated_top5", "propagated_mean_rank"]

    var fields: [(name: String, value: FieldValue)] {
        let s = summary
        return [("direction", .text(s.direction)), ("layer", .int(s.layer)), ("alpha", .double(s.alpha)), ("count", .int(s.count)),
                ("decode_top1", .double(s.decodeTop1)), ("decode_top5", .double(s.decodeTop5)),
                ("decode_mean_rank", .double(s.decodeMeanRank)), ("propagated_top1", .double(s.propagatedTop1)),
                ("propagated_top5", .double(s.propagatedTop5)), ("propagated_mean_rank", .double(s.propagatedMeanRank))]
    }
}
