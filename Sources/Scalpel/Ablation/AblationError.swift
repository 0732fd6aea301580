import Foundation

/// Prompts a model's ablations cannot run on (`Model.checkAblations(promptLengths:)`).
public enum AblationError: UserFacingError, Equatable {
    case lengthMismatch(block: Int, unit: String, meansLength: Int, prompt: Int, length: Int)
    case positionOutOfRange(block: Int, unit: String, position: Int, prompt: Int, length: Int)

    public var message: String {
        switch self {
        case let .lengthMismatch(block, unit, meansLength, prompt, length):
            return "Block \(block), \(unit): its per-position mean was computed on prompts of \(meansLength) tokens, but prompt \(prompt + 1) has \(length). "
                + "Run prompts of \(meansLength) tokens, or build the model with pooled means (`means: pooled`)."
        case let .positionOutOfRange(block, unit, position, prompt, length):
            return "Block \(block), \(unit): ablation position \(position) is outside prompt \(prompt + 1), which has \(length) tokens "
                + "(use 0…\(length - 1), or -\(length)…-1 counted from the end)."
        }
    }
}

/// Mean activations that cannot be computed as asked.
public enum MeanActivationsError: UserFacingError, Equatable {
    /// Per-position means average position p over every prompt, so every prompt needs the same length.
    case unequalLengths(lengths: [Int])
    case notCaptured(hook: String)

    public var message: String {
        switch self {
        case let .unequalLengths(lengths):
            let counts = Dictionary(grouping: lengths.indices, by: { lengths[$0] }).sorted { $0.key < $1.key }
                .map { "\($0.key) tokens (prompts \($0.value.prefix(5).map { String($0 + 1) }.joined(separator: ", "))\($0.value.count > 5 ? ", …" : ""))" }
            return "Per-position means need prompts of one token length, but the means prompts have "
                + counts.joined(separator: "; ") + ". Use prompts of one length, or pooled means."
        case let .notCaptured(hook):
            return "No mean of \(hook) was computed; compute the means with it among their hooks."
        }
    }
}
