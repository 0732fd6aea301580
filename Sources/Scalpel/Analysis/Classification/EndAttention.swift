import Foundation

/// Attention from each prompt's last position to its tokens of one family, for every head: the
/// attention half of the mover score (the study's "number mover" heads attend from the last token
/// to the numbers). Per head, the mean over prompts of Σ pattern[h, last, j] over the positions j
/// whose token is in the family of that prompt's answer (BOS and tokens of no family count nothing).
/// A prompt whose answer is in no family is left out; nil cells when every prompt is.
public enum EndAttention {
    public static func run(_ model: Model, prompts: [[Int]], answers: [Int], families: TokenFamilies) throws -> HeadGrid {
        precondition(prompts.count == answers.count, "one answer per prompt")
        var grid = HeadGrid(model: model)
        let layers = model.blocks.indices.filter { model.blocks[$0].attention != nil }
        guard let last = layers.last else { return grid }
        let scored = prompts.indices.filter { families.family[answers[$0]] != nil }
        guard !scored.isEmpty else { return grid }
        let result = try model.run(scored.map { prompts[$0] }, capture: HookFilter(layers.map { HookPoint.pattern($0) }),
                                   span: RunSpan(stop: .pattern(last)))
        var sums = Array(repeating: 0.0, count: grid.values.count)
        for (p, index) in scored.enumerated() {
            let tokens = prompts[index], n = tokens.count, family = families.family[answers[index]]
            let keys = tokens.indices.filter { families.family[tokens[$0]] == family }
            for layer in layers {
                let pattern = try result.cache.require(.pattern(layer), prompt: p)
                for head in 0..<model.blocks[layer].attention!.nHead {
                    let row = pattern.pointer + (head * n + n - 1) * n
                    sums[layer * grid.heads + head] += keys.reduce(0.0) { $0 + Double(row[$1]) }
                }
            }
        }
        for layer in layers {
            for head in 0..<model.blocks[layer].attention!.nHead {
                grid.values[layer * grid.heads + head] = sums[layer * grid.heads + head] / Double(scored.count)
            }
        }
        return grid
    }
}
