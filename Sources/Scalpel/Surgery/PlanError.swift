import Foundation

/// What can be wrong with what a surgery plan says (its YAML form is checked by `YAMLFileError`).
/// `location` names the file, line and field, e.g. `surgery-plans/l0-7.yaml:3, blocks[1]`, or
/// `--blocks` on the command line.
public enum PlanError: UserFacingError, Equatable {
    case blockSyntax(location: String, entry: String)
    case emptyBlockList(location: String)
    case layerOutOfRange(location: String, entry: String, layer: Int, layers: Int)
    case headOutOfRange(location: String, entry: String, heads: Int)
    case neuronOutOfRange(location: String, entry: String, neurons: Int)
    case unknownModel(location: String, name: String, known: [String])
    case widthMismatch(location: String, model: String, width: Int, baseWidth: Int)
    case unknownDataset(location: String, name: String)
    case datasetNeeded(location: String)
    case means(location: String, reason: String)
    case circuit(location: String, reason: String)
    case badValue(location: String, value: String, expected: String)

    public var message: String {
        switch self {
        case let .blockSyntax(location, entry):
            return "\(location): \"\(entry)\" is not a block. Use \"a-b\", \"i\", \"i.attn\", \"i.mlp\", \"i.mlp.noln\" or \"name:i\" (a model from `models:`)."
        case let .emptyBlockList(location):
            return "\(location): the block list is empty. Give blocks separated by commas, e.g. --blocks \"0-7,9.mlp\"."
        case let .layerOutOfRange(location, entry, layer, layers):
            return "\(location): block \(layer) in \"\(entry)\": model has \(layers) layers (0–\(layers - 1))."
        case let .headOutOfRange(location, entry, heads):
            return "\(location): head \"\(entry)\" is out of range: layers have \(heads) heads (0–\(heads - 1)). Heads are written layer.head, e.g. \"9.1\"."
        case let .neuronOutOfRange(location, entry, neurons):
            return "\(location): neuron \"\(entry)\" is out of range: MLPs have \(neurons) neurons. Neurons are written layer.neuron, e.g. \"9.934\"."
        case let .unknownModel(location, name, known):
            return "\(location): no model named \"\(name)\". Declare it under `models:` (known: \(known.isEmpty ? "none" : known.joined(separator: ", ")))."
        case let .widthMismatch(location, model, width, baseWidth):
            return "\(location): model \"\(model)\" has width \(width) but the base has \(baseWidth); only blocks of models of the same width can be stitched."
        case let .unknownDataset(location, name):
            return "\(location): no dataset \"\(name)\". Use a name from `scalpel datasets` or a dataset file."
        case let .datasetNeeded(location):
            return "\(location): mode \"mean\" needs `dataset:` to average over."
        case let .means(location, reason), let .circuit(location, reason):
            return "\(location): \(reason)"
        case let .badValue(location, value, expected):
            return "\(location): \"\(value)\" is not valid; expected \(expected)."
        }
    }
}
