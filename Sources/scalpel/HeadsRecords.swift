import Foundation
import Scalpel

/// Printing `scalpel heads` results: tables, JSON (DESIGN.md shapes) and CSV, whose columns are the
/// JSON keys of the same values.
enum HeadsOutput {
    static func nested(_ grid: HeadGrid) -> [[Double?]] {
        (0..<grid.layers).map { layer in (0..<grid.heads).map { grid.values[layer * grid.heads + $0].flatMap { $0.isFinite ? $0 : nil } } }
    }

    static func nonFinite(_ grids: [HeadGrid]) -> Int { grids.reduce(0) { $0 + $1.values.filter { $0 != nil && !$0!.isFinite }.count } }

    static func gridTable(_ grid: HeadGrid, _ format: String = "%6.3f") {
        print("layer " + (0..<grid.heads).map { "H\($0)".padding(toLength: 7, withPad: " ", startingAt: 0) }.joined())
        for layer in 0..<grid.layers {
            let cells = (0..<grid.heads).map { head -> String in
                let text = grid.values[layer * grid.heads + head].map { String(format: format, $0) } ?? "     -"
                return text.padding(toLength: 7, withPad: " ", startingAt: 0)
            }
            print("L\(layer)".padding(toLength: 6, withPad: " ", startingAt: 0) + cells.joined())
        }
    }

    // MARK: detectors

    struct DetectionJSON: Encodable {
        let model: String, detector: String, dims: [String], values: [[Double?]]
        let excludeBos: Bool, excludeCurrentToken: Bool, prompts: Int, nonFinite: Int
        enum CodingKeys: String, CodingKey {
            case model, detector, dims, values, prompts
            case excludeBos = "exclude_bos", excludeCurrentToken = "exclude_current_token", nonFinite = "non_finite"
        }
    }

    static func detection(_ grid: HeadGrid, detection: HeadDetection, model: Model, prompts: Int, format: OutputFormat, top: Int) throws {
        switch format {
        case .json:
            try Output.json(DetectionJSON(model: model.name, detector: detection.detector.rawValue, dims: HeadGrid.dims, values: nested(grid),
                                          excludeBos: detection.excludeBOS, excludeCurrentToken: detection.excludeCurrentToken,
                                          prompts: prompts, nonFinite: nonFinite([grid])))
        case .csv:
            print("layer,head,value")
            for layer in 0..<grid.layers { for head in 0..<grid.heads {
                print("\(layer),\(head),\(grid.values[layer * grid.heads + head].map { "\($0)" } ?? "")")
            } }
        case .table:
            var how = detection.detector == .sameFamily ? "share of attention on earlier tokens of the same family" : "TransformerLens detect_head, error measure mul"
            if detection.excludeBOS { how += ", BOS excluded" }
            if detection.excludeCurrentToken { how += ", current token excluded" }
            print("\(detection.detector.rawValue) scores (\(how)) over \(prompts) prompt\(prompts == 1 ? "" : "s")")
            if let families = detection.families, detection.detector == .sameFamily { print("families: \(families.names.joined(separator: ", "))") }
            gridTable(grid)
            print("top \(top):")
            for entry in grid.top(top) { print("  \(entry.head)".padding(toLength: 9, withPad: " ", startingAt: 0) + String(format: "%.4f", entry.value)) }
        }
    }

    // MARK: copy scores

    struct CopyJSON: Encodable {
        struct TableRow: Encodable {
            let prompt: Int, pos: Int, token: String, top: [String], copied: Bool, next: String, nextInTop: Bool
            enum CodingKeys: String, CodingKey { case prompt, pos, token, top, copied, next; case nextInTop = "next_in_top" }
        }
        struct Table: Encodable { let head: String; let rows: [TableRow] }
        let model: String, dims: [String], copy: [[Double?]], next: [[Double?]], positions: Int
        let sign: Int, k: Int, tables: [Table], nonFinite: Int
        enum CodingKeys: String, CodingKey { case model, dims, copy, next, positions, sign, k, tables; case nonFinite = "non_finite" }
    }

