import Foundation

/// `scalpel classify -o FILE.h5` (format `scalpel-classify`): what the report shows, readable
/// without the model.
/// - `prompts/`: the dataset's items and tokens, `corrupted_tokens` (as `scalpel patch -o`);
/// - `patch/`: the head patching, as `scalpel patch --target z -o` writes it (`raw`, `values`
///   [layer, head], `layer_labels`, `head_labels`; attributes target, direction, metric, clean, corrupted);
/// - `scores/`: every head's `previous_token`, `duplicate_token`, `induction`, `same_family`, `copy`,
///   `next`, `end_attention`, `mover` [layer, head] (float32, NaN where not measured); attributes
///   `repeated_prompts`, `repeat_length`, `repeated_seed`, `answer_families`;
/// - `heads/`: the kept heads, largest |effect| first, along `kept`: `head`, `role`, `like` ("" when
///   none), `kept_at` ("all", "end", or "" when left out of the circuit), `evidence` (strings), `effect`
///   (float32); attributes `selection` ("threshold" or "top_k"), `selection_value`, and each threshold;
/// - `circuit/`: as `scalpel circuit -o` (attributes circuit, name, description, dataset, …, score,
///   full, fraction; `baselines` with seed, mean and sd), plus `z_score` and `percentile` when defined.
public enum ClassifyFile {
    public static func write(_ c: Classification, prompts: PromptsGroup, corruptedTokens: [[Int]], to target: OutputTarget,
                             attributes: [String: String]) throws {
        try ScalpelFile.write(to: target, format: "scalpel-classify", attributes: attributes) { root in
            try prompts.write(root)
            try PromptsGroup.writeTokens("corrupted_tokens", corruptedTokens, in: try root.group("prompts"))

            let patch = try root.createGroup("patch")
            let p = c.patch
            try patch.setAttribute("target", p.target)
            try patch.setAttribute("direction", p.direction.rawValue)
            try patch.setAttribute("metric", p.metric.rawValue)
            try patch.setAttribute("clean", p.clean)
            try patch.setAttribute("corrupted", p.corrupted)
            try patch.writeTensor("raw", Tensor(shape: p.shape, data: p.raw.map { Float($0 ?? .nan) }), dims: p.dims)
            try patch.writeTensor("values", Tensor(shape: p.shape, data: p.values.map { Float($0 ?? .nan) }), dims: p.dims)
            for (dim, labels) in zip(p.dims, p.axisLabels) { try patch.writeStrings("\(dim)_labels", labels, dims: [dim]) }

            let scores = try root.createGroup("scores")
            let g = c.grids
            let grids: [(String, HeadGrid?)] = [("previous_token", g.previousToken), ("duplicate_token", g.duplicateToken), ("induction", g.induction),
                                                ("same_family", g.sameFamily), ("copy", g.copy), ("next", g.next),
                                                ("end_attention", g.endAttention), ("mover", g.mover)]
            for (name, grid) in grids {
                let shape = [g.copy.layers, g.copy.heads]
                let values = grid?.values ?? Array(repeating: nil, count: shape[0] * shape[1])
                try scores.writeTensor(name, Tensor(shape: shape, data: values.map { Float($0 ?? .nan) }), dims: HeadGrid.dims)
            }
            try scores.setAttribute("repeated_prompts", g.repeated.count)
            try scores.setAttribute("repeat_length", g.repeated.length)
            try scores.setAttribute("repeated_seed", String(g.repeated.seed))
            try scores.setAttribute("answer_families", g.answerFamilies.joined(separator: ","))

            let heads = try root.createGroup("heads")
            let n = c.heads.count
            try heads.writeStrings("head", c.heads.map(\.circuitHead.description), dims: ["kept"])
            try heads.writeStrings("role", c.heads.map(\.role.rawValue), dims: ["kept"])
            try heads.writeStrings("like", c.heads.map { $0.like?.rawValue ?? "" }, dims: ["kept"])
            try heads.writeStrings("kept_at", c.heads.map { h in h.role.circuitPositions.map { $0 == .all ? "all" : "end" } ?? "" }, dims: ["kept"])
            try heads.writeStrings("evidence", c.heads.map(\.reason), dims: ["kept"])
            try heads.writeTensor("effect", Tensor(shape: [n], data: c.heads.map { Float($0.effect) }), dims: ["kept"])
            switch c.selection {
            case let .threshold(t): try heads.setAttribute("selection", "threshold"); try heads.setAttribute("selection_value", t)
            case let .topK(k): try heads.setAttribute("selection", "top_k"); try heads.setAttribute("selection_value", Double(k))
            }
            let t = c.thresholds
            for (name, value) in [("previous_token", t.previousToken), ("duplicate_token", t.duplicateToken), ("induction", t.induction),
                                  ("same_family", t.sameFamily), ("mover", t.mover), ("next", t.next), ("end_attention", t.endAttention)] {
                try heads.setAttribute("threshold_\(name)", value)
            }

            let circuit = try root.createGroup("circuit")
            try CircuitFile.describe(c.score, in: circuit)
            if let baselines = c.score.baselines {
                try circuit.setAttribute("seed", String(baselines.seed))
                try circuit.writeTensor("baselines", Tensor(shape: [baselines.n], data: baselines.values.map { Float($0) }), dims: ["baseline"])
                try circuit.setAttribute("baselines_mean", baselines.mean)
                try circuit.setAttribute("baselines_sd", baselines.sd)
            }
            if let z = c.zScore { try circuit.setAttribute("z_score", z) }
            if let percentile = c.percentile { try circuit.setAttribute("percentile", percentile) }
            try root.attachDimensionScales(to: ["prompts", "patch", "scores", "heads", "circuit"])
        }
    }
}
