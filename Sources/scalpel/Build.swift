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
        let destination = URL(fileURLWithPath: output ?? "outputs/models/\(plan.name).h5")
        if FileManager.default.fileExists(atPath: destination.path) && !force { throw FileError.exists(path: destination.path) }
        let (base, others) = try Surgeon.loadModels(for: plan, baseOverride: model)
        let built = try Surgeon.build(plan, base: base, others: others)
        try ModelArchive.write(built, plan: plan, to: destination, overwrite: force,
                               commandLine: CommandLine.arguments.joined(separator: " "))
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
    @Flag(help: "Overwrite an existing output folder.") var force = false

    func run() throws {
        var options = modelOptions
        if let source { options.model = source }
        let model = try options.load()
        let destination = URL(fileURLWithPath: output)
        try HuggingFaceExport.write(model, to: destination, overwrite: force)
        print("wrote \(destination.path): load it with GPT2LMHeadModel.from_pretrained(\"\(destination.path)\")")
    }
}