    static func copyScores(_ result: CopyScores.Result, model: Model, format: OutputFormat, top: Int) throws {
        let tables = result.tables.sorted { $0.key < $1.key }.map { head, rows in
            CopyJSON.Table(head: head.description, rows: zip(result.rows, rows).map { row, ids in
                CopyJSON.TableRow(prompt: row.prompt, pos: row.pos, token: model.tokenText(row.token), top: ids.map(model.tokenText),
                                  copied: ids.contains(row.token), next: model.tokenText(row.next), nextInTop: ids.contains(row.next))
            })
        }
        switch format {
        case .json:
            try Output.json(CopyJSON(model: model.name, dims: HeadGrid.dims, copy: nested(result.copy), next: nested(result.next),
                                     positions: result.positions, sign: Int(result.sign), k: result.k, tables: tables,
                                     nonFinite: nonFinite([result.copy, result.next])))
        case .csv:
            print("layer,head,copy,next,positions")
            for layer in 0..<result.copy.layers { for head in 0..<result.copy.heads {
                let i = layer * result.copy.heads + head
                print("\(layer),\(head),\(result.copy.values[i].map { "\($0)" } ?? ""),\(result.next.values[i].map { "\($0)" } ?? ""),\(result.positions)")
            } }
        case .table:
            print("OV copy scores (sign \(Int(result.sign))): share of \(result.positions) positions whose own token is in the top \(result.k)")
            gridTable(result.copy)
            print("next scores: share whose following token (the answer at the last position) is in the top \(result.k)")
            gridTable(result.next)
            print("top \(top) by copy score:   " + result.copy.top(top).map { "\($0.head) \(String(format: "%.3f", $0.value))" }.joined(separator: "  "))
            print("top \(top) by next score:   " + result.next.top(top).map { "\($0.head) \(String(format: "%.3f", $0.value))" }.joined(separator: "  "))
            for table in tables {
                print("\nhead \(table.head): top \(result.k) tokens of its OV output at each position (* = own token, > = next token)")
                for row in table.rows {
                    let shown = row.top.map { token -> String in
                        (token == row.token ? "*" : "") + (token == row.next ? ">" : "") + Output.shown(token)
                    }
                    print("  \(row.prompt):\(row.pos)".padding(toLength: 10, withPad: " ", startingAt: 0)
                          + Output.shown(row.token).padding(toLength: 12, withPad: " ", startingAt: 0) + shown.joined(separator: " "))
                }
            }
        }
    }

    // MARK: writing

    struct WritingPoint: Record {
        static let columns = ["prompt", "pos", "token", "token_id", "attention", "projection"]
        let point: WritingScatter.Point, token: String
        var fields: [(name: String, value: FieldValue)] {
            [("prompt", .int(point.prompt)), ("pos", .int(point.pos)), ("token", .text(token)), ("token_id", .int(point.token)),
             ("attention", .double(point.attention.isFinite ? point.attention : nil)),
             ("projection", .double(point.projection.isFinite ? point.projection : nil))]
        }
    }

    struct WritingJSON: Encodable {
        let model: String, head: String, points: [WritingPoint], r: Double?, pValue: Double?, nonFinite: Int
        enum CodingKeys: String, CodingKey { case model, head, points, r; case pValue = "p_value"; case nonFinite = "non_finite" }
    }

    static func writing(_ result: WritingScatter.Result, model: Model, format: OutputFormat, top: Int) throws {
        let points = result.points.map { WritingPoint(point: $0, token: model.tokenText($0.token)) }
        switch format {
        case .json:
            let bad = result.points.filter { !$0.attention.isFinite || !$0.projection.isFinite }.count
            try Output.json(WritingJSON(model: model.name, head: result.head.description, points: points, r: result.r, pValue: result.pValue, nonFinite: bad))
        case .csv:
            print(WritingPoint.csvHeader)
            for point in points { print(point.csvLine) }
        case .table:
            print("head \(result.head): attention from the last position to each token vs. its output projected on that token's unembedding")
            print("points \(result.points.count)   r = \(result.r.map { String(format: "%.4f", $0) } ?? "n/a (a constant sample)")   p = \(result.pValue.map { String(format: "%.3g", $0) } ?? "n/a")")
            print("top \(top) points by attention:")
            for p in points.sorted(by: { $0.point.attention > $1.point.attention }).prefix(top) {
                print("  \(p.point.prompt):\(p.point.pos)".padding(toLength: 10, withPad: " ", startingAt: 0)
                      + Output.shown(p.token).padding(toLength: 12, withPad: " ", startingAt: 0)
                      + String(format: "attention %.4f   projection %.4f", p.point.attention, p.point.projection))
            }
        }
    }
}
