import Foundation

/// `scalpel heads pattern -o FILE.h5`: the prompts (token ids and strings) and an `attention/` group:
/// - `pattern` [head, query_pos, key_pos]: the mean over prompts (a single prompt's own pattern);
/// - `per_prompt` [prompt, head, query_pos, key_pos]: each prompt's captured `hook_pattern` values;
/// - `head_labels` [head] (`9.1`), `layer` and `head_index` [head];
/// - `token_labels` [query_pos] / the same strings for `key_pos`: the first prompt's tokens.
/// Attributes: `destination` (the position the table and the multi-head picture show), `prompts`.
public enum AttentionFile {
    public static func write(_ patterns: AttentionPatterns, destination: Int, prompts: PromptsGroup, to target: OutputTarget,
                             attributes: [String: String]) throws {
        try ScalpelFile.write(to: target, format: "scalpel-attention", attributes: attributes) { root in
            try prompts.write(root)
            let group = try root.createGroup("attention")
            try group.setAttribute("hook", "blocks.{layer}.attn.hook_pattern")
            try group.setAttribute("destination", destination)
            try group.setAttribute("prompts", patterns.promptCount)
            try group.writeTensor("pattern", Tensor(shape: patterns.shape, data: patterns.values), dims: AttentionPatterns.dims)
            try group.writeTensor("per_prompt", Tensor(shape: [patterns.promptCount] + patterns.shape, data: patterns.perPrompt),
                                  dims: ["prompt"] + AttentionPatterns.dims)
            try group.writeStrings("head_labels", patterns.heads.map(\.description), dims: ["head"])
            try group.writeInt32("layer", patterns.heads.map { Int32($0.layer) }, shape: [patterns.heads.count], dims: ["head"])
            try group.writeInt32("head_index", patterns.heads.map { Int32($0.head) }, shape: [patterns.heads.count], dims: ["head"])
            try group.writeStrings("query_pos_labels", patterns.tokenStrings, dims: ["query_pos"])
            try group.writeStrings("key_pos_labels", patterns.tokenStrings, dims: ["key_pos"])
            try root.attachDimensionScales(to: ["prompts", "attention"])
        }
    }
}
