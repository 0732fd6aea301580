import Foundation

/// The study's prompt families (sections 3 and 6), built in and usable by name (`--dataset months`).
public enum StudyDatasets {
    public static let all: [PromptDataset] = [digits, numberWords, months, days, letters, namesIsDigit, wordIsDigit, ioi]

    public static func named(_ name: String) -> PromptDataset? { all.first { $0.name == name } }

    /// Sliding windows of four over `elements`, each followed by its next element (wrapping around).
    static func windows(_ elements: [String], starts: Range<Int>) -> [PromptItem] {
        starts.map { start in
            PromptDataset.window((0..<5).map { elements[(start + $0) % elements.count] })
        }
    }

    public static let digits = PromptDataset(
        name: "digits", description: "\"1 2 3 4\" → \" 5\" … \"20 21 22 23\" → \" 24\"",
        items: windows((1...24).map(String.init), starts: 0..<20))

    public static let numberWords = PromptDataset(
        name: "number-words", description: "\"one two three four\" → \" five\" … \"six seven eight nine\" → \" ten\"",
        items: windows(SequenceFamilies.numberWords.items, starts: 0..<6))

    public static let months = PromptDataset(
        name: "months", description: "\"January February March April\" → \" May\" … \"August … November\" → \" December\"",
        items: windows(SequenceFamilies.months.items, starts: 0..<8))

    /// Days are cyclic: the seven windows of four, from Sunday's to Saturday's (which wraps to " Wednesday").
    public static let days = PromptDataset(
        name: "days", description: "\"Sunday Monday Tuesday Wednesday\" → \" Thursday\" and the other 6 windows of four (cyclic)",
        items: windows(["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"], starts: 0..<7))

    /// The study's seven letter prompts (GPT-2 small completes few others).
    public static let letters = PromptDataset(
        name: "letters", description: "\"a b c d\" → \" e\" and the study's 6 other letter windows",
        items: [0, 1, 2, 5, 7, 8, 9].map { start in
            PromptDataset.window((0..<5).map { String(UnicodeScalar(UInt8(97 + start + $0))) })
        })

    /// "Adam is 1. Bob is 2. Claire is 3. Don is 4. Eve is" → " 5": the same names, numbers shifted (section 6).
    public static let namesIsDigit = PromptDataset(
        name: "names-is-digit", description: "\"Adam is 1. Bob is 2. Claire is 3. Don is 4. Eve is\" → \" 5\" (numbers 1–20)",
        items: (1...16).map { n in isPrompt(subjects: ["Adam", "Bob", "Claire", "Don", "Eve"], values: Array(n..<(n + 5))) })

    /// "One is 1. Two is 2. Three is 3. Four is 4. Five is" → " 5", capitalised and lowercase.
    public static let wordIsDigit = PromptDataset(
        name: "word-is-digit", description: "\"One is 1. Two is 2. Three is 3. Four is 4. Five is\" → \" 5\" (and lowercase)",
        items: [true, false].flatMap { capitalised in
            (1...6).map { n in
                let words = (n..<(n + 5)).map { SequenceFamilies.numberWords.items[$0 - 1] }
                return isPrompt(subjects: capitalised ? words.map(\.capitalized) : words, values: Array(n..<(n + 5)))
            }
        })


    /// The IOI control of the study's section 7 (ARENA's template): "When John and Mary went to the
    /// store, John gave a drink to" → " Mary"; corrupted by swapping who gives, "…, Mary gave a
    /// drink to" → " John", so the logit difference is IOI's logit(IO) − logit(S). One template:
    /// every prompt has the same token count, for per-position means.
    public static let ioi = PromptDataset(
        name: "ioi", description: "\"When John and Mary went to the store, John gave a drink to\" → \" Mary\" (indirect object; 16 name pairs)",
        items: ioiPairs.enumerated().map { index, pair in
            let (a, b) = pair
            let place = ["store", "park", "school", "market"][index % 4], object = ["drink", "book", "ring", "bag"][(index / 4) % 4]
            func text(_ giver: String) -> String { "When \(a) and \(b) went to the \(place), \(giver) gave a \(object) to" }
            return PromptItem(prompt: text(a), answer: " \(b)", corruptedPrompt: text(b), corruptedAnswer: " \(a)")
        })

    static let ioiPairs: [(String, String)] = [
        ("John", "Mary"), ("Tom", "James"), ("Dan", "Sarah"), ("Paul", "Anna"), ("Mary", "John"), ("James", "Tom"),
        ("Sarah", "Dan"), ("Anna", "Paul"), ("Mark", "Lisa"), ("Kate", "David"), ("Lisa", "Mark"), ("David", "Kate"),
        ("John", "Sarah"), ("Mary", "Tom"), ("James", "Anna"), ("Paul", "Lisa"),
    ]

    /// "A is 1. B is 2. C is 3. D is 4. E is" → " 5"; corrupted by repeating the fourth value: "D is 3."
    static func isPrompt(subjects: [String], values: [Int]) -> PromptItem {
        func text(_ shown: [Int]) -> String {
            (0..<4).map { "\(subjects[$0]) is \(shown[$0])." }.joined(separator: " ") + " \(subjects[4]) is"
        }
        var corrupted = values
        corrupted[3] = values[2]
        return PromptItem(prompt: text(values), answer: " \(values[4])",
                          corruptedPrompt: text(corrupted), corruptedAnswer: " \(values[3])")
    }
}
