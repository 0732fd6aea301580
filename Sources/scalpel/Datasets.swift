import ArgumentParser
import Foundation
import Scalpel

struct Datasets: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in prompt families (usable as --dataset NAME) and the item families of `paths`.")

    @Argument(help: "Show the prompts of one family (a name or a file).") var name: String?
    @Option(help: "table or json.") var format: SummaryFormat = .table

    func run() throws {
        if let name {
            let family = try DatasetFiles.resolve(name)
            if format == .json { try Output.json(family); return }
            print("\(family.name): \(family.description)")
            for item in family.items {
                var line = "  \(item.prompt)  →  \(Output.shown(item.answer ?? "?"))"
                if let corrupted = item.corruptedPrompt { line += "    corrupted: \(corrupted)  →  \(Output.shown(item.corruptedAnswer ?? "?"))" }
                print(line)
            }
            return
        }
        if format == .json { try Output.json(StudyDatasets.all); return }
        print("Prompt families (--dataset NAME):")
        for family in StudyDatasets.all {
            print("  " + family.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                  + String(format: "%3d prompts  ", family.items.count) + family.description)
        }
        print("\nItem families (scalpel paths):")
        for family in SequenceFamilies.all {
            print("  " + family.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                  + String(format: "%3d items    ", family.items.count) + family.items.prefix(5).joined(separator: ", ") + ", …")
        }
        print("\nYour own families: --dataset FILE with .yaml/.json ({name, description, items: [{prompt, answer, corrupted_prompt, corrupted_answer}]}),")
        print(".jsonl (one item object per line) or .txt (one prompt per line, optionally a tab and its answer).")
    }
}
