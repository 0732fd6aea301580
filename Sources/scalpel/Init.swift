import ArgumentParser
import Foundation
import Scalpel

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a GPT-2 checkpoint with random weights in the hub layout (for benchmarks and tests).")

    @Option(help: "A GPT-2 shape: \(GPT2Config.presets.keys.sorted().joined(separator: ", ")).") var config = "gpt2"
    @Option(parsing: .unconditional, help: "Random seed.") var seed: UInt64 = 0
    @Option(name: .shortAndLong, help: "Output folder.") var output: String
    @Option(help: "Copy vocab.json and merges.txt from this folder (default: GPT-2's own, shipped with Scalpel).") var tokenizer: String?
    @Flag(help: "Replace a checkpoint folder that Scalpel wrote before.") var force = false

    func validate() throws {
        _ = try shape()
    }

    func shape() throws -> GPT2Config {
        guard let shape = GPT2Config.presets[config] else {
            throw ValidationError("unknown --config \"\(config)\"; choose one of \(GPT2Config.presets.keys.sorted().joined(separator: ", ")).")
        }
        return shape
    }

    func run() throws {
        let shape = try shape()
        let destination = try OutputTarget(output, kind: .folder, overwrite: force)
        try RandomCheckpoint.write(config: shape, seed: seed, to: destination,
                                   tokenizerFolder: tokenizer.map { URL(fileURLWithPath: $0) } ?? ModelLocation.gpt2TokenizerURL)
        print("wrote a random \(config) checkpoint (seed \(seed)) to \(output)")
    }
}
