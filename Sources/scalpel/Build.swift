import ArgumentParser
import Foundation
import Scalpel

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build the model a surgery plan describes and save it as an HDF5 model archive.")

    @Argument(help: "The plan file (YAML).") var planFile: String
    @Option(help: "Base model, overriding the plan's `base:`.") var model: String?
    @Option(name: .shortAndLong, help: "Output archive (default outputs/models/NAME.h5).") var output: String?
    @Flag(help: "Overwrite an existing output file.") var force = false

    func run() throws {
        let plan = try Plan.load(URL(fileURLWithPath: planFile))
        let destination = try output.map { try OutputTarget($0, overwrite: force, content: .hdf5) }
            ?? OutputTarget.named(plan.name, in: "outputs/models", content: .hdf5, field: "\(plan.origin): name", overwrite: force)
        let (base, others) = try Surgeon.loadModels(for: plan, baseOverride: model)
        let built = try Surgeon.build(plan, base: base, others: others)
        try ModelArchive.write(built, plan: plan, to: destination, commandLine: CommandLine.arguments.joined(separator: " "))
        print(ModelSummary(built).text)
        print("\nwrote \(destination.path)")
    }
}

struct ExportHF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-hf",
        abstract: "Write a model (an archive, a plan's model, or a checkpoint) as a Hugging Face GPT-2 folder.")

    @Argument(help: "A .h5 archive or checkpoint folder (or use --plan / --blocks).") var source: String?
    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .shortAndLong, help: "Output folder.") var output: String
    @Flag(help: "Replace an output folder that Scalpel wrote before.") var force = false

    func run() throws {
        let destination = try OutputTarget(output, kind: .folder, overwrite: force)
        var options = modelOptions
        if let source { options.model = source }
        let model = try options.load()
        try HuggingFaceExport.write(model, to: destination)
        print("wrote \(destination.path): load it with GPT2LMHeadModel.from_pretrained(\"\(destination.path)\")")
    }
}
