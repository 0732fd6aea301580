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

    // MARK: attention patterns

    static func pattern(_ patterns: AttentionPatterns, destination: Int, model: Model, format: OutputFormat, top: Int) throws {
        switch format {
        case .json: try Output.json(PatternJSON(patterns, destination: destination, model: model.name, top: top))
        case .csv:
            print("head,query_pos,key_pos,value")
            let n = patterns.length
            for (h, head) in patterns.heads.enumerated() { for q in 0..<n { for k in 0..<n {
                let value = patterns.weight(head: h, query: q, key: k)
                print("\(head),\(q),\(k),\(value.isFinite ? "\(value)" : "")")
            } } }
        case .table:
            let over = patterns.promptCount == 1 ? "" : ", mean over \(patterns.promptCount) prompts"
            print("attention from \(Output.shown(patterns.tokenStrings[destination])) (position \(destination)\(over)); top \(top) source tokens per head:")
            let width = (patterns.heads.map(\.description.count).max() ?? 3) + 3
            for (h, head) in patterns.heads.enumerated() {
                let sources = patterns.topSources(head: h, query: destination, count: top)
                let cells = sources.map { "\(Output.shown(patterns.tokenStrings[$0.position]))@\($0.position) " + String(format: "%.3f", $0.weight) }
                print(head.description.padding(toLength: width, withPad: " ", startingAt: 0) + cells.joined(separator: "   "))
            }
        }
    }

    /// `{model, heads, prompts, destination, destination_token, tokens, dims, shape, values, top, non_finite}`:
    /// `values` is the [head, query_pos, key_pos] pattern (mean over prompts), row-major; `top` per
    /// head the source tokens it attends to most from the destination.
    struct PatternJSON: Encodable {
        struct Source: Encodable { let position: Int; let token: String; let weight: Float? }
        struct Head: Encodable { let head: String; let layer: Int; let index: Int; let sources: [Source] }
        let model: String, heads: [String], prompts: Int, destination: Int, destinationToken: String
        let tokens: [String], dims: [String], shape: [Int], values: [Float?], top: [Head], nonFinite: Int
        enum CodingKeys: String, CodingKey {
            case model, heads, prompts, destination, tokens, dims, shape, values, top
            case destinationToken = "destination_token", nonFinite = "non_finite"
        }

        init(_ patterns: AttentionPatterns, destination: Int, model: String, top count: Int) {
            self.model = model
            heads = patterns.heads.map(\.description)
            prompts = patterns.promptCount
            self.destination = destination
            destinationToken = patterns.tokenStrings[destination]
            tokens = patterns.tokenStrings
            dims = AttentionPatterns.dims
            shape = patterns.shape
            values = patterns.values.map { $0.isFinite ? $0 : nil }
            nonFinite = patterns.values.filter { !$0.isFinite }.count
            top = patterns.heads.enumerated().map { h, head in
                Head(head: head.description, layer: head.layer, index: head.head,
                     sources: patterns.topSources(head: h, query: destination, count: count).map {
                         Source(position: $0.position, token: patterns.tokenStrings[$0.position], weight: $0.weight.isFinite ? $0.weight : nil)
                     })
            }
        }
    }

    // MARK: detectors

    /// One detector's grid: DESIGN.md's `{detector, dims, values}` (with the run's options beside it
    /// when it is the only one).
    struct DetectionJSON: Encodable {
        let model: String, detector: String, dims: [String], values: [[Double?]]
        let excludeBos: Bool, excludeCurrentToken: Bool, prompts: Int, nonFinite: Int
        enum CodingKeys: String, CodingKey {
            case model, detector, dims, values, prompts
            case excludeBos = "exclude_bos", excludeCurrentToken = "exclude_current_token", nonFinite = "non_finite"
        }
    }

    /// Several detectors from one run: `{model, detectors: [{detector, dims, values}], …}`.
    struct DetectorsJSON: Encodable {
        struct Grid: Encodable { let detector: String, dims: [String], values: [[Double?]] }
        let model: String, detectors: [Grid]
        let excludeBos: Bool, excludeCurrentToken: Bool, prompts: Int, nonFinite: Int
        enum CodingKeys: String, CodingKey {
            case model, detectors, prompts
            case excludeBos = "exclude_bos", excludeCurrentToken = "exclude_current_token", nonFinite = "non_finite"
        }
    }

    static func detection(_ grids: [HeadGrid], detection: HeadDetection, model: Model, prompts: Int, format: OutputFormat, top: Int) throws {
        let names = detection.detectors.map(\.rawValue)
        switch format {
        case .json where grids.count == 1:
            try Output.json(DetectionJSON(model: model.name, detector: names[0], dims: HeadGrid.dims, values: nested(grids[0]),
                                          excludeBos: detection.excludeBOS, excludeCurrentToken: detection.excludeCurrentToken,
                                          prompts: prompts, nonFinite: nonFinite(grids)))
        case .json:
            try Output.json(DetectorsJSON(model: model.name, detectors: zip(names, grids).map { .init(detector: $0, dims: HeadGrid.dims, values: nested($1)) },
                                          excludeBos: detection.excludeBOS, excludeCurrentToken: detection.excludeCurrentToken,
                                          prompts: prompts, nonFinite: nonFinite(grids)))
        case .csv:
            print(grids.count == 1 ? "layer,head,value" : "detector,layer,head,value")
            for (name, grid) in zip(names, grids) {
                for layer in 0..<grid.layers { for head in 0..<grid.heads {
                    print((grids.count == 1 ? "" : name + ",") + "\(layer),\(head),\(grid.values[layer * grid.heads + head].map { "\($0)" } ?? "")")
                } }
            }
        case .table:
            var exclusions = ""
            if detection.excludeBOS { exclusions += ", BOS excluded" }
            if detection.excludeCurrentToken { exclusions += ", current token excluded" }
            for (d, (detector, grid)) in zip(detection.detectors, grids).enumerated() {
                if d > 0 { print("") }
                let how = (detector == .sameFamily ? "share of attention on earlier tokens of the same family" : "TransformerLens detect_head, error measure mul") + exclusions
                print("\(detector.rawValue) scores (\(how)) over \(prompts) prompt\(prompts == 1 ? "" : "s")")
                if let families = detection.families, detector == .sameFamily { print("families: \(families.names.joined(separator: ", "))") }
                gridTable(grid)
                print("top \(top):")
                for entry in grid.top(top) { print("  \(entry.head)".padding(toLength: 9, withPad: " ", startingAt: 0) + String(format: "%.4f", entry.value)) }
            }
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
