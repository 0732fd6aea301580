/// Vocabulary pieces looked up by their UTF-8 bytes, exactly, as Hugging Face's maps do. Swift's
/// String hashing and `==` would apply Unicode canonical equivalence ("e\u{301}" equal to "é"), and
/// hashing 50,000 non-ASCII keys that way was most of the time it took to load the tokenizer.
///
/// All pieces live back to back in one buffer; an open-addressing table (linear probing, FNV-1a
/// hash, at most half full) holds their entry numbers.
struct PieceTable {
    private var bytes: [UInt8] = []
    /// Entry e's bytes are bytes[starts[e] ..< starts[e + 1]].
    private var starts: [Int] = [0]
    /// By entry: its id.
    private(set) var ids: [Int] = []
    /// Per slot: entry + 1, or 0 when empty. The count is a power of two.
    private var slots: [Int32]

    /// A table that can hold `capacity` pieces.
    init(capacity: Int) {
        var size = 16
        while size < 2 * capacity { size *= 2 }
        slots = [Int32](repeating: 0, count: size)
        ids.reserveCapacity(capacity)
        starts.reserveCapacity(capacity + 1)
    }

    var count: Int { ids.count }

    /// The bytes of entry `e`, in the order pieces were inserted.
    func piece(entry e: Int) -> ArraySlice<UInt8> { bytes[starts[e]..<starts[e + 1]] }

    /// Adds `piece` with `id`. Its callers' keys are unique already (the strict JSON parser refuses
    /// a repeated key, a dictionary has none), so inserting a piece twice, or more than `capacity`
    /// pieces, is a programming error.
    mutating func insert(_ piece: String, id: Int) {
        var utf8 = piece
        utf8.withUTF8 { piece in
            precondition(2 * (count + 1) <= slots.count, "PieceTable over capacity")
            let slot = findSlot(piece)
            precondition(slots[slot] == 0, "piece inserted twice")
            bytes.append(contentsOf: piece)
            starts.append(bytes.count)
            ids.append(id)
            slots[slot] = Int32(count)
        }
    }

    /// The id of `piece`, or nil.
    func id(of piece: UnsafeBufferPointer<UInt8>) -> Int? {
        let slot = findSlot(piece)
        return slots[slot] == 0 ? nil : ids[Int(slots[slot]) - 1]
    }

    func id(of piece: String) -> Int? {
        var utf8 = piece
        return utf8.withUTF8 { id(of: $0) }
    }

    /// The slot holding `piece`, or the empty slot where it would go.
    private func findSlot(_ piece: UnsafeBufferPointer<UInt8>) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in piece { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        while slots[slot] != 0 {
            let e = Int(slots[slot]) - 1
            if starts[e + 1] - starts[e] == piece.count, bytes[starts[e]..<starts[e + 1]].elementsEqual(piece) { return slot }
            slot = (slot + 1) & mask
        }
        return slot
    }
}
