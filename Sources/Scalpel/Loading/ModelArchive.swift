import Foundation

/// The HDF5 model archive of DESIGN.md: config, tokenizer, weights in TransformerLens shapes, each
/// block's source, parts and head count, the plan text and the source checkpoints' SHA-256.
///
/// Weights are stored exactly (float32), so a loaded archive gives bit-identical logits to the
/// graph it was saved from. Head and neuron ablations are stored as the values written in place of
/// the unit (`attn/ablated_heads` + `attn/ablation_values`, `mlp/ablated_neurons` + `mlp/ablation_values`:
/// a pooled mean, or zeros). Format version 2 adds, only when some ablation needs them,
/// `…/ablation_positions` (one `AblationPositions` text per ablated unit: `all`, `0,-1`, `all but -1`)
/// and `…/ablation_means_per_position/{unit}` ([pos, d_head] for a head, [pos] for a neuron); an
/// archive without them is written as version 1, which older Scalpels read. Version 3 adds, only when
/// an MLP's whole output is mean-ablated (a circuit's `mlps:`), the group `mlp/output` holding that
/// ablation as one unit d_model wide (`ablated_outputs` = [0], `ablation_values` [1, d_model],
/// `ablation_positions`, `ablation_means_per_position/0` [pos, d_model]); a version-2 reader would
/// silently drop it, so it refuses version 3.
/// With tied embeddings `unembed/W_U` is a hard link to `embed/W_E` and so has W_E's shape [d_vocab, d_model]
/// (root attribute `tied_embeddings` = 1); untied, it is [d_model, d_vocab] as in TransformerLens.
///
/// Archives are read as untrusted input: every attribute, shape, index and size is checked against
/// the model before it is used, links that leave the file are refused, and the weights must match
/// the checksum written with them (`WeightChecksum`).
public enum ModelArchive {
    public static let format = "scalpel-model"
    /// The newest version this Scalpel writes and reads; it reads every version from 1.
    public static let formatVersion = 3
    /// Root attribute holding `WeightChecksum` of the weights, as hex.
    static let checksumAttribute = "weights_sha256"
    /// Scalpel's own paths are at most four levels deep (`blocks/3/attn/W_Q`); links deeper than
    /// this are never opened, so they need not be checked.
    static let deepestPath = 6

