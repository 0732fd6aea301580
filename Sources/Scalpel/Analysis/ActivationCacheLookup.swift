import Foundation

extension ActivationCache {
    /// The activation at `hook` for prompt `prompt` of the batch, or
    /// `ActivationCacheError.notCaptured`: a lookup never crashes on a force-unwrap.
    public func require(_ hook: HookPoint, prompt: Int) throws -> Tensor {
        guard let values = self[hook], values.indices.contains(prompt) else { throw ActivationCacheError.notCaptured(hook.name) }
        return values[prompt]
    }

    /// The activations at `hook`, one per prompt of the batch (see `require(_:prompt:)`).
    public func require(_ hook: HookPoint) throws -> [Tensor] {
        guard let values = self[hook] else { throw ActivationCacheError.notCaptured(hook.name) }
        return values
    }
}
