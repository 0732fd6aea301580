import Foundation

/// `scalpel circuit --baselines N --shard K/N` (docs/cluster.md): the units are the packed batches of
/// the list [circuit] + baselines, as the unsharded run packs them (`CircuitScorer.circuitsPerBatch`
/// circuits each; batch j in shard j mod N + 1), so every score is the same bits. Every shard draws
/// the same baselines and computes the full model's score; shard 1 also holds the circuit's own score
/// (batch 0) and the controls.
struct CircuitPayload: Codable {
    struct CircuitText: Codable {
        var name: String, description: String
        /// Head (`9.1`) → positions as `AblationPositions` text.
        var heads: [String: String]
        var mlps: [String: String]?

        init(_ circuit: Circuit) {
            name = circuit.name; description = circuit.description
            heads = Dictionary(uniqueKeysWithValues: circuit.heads.map { ($0.key.description, $0.value.description) })
            mlps = circuit.mlps.map { Dictionary(uniqueKeysWithValues: $0.map { (String($0.key), $0.value.description) }) }
        }

        func circuit(path: String) throws -> Circuit {
            func positions(_ text: String) throws -> AblationPositions {
                guard let parsed = AblationPositions(text) else { throw ShardError.inconsistent(path: path, reason: "shard/payload holds positions \"\(text)\"") }
                return parsed
            }
            var kept: [Circuit.Head: AblationPositions] = [:]
            for (head, text) in heads {
                guard let parsed = Circuit.Head(head) else { throw ShardError.inconsistent(path: path, reason: "shard/payload holds head \"\(head)\"") }
                kept[parsed] = try positions(text)
            }
            let mlpList = try mlps.map { list in
                try Dictionary(uniqueKeysWithValues: list.map { key, text -> (Int, AblationPositions) in
                    guard let layer = Int(key) else { throw ShardError.inconsistent(path: path, reason: "shard/payload holds MLP \"\(key)\"") }
                    return (layer, try positions(text))
                })
            }
            return Circuit(name: name, heads: kept, mlps: mlpList, description: description)
        }
    }

    struct Scored: Codable {
        var dataset: String, meansDataset: String
        var score: UInt64, full: UInt64
    }

    var circuit: CircuitText
    var meanKind: String, metric: String
    var scored: Scored
    var seed: UInt64?
    /// Bit patterns of the scores of the whole list's entries `shard/indices` (0 = the circuit, i = baseline i).
    var scores: [UInt64]
    var controls: [Scored]
    var prompts: PromptsPayload
    var corruptedTokens: [[Int]]

    init(_ result: CircuitResult, indices: [Int], controls: [CircuitResult], prompts: PromptsGroup, corruptedTokens: [[Int]]) {
        circuit = CircuitText(result.circuit)
        meanKind = result.meanKind.rawValue; metric = result.metric.rawValue
        scored = Scored(dataset: result.dataset, meansDataset: result.meansDataset, score: result.score.bitPattern, full: result.full.bitPattern)
        seed = result.baselines?.seed
        let all = [result.score] + (result.baselines?.values ?? [])
        scores = indices.map { all[$0].bitPattern }
        self.controls = controls.map { Scored(dataset: $0.dataset, meansDataset: $0.meansDataset, score: $0.score.bitPattern, full: $0.full.bitPattern) }
        self.prompts = PromptsPayload(prompts); self.corruptedTokens = corruptedTokens
    }
}

extension ShardMerge {
    static func mergeCircuit(_ parts: [PartialFile.Part], attributes: [String: String], to target: OutputTarget) throws {
        let payloads = try parts.map { try $0.decode(CircuitPayload.self) }
        let first = payloads[0]
        let all = try gather(parts, values: payloads.map(\.scores), inputs: payloads.map { ContrastInputs(prompts: $0.prompts, corruptedTokens: $0.corruptedTokens) }, unit: "scores")
        if let missing = all.firstIndex(where: { $0 == nil }) {
            throw ShardError.inconsistent(path: parts[0].path, reason: "no part holds scored circuit \(missing) (parts of runs with different batch sizes?)")
        }
        guard let kind = MeanKind(rawValue: first.meanKind), let metric = CausalMetric(rawValue: first.metric) else {
            throw ShardError.inconsistent(path: parts[0].path, reason: "unknown means or metric")
        }
        let circuit = try first.circuit.circuit(path: parts[0].path)
        func result(_ scored: CircuitPayload.Scored, score: Double, baselines: CircuitResult.Baselines?) -> CircuitResult {
            CircuitResult(circuit: circuit, dataset: scored.dataset, meansDataset: scored.meansDataset, meanKind: kind, metric: metric,
                          score: score, full: Double(bitPattern: scored.full), baselines: baselines)
        }
        let values = all.dropFirst().map { $0! }
        let merged = result(first.scored, score: all[0]!, baselines: first.seed.map { CircuitResult.Baselines(seed: $0, values: values) })
        // Shard 1 (parts are in shard order) scored the controls.
        let controls = first.controls.map { result($0, score: Double(bitPattern: $0.score), baselines: nil) }
        try CircuitFile.write(merged, prompts: first.prompts.group, corruptedTokens: first.corruptedTokens, controls: controls,
                              to: target, attributes: attributes)
    }
}

extension ShardAdvice {
    /// Circuit baselines: scored circuits × items (10,000 baselines over 20 prompts is 200,000).
    public static let circuitRunsAbove = 100_000
}