    public static func write(_ model: Model, plan: Plan?, to target: OutputTarget, commandLine: String = "") throws {
        let source = try provenance(model)
        let config = model.config.huggingFaceJSON.merging(["n_layer": model.blocks.count]) { $1 }
        let attributes = [
            "config": String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self),
            "name": model.name, "plan": plan?.text ?? "", "source": source, "command_line": commandLine,
        ]
        try ScalpelFile.write(to: target, format: format, attributes: attributes) { root in
            var checksum = WeightChecksum()
            checksum.add(WeightChecksum.configEntry, text: attributes["config"]!)
            func put(_ group: HDF5Group, _ name: String, _ tensor: Tensor, _ dims: [String]) throws {
                let dataset = try group.writeTensor(name, tensor, dims: dims)
                checksum.add(dataset.path, tensor)
            }
            try root.setAttribute("format_version", formatVersion(of: model))
            try root.setAttribute("tied_embeddings", model.tiedEmbeddings ? 1 : 0)
            if let tokenizer = model.tokenizer {
                let group = try root.createGroup("tokenizer")
                try group.writeStrings("vocab", [String(decoding: tokenizer.vocabData, as: UTF8.self)])
                try group.writeStrings("merges", [String(decoding: tokenizer.mergesData, as: UTF8.self)])
            }
            let embed = try root.createGroup("embed")
            try put(embed, "W_E", model.embedding.tokens, ["d_vocab", "d_model"])
            try put(embed, "W_pos", model.embedding.positions, ["n_ctx", "d_model"])
            let blocks = try root.createGroup("blocks")
            for (i, block) in model.blocks.enumerated() {
                try writeBlock(block, into: try blocks.createGroup("\(i)"), dModel: model.dModel, checksum: &checksum)
            }
            let lnFinal = try root.createGroup("ln_final")
            try put(lnFinal, "w", model.lnFinal.weight, ["d_model"])
            try put(lnFinal, "b", model.lnFinal.bias, ["d_model"])
            let unembed = try root.createGroup("unembed")
            if model.tiedEmbeddings {
                try root.linkHard(from: "embed/W_E", to: "unembed/W_U")
            } else {
                try put(unembed, "W_U", model.unembed.transposed(), ["d_model", "d_vocab"])
            }
            try root.setAttribute(checksumAttribute, checksum.hex)
        }
    }

    static func writeBlock(_ block: Block, into group: HDF5Group, dModel d: Int, checksum: inout WeightChecksum) throws {
        func put(_ group: HDF5Group, _ name: String, _ tensor: Tensor, _ dims: [String]) throws {
            let dataset = try group.writeTensor(name, tensor, dims: dims)
            checksum.add(dataset.path, tensor)
        }
        try group.setAttribute("source", block.source.description)
        if let attention = block.attention {
            let h = attention.nHead, dh = attention.dHead
            try group.setAttribute("n_heads", h)
            let ln = try group.createGroup("ln1")
            try put(ln, "w", attention.ln.weight, ["d_model"])
            try put(ln, "b", attention.ln.bias, ["d_model"])
            let attn = try group.createGroup("attn")
            let weights = attention.weights
            for (projection, name) in zip(HeadProjection.allCases, ["Q", "K", "V"]) {
                try put(attn, "W_\(name)", weights.weight(projection), ["n_heads", "d_model", "d_head"])
                try put(attn, "b_\(name)", weights.bias(projection), ["n_heads", "d_head"])
            }
            try put(attn, "W_O", weights.W_O, ["n_heads", "d_head", "d_model"])
            try put(attn, "b_O", weights.b_O, ["d_model"])
            try writeAblations(attention.headAblations, into: attn, units: "heads", width: dh, checksum: &checksum)
        }
        if let mlp = block.mlp {
            if let lnParams = mlp.ln {
                let ln = try group.createGroup("ln2")
                try put(ln, "w", lnParams.weight, ["d_model"])
                try put(ln, "b", lnParams.bias, ["d_model"])
            }
            let g = try group.createGroup("mlp")
            try put(g, "W_in", mlp.inWeight, ["d_model", "d_mlp"])
            try put(g, "b_in", mlp.inBias, ["d_mlp"])
            try put(g, "W_out", mlp.outWeight, ["d_mlp", "d_model"])
            try put(g, "b_out", mlp.outBias, ["d_model"])
            try writeAblations(mlp.neuronAblations, into: g, units: "neurons", width: 1, checksum: &checksum)
            if let output = mlp.outputAblation {
                try writeAblations([0: output], into: try g.createGroup("output"), units: "outputs", width: d, widthName: "d_model", checksum: &checksum)
            }
        }
        try group.setAttribute("parts", block.parts)
    }

    /// Version 1 unless some ablation is restricted to positions or holds per-position means, which
    /// a version-1 reader would silently drop.
    static func formatVersion(of model: Model) -> Int {
        if model.blocks.contains(where: { $0.mlp?.outputAblation != nil }) { return 3 }
        let ablations = model.blocks.flatMap { Array(($0.attention?.headAblations ?? [:]).values) + Array(($0.mlp?.neuronAblations ?? [:]).values) }
        return ablations.allSatisfy(\.isPositionIndependent) ? 1 : 2
    }

    /// A half's ablations (`units` is "heads" or "neurons", `width` d_head or 1): indices, the
    /// pooled mean or zeros of each, and, when needed, positions and per-position means.
    static func writeAblations(_ ablations: [Int: Ablation], into group: HDF5Group, units: String, width: Int,
                               widthName: String = "d_head", checksum: inout WeightChecksum) throws {
        let ablated = ablations.keys.sorted()
        guard !ablated.isEmpty else { return }
        let indices = ablated.map { Int32($0) }
        checksum.add(try group.writeInt32("ablated_\(units)", indices, shape: [indices.count], dims: ["ablated"]).path, indices)
        let pooled = ablated.flatMap { unit -> [Float] in
            if case let .pooledMean(vector) = ablations[unit]!.replacement { return vector.scalars }
            return Array(repeating: 0, count: width)  // zero, or per-position (stored below)
        }
        let values = Tensor(shape: width == 1 ? [ablated.count] : [ablated.count, width], data: pooled)
        checksum.add(try group.writeTensor("ablation_values", values, dims: width == 1 ? ["ablated"] : ["ablated", widthName]).path, values)
        if ablated.contains(where: { ablations[$0]!.positions != .all }) {
            let texts = ablated.map { ablations[$0]!.positions.description }
            let dataset = try group.writeStrings("ablation_positions", texts, dims: ["ablated"])
            checksum.add(dataset.path, text: texts.joined(separator: "\n"))
        }
        let perPosition = ablated.compactMap { unit -> (Int, Tensor)? in
            if case let .perPositionMean(values) = ablations[unit]!.replacement { return (unit, values) }
            return nil
        }
        guard !perPosition.isEmpty else { return }
        let means = try group.createGroup("ablation_means_per_position")
        for (unit, values) in perPosition {
            let stored = width == 1 ? values.reshaped([values.shape[0]]) : values
            checksum.add(try means.writeTensor("\(unit)", stored, dims: width == 1 ? ["pos"] : ["pos", widthName]).path, stored)
        }
    }

    public static func load(from url: URL) throws -> Model {
        let path = url.path
        let file: HDF5File
        do { file = try HDF5File.open(url) } catch let HDF5Error.notHDF5(_, reason) {
            throw ArchiveError.corrupt(path: path, reason: reason)
        }
        defer { try? file.close() }
        // Weights stored contiguously are borrowed from a memory map of the file, as with safetensors.
        let map = try MappedFile(path: path, missingHint: "The archive disappeared while Scalpel was reading it.")
        let root = try file.root
        guard root.hasAttribute("format"), try root.stringAttribute("format") == format else {
            throw ArchiveError.notAnArchive(path: path)
        }
        let version = try root.intAttribute("format_version")
        guard (1...formatVersion).contains(version) else { throw ArchiveError.version(path: path, found: version, supported: formatVersion) }
        do {
            if let link = try root.firstLinkNotHard(maxDepth: deepestPath) {
                throw ArchiveError.linkNotHard(path: path, object: link.path, kind: link.kind)
            }
            let configText = try root.stringAttribute("config")
            guard let json = (try? JSONSerialization.jsonObject(with: Data(configText.utf8))) as? [String: Any] else {
                throw ArchiveError.corrupt(path: path, reason: "the config attribute is not a JSON object")
            }
            var config = try GPT2Config(json: json, path: "\(path) (config attribute)")
            let d = config.nEmbd
            var reader = Reader(map: map, path: path)
            var tokenizer: GPT2Tokenizer?
            if root.exists("tokenizer") {
                tokenizer = try GPT2Tokenizer(vocabData: Data(try reader.text(root, "tokenizer/vocab").utf8),
                                              mergesData: Data(try reader.text(root, "tokenizer/merges").utf8),
                                              origin: "\(path) (tokenizer)")
                try tokenizer?.checkFits(vocabSize: config.vocabSize, path: "\(path) (tokenizer/vocab)")
            }
            let embedding = Embedding(tokens: try reader.read(root, "embed/W_E", [config.vocabSize, d]),
                                      positions: try reader.read(root, "embed/W_pos", [config.nPositions, d]))
            let blockNames = try root.group("blocks").childNames()
            guard blockNames == (0..<blockNames.count).map(String.init).sorted() else {
                throw ArchiveError.corrupt(path: path, reason: "/blocks holds \(blockNames.prefix(5).joined(separator: ", ")), not groups numbered 0…n-1")
            }
            let blocks = try (0..<blockNames.count).map { try readBlock(try root.group("blocks/\($0)"), config: config, reader: &reader) }
            config.nLayer = blocks.count
            let tied = try tiedEmbeddings(root, path: path)
            let unembed = tied ? embedding.tokens : try reader.read(root, "unembed/W_U", [d, config.vocabSize]).transposed()
            let lnFinal = LayerNormParams(weight: try reader.read(root, "ln_final/w", [d]), bias: try reader.read(root, "ln_final/b", [d]))
            var checksum = reader.checksum
            checksum.add(WeightChecksum.configEntry, text: configText)
            try verifyChecksum(root, computed: checksum, path: path)
            LoadWarnings.reportNonFinite(reader.nonFinite, in: path)
            return Model(config: config, name: (try? root.stringAttribute("name")) ?? url.deletingPathExtension().lastPathComponent,
                         embedding: embedding, blocks: blocks, lnFinal: lnFinal, unembed: unembed, tiedEmbeddings: tied,
                         tokenizer: tokenizer, sourceFiles: [url])
        } catch let error as HDF5Error {
            throw ArchiveError.corrupt(path: path, reason: error.message)
        }
    }

    static func readBlock(_ group: HDF5Group, config: GPT2Config, reader: inout Reader) throws -> Block {
        let path = reader.path
        guard let source = BlockSource(try group.stringAttribute("source")) else {
            throw ArchiveError.corrupt(path: path, reason: "\(group.path): attribute source is not of the form model:L<layer>")
        }
        let parts = try BlockParts(group, path: path)
        try parts.checkAgainstGroups(of: group, path: path)
        let d = config.nEmbd
        var block = Block(attention: nil, mlp: nil, source: source)
        if parts.attention {
            let h = try headCount(group, config: config, path: path), dh = d / h
            // Read in the order of earlier versions, so a damaged archive reports the same dataset first.
            let inputs = try ["Q", "K", "V"].map { try reader.read(group, "attn/W_\($0)", [h, d, dh]) }
            let biases = try ["Q", "K", "V"].map { try reader.read(group, "attn/b_\($0)", [h, dh]) }
            let ln = LayerNormParams(weight: try reader.read(group, "ln1/w", [d]), bias: try reader.read(group, "ln1/b", [d]))
            let weights = AttentionWeights(W_Q: inputs[0], W_K: inputs[1], W_V: inputs[2], b_Q: biases[0], b_K: biases[1], b_V: biases[2],
                                           W_O: try reader.read(group, "attn/W_O", [h, dh, d]), b_O: try reader.read(group, "attn/b_O", [d]))
            var attention = AttentionHalf(ln: ln, weights: weights)
            attention.headAblations = try reader.ablations(group, "attn", units: "heads", below: h, width: dh, maxPositions: config.nPositions)
            block.attention = attention
        }
        if parts.mlp {
            let inner = try reader.length(group, "mlp/b_in")
            var mlp = MLPHalf(
                ln: parts.mlpLayerNorm ? LayerNormParams(weight: try reader.read(group, "ln2/w", [d]), bias: try reader.read(group, "ln2/b", [d])) : nil,
                inWeight: try reader.read(group, "mlp/W_in", [d, inner]), inBias: try reader.read(group, "mlp/b_in", [inner]),
                outWeight: try reader.read(group, "mlp/W_out", [inner, d]), outBias: try reader.read(group, "mlp/b_out", [d]))
            mlp.neuronAblations = try reader.ablations(group, "mlp", units: "neurons", below: inner, width: 1, maxPositions: config.nPositions)
            if group.exists("mlp/output") {
                mlp.outputAblation = try reader.ablations(group, "mlp/output", units: "outputs", below: 1, width: d, maxPositions: config.nPositions)[0]
            }
            block.mlp = mlp
        }
        return block
    }

    /// The block's `n_heads` attribute (archives written before it existed: the config's n_head),
    /// which must divide d_model.
    static func headCount(_ group: HDF5Group, config: GPT2Config, path: String) throws -> Int {
        guard group.hasAttribute("n_heads") else { return config.nHead }
        let heads = try group.intAttribute("n_heads")
        guard heads >= 1, config.nEmbd % heads == 0 else {
            throw ArchiveError.invalidAttribute(path: path, object: group.path, attribute: "n_heads", value: "\(heads)",
                                                expected: "a divisor of d_model (\(config.nEmbd))")
        }
        return heads
    }

    /// `tied_embeddings` (absent means untied): when 1, `unembed/W_U` must be `embed/W_E` itself.
    static func tiedEmbeddings(_ root: HDF5Group, path: String) throws -> Bool {
        guard root.hasAttribute("tied_embeddings") else { return false }
        let value = try root.intAttribute("tied_embeddings")
        guard value == 0 || value == 1 else {
            throw ArchiveError.invalidAttribute(path: path, object: "/", attribute: "tied_embeddings", value: "\(value)", expected: "0 or 1")
        }
        if value == 1, root.exists("unembed/W_U"), try root.objectInfo("unembed/W_U").address != root.objectInfo("embed/W_E").address {
            throw ArchiveError.corrupt(path: path, reason: "tied_embeddings is 1 but /unembed/W_U is not a link to /embed/W_E")
        }
        return value == 1
    }

    static func verifyChecksum(_ root: HDF5Group, computed: WeightChecksum, path: String) throws {
        guard root.hasAttribute(checksumAttribute) else {
            LoadWarnings.report("\(path): the archive has no weights checksum (written by Scalpel before \(checksumAttribute) existed), "
                                + "so damage to its weights cannot be detected. Rebuild it with `scalpel build` to add one.")
            return
        }
        let stored = try root.stringAttribute(checksumAttribute)
        guard stored == computed.hex else { throw ArchiveError.checksumMismatch(path: path) }
    }

    /// Which halves a block has, from its `parts` attribute: `attn`, `mlp` or `mlp.noln`, comma-separated.
    struct BlockParts {
        var attention = false, mlp = false, mlpLayerNorm = false

        init(_ group: HDF5Group, path: String) throws {
            let text = try group.stringAttribute("parts")
            var seen: Set<Substring> = []
            for part in text.split(separator: ",", omittingEmptySubsequences: false) where !text.isEmpty {
                guard ["attn", "mlp", "mlp.noln"].contains(part), seen.insert(part).inserted, !(part.hasPrefix("mlp") && mlp) else {
                    throw ArchiveError.invalidAttribute(path: path, object: group.path, attribute: "parts", value: "\"\(text)\"",
                                                        expected: "\"attn,mlp\", \"attn\", \"mlp\", \"mlp.noln\", \"attn,mlp.noln\" or \"\"")
                }
                if part == "attn" { attention = true } else { mlp = true; mlpLayerNorm = part == "mlp" }
            }
        }

        init(attention: Bool, mlp: Bool, mlpLayerNorm: Bool) {
            self.attention = attention; self.mlp = mlp; self.mlpLayerNorm = mlpLayerNorm
        }

        var text: String { [attention ? "attn" : nil, mlp ? (mlpLayerNorm ? "mlp" : "mlp.noln") : nil].compactMap { $0 }.joined(separator: ",") }

        /// A damaged `parts` that is still a valid value ("attn" for "attn,mlp") would silently drop
        /// weights the block holds: the attribute must name exactly the halves whose groups exist.
        func checkAgainstGroups(of group: HDF5Group, path: String) throws {
            let held = BlockParts(attention: group.exists("attn"), mlp: group.exists("mlp"), mlpLayerNorm: group.exists("ln2"))
            guard held.text == text else {
                throw ArchiveError.invalidAttribute(path: path, object: group.path, attribute: "parts", value: "\"\(text)\"",
                                                    expected: "\"\(held.text)\", the halves the block's groups hold")
            }
        }
    }

    /// Reads datasets of an untrusted archive: each must exist, have the shape the model implies,
    /// fit in the file (so a few-KB file cannot make Scalpel allocate terabytes) and keep its
    /// values in this file. Float32 datasets stored contiguously and aligned are borrowed from the
    /// file's memory map. Records every dataset in `checksum` and counts non-finite values.
    struct Reader {
        let map: MappedFile
        let path: String
        private(set) var checksum = WeightChecksum()
        private(set) var nonFinite: [(name: String, count: Int, total: Int)] = []

        init(map: MappedFile, path: String) {
            self.map = map
            self.path = path
        }

        mutating func read(_ group: HDF5Group, _ name: String, _ shape: [Int]) throws -> Tensor {
            let dataset = try open(group, name)
            let found = try dataset.shape
            guard found == shape else {
                throw ArchiveError.corrupt(path: path, reason: "\(dataset.path) has shape \(found), expected \(shape)")
            }
            let count = try elementCount(dataset, shape)
            let tensor: Tensor
            if let base = map.base, let offset = dataset.contiguousFloat32Offset,
               offset % 4 == 0, count > 0, offset <= map.count - count * 4 {
                let pointer = (base + offset).assumingMemoryBound(to: Float.self)
                tensor = Tensor(shape: shape, storage: FloatStorage(borrowing: pointer, count: count, owner: map))
            } else {
                tensor = try dataset.readTensor()
            }
            checksum.add(dataset.path, tensor)
            let bad = LoadWarnings.nonFiniteCount(tensor)
            if bad > 0 { nonFinite.append((String(dataset.path.dropFirst()), bad, count)) }
            return tensor
        }

        /// The length of a one-dimensional dataset (the MLP width, from `mlp/b_in`).
        func length(_ group: HDF5Group, _ name: String) throws -> Int {
            let dataset = try open(group, name)
            let shape = try dataset.shape
            guard shape.count == 1, shape[0] >= 1 else {
                throw ArchiveError.corrupt(path: path, reason: "\(dataset.path) has shape \(shape), expected one dimension of at least 1")
            }
            return shape[0]
        }

        /// Ablated head or neuron indices with their values dataset beside them, or nil when the
        /// block has no ablations: distinct, each in 0..<`bound`.
        mutating func ablatedUnits(_ group: HDF5Group, _ name: String, below bound: Int, unit: String) throws -> [Int]? {
            let valuesName = name.split(separator: "/").dropLast().joined(separator: "/") + "/ablation_values"
            switch (group.exists(name), group.exists(valuesName)) {
            case (false, false): return nil
            case (true, true): break
            case (let hasIndices, _):
                let (present, missing) = hasIndices ? (name, valuesName) : (valuesName, name)
                throw ArchiveError.corrupt(path: path, reason: "\(group.path)/\(present) is present but \(group.path)/\(missing) is missing")
            }
            let dataset = try open(group, name)
            let shape = try dataset.shape
            guard shape.count == 1 else {
                throw ArchiveError.corrupt(path: path, reason: "\(dataset.path) has shape \(shape), expected one dimension")
            }
            _ = try elementCount(dataset, shape)
            let values = try dataset.readInt32().values
            var seen: Set<Int32> = []
            for value in values {
                guard value >= 0, value < bound else {
                    throw ArchiveError.indexOutOfRange(path: path, dataset: dataset.path, value: Int(value), count: bound, unit: unit)
                }
                guard seen.insert(value).inserted else {
                    throw ArchiveError.corrupt(path: path, reason: "\(dataset.path) lists \(unit.dropLast()) \(value) twice")
                }
            }
            checksum.add(dataset.path, values)
            return values.map(Int.init)
        }

        /// The ablations `writeAblations` stored in a half's group `half` ("attn" or "mlp").
        mutating func ablations(_ group: HDF5Group, _ half: String, units: String, below bound: Int, width: Int,
                                maxPositions: Int) throws -> [Int: Ablation] {
            guard let ablated = try ablatedUnits(group, "\(half)/ablated_\(units)", below: bound, unit: units) else { return [:] }
            let values = try read(group, "\(half)/ablation_values", width == 1 ? [ablated.count] : [ablated.count, width])
            var positions = [AblationPositions](repeating: .all, count: ablated.count)
            let positionsName = "\(half)/ablation_positions"
            if group.exists(positionsName) {
                let dataset = try open(group, positionsName)
                guard try dataset.shape == [ablated.count] else {
                    throw ArchiveError.corrupt(path: path, reason: "\(dataset.path) has shape \(try dataset.shape), expected [\(ablated.count)]")
                }
                let texts = try dataset.readStrings()
                positions = try texts.map { text in
                    guard let parsed = AblationPositions(text) else {
                        throw ArchiveError.corrupt(path: path, reason: "\(dataset.path) holds \"\(text.prefix(40))\", expected all, positions such as 0,-1, or all but 0,-1")
                    }
                    return parsed
                }
                checksum.add(dataset.path, text: texts.joined(separator: "\n"))
            }
            var perPosition: [Int: Tensor] = [:]
            let meansName = "\(half)/ablation_means_per_position"
            if group.exists(meansName) {
                let means = try group.group(meansName)
                for name in try means.childNames() {
                    guard let unit = Int(name), ablated.contains(unit) else {
                        throw ArchiveError.corrupt(path: path, reason: "\(means.path)/\(name) names no ablated \(units.dropLast())")
                    }
                    let length = try firstDimension(means, name, in: 1...maxPositions)
                    let stored = try read(means, name, width == 1 ? [length] : [length, width])
                    perPosition[unit] = stored.reshaped([length, width])
                }
            }
            var ablations: [Int: Ablation] = [:]
            for (n, unit) in ablated.enumerated() {
                let pooled = values.rows(n..<(n + 1)).reshaped([width])
                let replacement: Ablation.Replacement = perPosition[unit].map { .perPositionMean($0) }
                    ?? (pooled.buffer.allSatisfy { $0 == 0 } ? .zero : .pooledMean(pooled))
                ablations[unit] = Ablation(replacement, at: positions[n])
            }
            return ablations
        }

        /// The first dimension of a dataset, which must lie in `range` (a per-position mean's length).
        func firstDimension(_ group: HDF5Group, _ name: String, in range: ClosedRange<Int>) throws -> Int {
            let dataset = try open(group, name)
            guard let first = try dataset.shape.first, range.contains(first) else {
                throw ArchiveError.corrupt(path: path, reason: "\(dataset.path) has shape \(try dataset.shape), expected \(range.lowerBound)…\(range.upperBound) positions first")
            }
            return first
        }

        /// The one string of a tokenizer dataset.
        func text(_ group: HDF5Group, _ name: String) throws -> String {
            let dataset = try open(group, name)
            let shape = try dataset.shape
            guard shape == [1] else {
                throw ArchiveError.corrupt(path: path, reason: "\(dataset.path) has shape \(shape), expected one string")
            }
            return try dataset.readStrings()[0]
        }

        private func open(_ group: HDF5Group, _ name: String) throws -> HDF5Dataset {
            guard group.exists(name) else { throw ArchiveError.corrupt(path: path, reason: "\(group.path)/\(name) is missing") }
            let dataset = try group.dataset(name)
            if try dataset.storesValuesInOtherFiles {
                throw ArchiveError.linkNotHard(path: path, object: dataset.path, kind: "a dataset whose values are stored in other files")
            }
            return dataset
        }

        /// The number of elements of `shape`, when its 4-byte values fit in the file.
        private func elementCount(_ dataset: HDF5Dataset, _ shape: [Int]) throws -> Int {
            var bytes = 4
            for dimension in shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: dimension)
                guard dimension >= 0, !overflow, product <= map.count else {
                    throw ArchiveError.datasetLargerThanFile(path: path, dataset: dataset.path, shape: shape, fileSize: map.count)
                }
                bytes = product
            }
            return bytes / 4
        }
    }

    /// JSON naming each source file and its SHA-256.
    static func provenance(_ model: Model) throws -> String {
        let files = try model.sourceFiles.map { ["path": $0.path, "sha256": try SHA256.hex(ofFile: $0)] }
        let data = try JSONSerialization.data(withJSONObject: ["model": model.name, "files": files], options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

/// SHA-256 of an archive's weights and config, whatever order they are written or read in: the
/// SHA-256 of, for each entry in sorted name order, its name, a NUL byte and the SHA-256 of its
/// bytes. The entries are every weight dataset, named by its path (`/embed/W_E`), with its
/// little-endian values, and `/@config` with the config attribute's UTF-8 text (it decides how the
/// weights are used: epsilon, BOS). The tokenizer is not covered; a tied `unembed/W_U` is
/// `embed/W_E` and counted once. In Python, with `paths` the float and int datasets outside
/// `/tokenizer` (and `/unembed/W_U` when tied):
///
///     entries = {p: f[p][()].tobytes() for p in paths} | {"/@config": f.attrs["config"].encode()}
///     digest = hashlib.sha256()
///     for name in sorted(entries):
///         digest.update(name.encode() + b"\0" + hashlib.sha256(entries[name]).digest())
struct WeightChecksum {
    static let configEntry = "/@config"
    private enum Values { case floats(Tensor), bytes([UInt8]) }
    private var datasets: [(path: String, values: Values)] = []

    mutating func add(_ path: String, _ tensor: Tensor) { datasets.append((path, .floats(tensor))) }
    mutating func add(_ path: String, _ values: [Int32]) { datasets.append((path, .bytes(values.withUnsafeBytes { Array($0) }))) }
    mutating func add(_ name: String, text: String) { datasets.append((name, .bytes(Array(text.utf8)))) }

    /// The checksum as hex. The datasets are hashed in parallel (each on one core), which halves
    /// the check on two cores; it is the bulk of an archive's load time.
    var hex: String {
        let sorted = datasets.sorted { $0.path < $1.path }
        var digests = [[UInt8]](repeating: [], count: sorted.count)
        digests.withUnsafeMutableBufferPointer { slots in
            DispatchQueue.concurrentPerform(iterations: sorted.count) { i in
                switch sorted[i].values {
                case let .floats(tensor): slots[i] = SHA256.digest(UnsafeRawBufferPointer(tensor.buffer))
                case let .bytes(values): slots[i] = values.withUnsafeBytes { SHA256.digest($0) }
                }
            }
        }
        var bytes: [UInt8] = []
        for (dataset, digest) in zip(sorted, digests) { bytes += Array(dataset.path.utf8) + [0] + digest }
        return SHA256.hex(of: Data(bytes))
    }
}

public enum ArchiveError: UserFacingError, Equatable {
    case notAnArchive(path: String)
    case version(path: String, found: Int, supported: Int)
    case corrupt(path: String, reason: String)
    case invalidAttribute(path: String, object: String, attribute: String, value: String, expected: String)
    case indexOutOfRange(path: String, dataset: String, value: Int, count: Int, unit: String)
    case datasetLargerThanFile(path: String, dataset: String, shape: [Int], fileSize: Int)
    /// A link or a dataset that would make Scalpel read another file (or follow a soft link).
    case linkNotHard(path: String, object: String, kind: String)
    case checksumMismatch(path: String)

    static let rebuild = "Rebuild it with `scalpel build`."

    public var message: String {
        switch self {
        case let .notAnArchive(path):
            return "\(path): not a Scalpel model archive (no format = \"scalpel-model\" attribute). Build one with `scalpel build PLAN -o FILE.h5`."
        case let .version(path, found, supported):
            return "\(path): archive format version \(found), but this Scalpel reads versions 1–\(supported). Rebuild the archive with this version (`scalpel build`)."
        case let .corrupt(path, reason):
            return "\(path): damaged or truncated archive (\(reason)). \(Self.rebuild)"
        case let .invalidAttribute(path, object, attribute, value, expected):
            return "\(path): attribute \"\(attribute)\" of \(object) is \(value); expected \(expected). The archive is damaged. \(Self.rebuild)"
        case let .indexOutOfRange(path, dataset, value, count, unit):
            return "\(path): \(dataset) holds \(value), but the block has \(count) \(unit) (0…\(count - 1)). The archive is damaged. \(Self.rebuild)"
        case let .datasetLargerThanFile(path, dataset, shape, fileSize):
            return "\(path): \(dataset) declares shape \(shape), more float32 values than the whole file (\(fileSize) bytes) can hold. The archive is damaged or truncated. \(Self.rebuild)"
        case let .linkNotHard(path, object, kind):
            return "\(path): \(object) is \(kind). Scalpel archives keep everything in one file and reads nothing outside it. \(Self.rebuild)"
        case let .checksumMismatch(path):
            return "archive \(path): weights do not match their checksum (damaged file); rebuild it with scalpel build."
        }
    }
}

/// The version written into files Scalpel makes.
public enum ScalpelVersion {
    public static let string = "0.1.0"
}
