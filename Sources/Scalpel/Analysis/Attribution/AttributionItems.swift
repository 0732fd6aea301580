import Foundation

/// One prompt of a direct logit attribution, as token ids: the direction it is read along is
/// W_U[answer] − W_U[foil], or W_U[answer] alone when there is no foil (one token's direction).
public struct AttributionItem: Sendable, Equatable {
    public var tokens: [Int]
    public var answer: Int
    public var foil: Int?

    public init(tokens: [Int], answer: Int, foil: Int?) {
        self.tokens = tokens; self.answer = answer; self.foil = foil
    }
}

/// The prompts of an attribution, checked once: not empty, and either every item has a foil or none
/// (one direction kind per run, so the total and the actual value mean one thing).
public struct AttributionItems: Sendable {
    public var items: [AttributionItem]
    /// Where the items came from (a dataset's name), for messages and files.
    public var name: String

    public init(name: String, items: [AttributionItem]) throws {
        guard !items.isEmpty else { throw AttributionError.empty(dataset: name) }
        guard items.allSatisfy({ $0.foil == nil }) || items.allSatisfy({ $0.foil != nil }) else {
            throw AttributionError.mixedDirections(dataset: name)
        }
        self.name = name
        self.items = items
    }

    /// Tokenises a dataset's prompts. With `token`, every item is read along that token's
    /// unembedding (answers and foils are not needed); otherwise every item needs an answer and a
    /// corrupted answer (its foil). Corrupted prompts are not used.
    public init(dataset: PromptDataset, model: Model, token: String? = nil, prependBOS: Bool = true) throws {
        let tokenID = try token.map { try model.answerID($0) }
        var items: [AttributionItem] = []
        for (index, item) in dataset.items.enumerated() {
            let tokens = try model.encode(prompt: item.prompt, prependBOS: prependBOS)
            if let tokenID {
                items.append(AttributionItem(tokens: tokens, answer: tokenID, foil: nil))
                continue
            }
            guard let answer = item.answer else { throw AttributionError.missingField(dataset: dataset.name, item: index, field: "answer") }
            guard let foil = item.corruptedAnswer else {
                throw AttributionError.missingField(dataset: dataset.name, item: index, field: "corrupted_answer")
            }
            items.append(AttributionItem(tokens: tokens, answer: try model.answerID(answer), foil: try model.answerID(foil)))
        }
        try self.init(name: dataset.name, items: items)
    }

    /// Whether the direction is answer − foil (else one token's).
    public var isContrast: Bool { items[0].foil != nil }
}

public enum AttributionError: UserFacingError, Equatable {
    case empty(dataset: String)
    case missingField(dataset: String, item: Int, field: String)
    case mixedDirections(dataset: String)
    case layerOutOfRange(layer: Int, layers: Int)
    case noMLP(layer: Int)
    case noUnits(grouping: String)
    case layersNeeded
    case cachedLayer
    case noGrouping
    case repeatedGrouping(String)

    public var message: String {
        switch self {
        case let .empty(dataset): return "Dataset \(dataset) has no items."
        case let .missingField(dataset, item, field):
            return "Dataset \(dataset), item \(item + 1) has no \(field). Attribution along answer − corrupted answer needs, per item, an answer and a corrupted_answer; or give --token T to attribute along one token's unembedding."
        case let .mixedDirections(dataset):
            return "Dataset \(dataset): some items have a foil and some do not; attribute along answer − foil for all of them or along one token for all."
        case let .layerOutOfRange(layer, layers):
            return "Layer \(layer) is out of range: the model has \(layers) blocks (layers 0…\(max(layers - 1, 0)))."
        case let .noMLP(layer): return "Layer \(layer) has no MLP, so it has no neurons to attribute."
        case let .noUnits(grouping): return "The model has no \(grouping)s to attribute to."
        case .layersNeeded: return "--by neuron needs --layers (e.g. --layers 9,10): the layers whose neurons to attribute."
        case .noGrouping: return "Give at least one grouping: --by component, head, neuron or layer (several separated by commas)."
        case let .repeatedGrouping(name): return "--by names \(name) twice; give each grouping once (e.g. --by component,head,neuron)."
        case .cachedLayer:
            return "--by layer applies ln_final recomputed on each accumulated residual (the logit lens), so its last row is the model's own value; --ln cached does not apply to it."
        }
    }
}
