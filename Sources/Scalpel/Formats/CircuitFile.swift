import Foundation

/// `scalpel circuit -o FILE.h5`: the scored prompts (tokens, answers, corrupted prompts), the circuit
/// and its scores. Group `circuit`: attributes `circuit` (its heads as the circuit file writes them),
/// `mlps` (the MLPs kept, only for a circuit with `mlps:`), `name`, `description`, `dataset`, `means_dataset`, `means`, `metric`, `score`, `full`, `fraction`,
/// and, with baselines, `seed`, `baselines_mean`, `baselines_sd` and the dataset `baselines` (float32,
/// one score per random circuit). Controls: the same attributes in `controls/FAMILY`.
public enum CircuitFile {
    public static func write(_ result: CircuitResult, prompts: PromptsGroup, corruptedTokens: [[Int]], controls: [CircuitResult],
                             to target: OutputTarget, attributes: [String: String], shard: ShardRun? = nil) throws {
        // One shard's part (`--shard K/N`): the scores of its batches, bit for bit, for `merge`.
        let mark = try shard.map { run -> PartialFile.Mark in
            let total = 1 + (result.baselines?.n ?? 0)
            let indices = run.shard.indices(of: total, block: run.block)
            let payload = CircuitPayload(result, indices: indices, controls: controls, prompts: prompts, corruptedTokens: corruptedTokens)
            return try PartialFile.Mark(kind: .circuit, run: run, total: total, indices: indices, attributes: attributes, payload: payload)
        }
        try ScalpelFile.write(to: target, format: "scalpel-circuit", attributes: attributes, partial: mark) { root in
            try prompts.write(root)
            try PromptsGroup.writeTokens("corrupted_tokens", corruptedTokens, in: try root.group("prompts"))
            let circuit = try root.createGroup("circuit")
            try describe(result, in: circuit)
            if let baselines = result.baselines {
                try circuit.setAttribute("seed", String(baselines.seed))
                try circuit.writeTensor("baselines", Tensor(shape: [baselines.n], data: baselines.values.map { Float($0) }), dims: ["baseline"])
                try circuit.setAttribute("baselines_mean", baselines.mean)
                try circuit.setAttribute("baselines_sd", baselines.sd)
            }
            for control in controls {
                try describe(control, in: try root.createGroup("controls/\(control.dataset)"))
            }
            try root.attachDimensionScales(to: ["prompts", "circuit"])
        }
    }

    static func describe(_ result: CircuitResult, in group: HDF5Group) throws {
        try group.setAttribute("circuit", "{" + result.circuit.headsText + "}")
        if let mlps = result.circuit.mlpsText { try group.setAttribute("mlps", mlps) }
        try group.setAttribute("name", result.circuit.name)
        try group.setAttribute("description", result.circuit.description)
        try group.setAttribute("dataset", result.dataset)
        try group.setAttribute("means_dataset", result.meansDataset)
        try group.setAttribute("means", result.meanKind.rawValue)
        try group.setAttribute("metric", result.metric.rawValue)
        try group.setAttribute("score", result.score)
        try group.setAttribute("full", result.full)
        try group.setAttribute("fraction", result.fraction)
    }
}
