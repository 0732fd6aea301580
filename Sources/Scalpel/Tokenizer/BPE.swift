/// The merge table of a BPE vocabulary and the merge loop, done as Hugging Face `tokenizers`
/// does it (`Word::merge_all`): a min-heap of candidate pairs ordered by (rank, position), so
/// the lowest-ranked pair merges first and equal pairs merge left to right. This gives the
/// same result as OpenAI's encoder.py for GPT-2's merges, and O(n log n) time on long pieces
/// (a 20,000-letter run without spaces is one piece).
struct BPEMerges {
    private struct Merge { let rank: UInt32; let id: Int32 }
    private var table: [UInt64: Merge] = [:]

    /// `pairs[rank]` merges into `ids[rank]`. A pair listed twice keeps its later rank, as in
    /// Hugging Face (its merge map is built by inserting the list in order).
    init(pairs: [(Int32, Int32)], ids: [Int32]) {
        table.reserveCapacity(pairs.count)
        for (rank, (pair, id)) in zip(pairs, ids).enumerated() {
            table[Self.key(pair.0, pair.1)] = Merge(rank: UInt32(rank), id: id)
        }
    }

    private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// Merges adjacent symbols until no adjacent pair has a merge.
    func apply(_ input: [Int32]) -> [Int32] {
        let n = input.count
        if n < 2 { return input }
        var symbols = input
        var next = Array(1...n)          // index of the following live symbol; n at the end
        var previous = Array(-1..<(n - 1))
        var heap = MinHeap()
        func push(_ i: Int) {  // the pair starting at live symbol i, if it has a merge
            let j = next[i]
            guard j < n, let merge = table[Self.key(symbols[i], symbols[j])] else { return }
            heap.push(UInt64(merge.rank) << 32 | UInt64(i))
        }
        for i in 0..<(n - 1) { push(i) }
        while let top = heap.pop() {
            let i = Int(top & 0xFFFF_FFFF)
            let j = next[i]
            // Entries go stale when a neighbour merged first: check the pair is still there.
            guard symbols[i] >= 0, j < n, let merge = table[Self.key(symbols[i], symbols[j])],
                  merge.rank == UInt32(top >> 32) else { continue }
            symbols[i] = merge.id
            symbols[j] = -1
            next[i] = next[j]
            if next[i] < n { previous[next[i]] = i }
            if previous[i] >= 0 { push(previous[i]) }
            push(i)
        }
        return symbols.filter { $0 >= 0 }
    }
}

/// A binary min-heap of UInt64 keys (rank in the high half, position in the low half).
private struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ item: UInt64) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if items[parent] <= items[child] { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                if left >= items.count { break }
                let right = left + 1
                let child = right < items.count && items[right] < items[left] ? right : left
                if items[parent] <= items[child] { break }
                items.swapAt(parent, child)
                parent = child
            }
        }
        return top
    }
}
