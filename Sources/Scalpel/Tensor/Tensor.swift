import Foundation

/// Float32 storage that is either owned (allocated here) or borrowed from a memory-mapped file.
/// Borrowed storage is never written to: `Tensor` copies it on the first mutation.
public final class FloatStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// Keeps a memory map (or any other owner of `pointer`) alive; nil when we own the memory.
    private let owner: AnyObject?

    /// `count` zeros, or with `zeroed: false` `count` floats the caller writes before it reads them
    /// (a kernel's output: zeroing a batch's 50 MB activations at every step cost 5% of a circuit
    /// sweep). An allocation that fails (a memory limit) goes to `MemoryBudget.exhausted` instead of
    /// stopping the process the way a Swift allocation does.
    public init(count: Int, zeroed: Bool = true) {
        let (bytes, overflow) = Swift.max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard !overflow, let memory = zeroed ? calloc(bytes, 1) : malloc(bytes) else { MemoryBudget.exhausted(bytes: overflow ? Int.max : bytes) }
        pointer = memory.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        self.count = count
        owner = nil
    }

    /// Borrow `count` floats at `pointer`, kept valid by `owner`.
    public init(borrowing pointer: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = UnsafeMutablePointer(mutating: pointer)
        self.count = count
        self.owner = owner
    }

    var isBorrowed: Bool { owner != nil }

    deinit { if owner == nil { free(pointer) } }
}

/// A dense row-major float32 tensor with value semantics (copy on write).
public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    private var storage: FloatStorage

    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    public init(zeros shape: [Int]) {
        self.shape = shape
        storage = FloatStorage(count: shape.reduce(1, *))
    }

    /// A tensor of `shape` whose every value the caller writes before reading any (a copy's or a
    /// kernel's output), without zeroing it first.
    init(uninitialized shape: [Int]) {
        self.shape = shape
        storage = FloatStorage(count: shape.reduce(1, *), zeroed: false)
    }

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
        self.shape = shape
        storage = FloatStorage(count: data.count)
        data.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: data.count) }
    }

    public init(shape: [Int], storage: FloatStorage) {
        precondition(shape.reduce(1, *) == storage.count)
        self.shape = shape
        self.storage = storage
    }

    public init(shape: [Int], fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        self.init(zeros: shape)
        fill(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    public var scalars: [Float] { Array(buffer) }

    public var buffer: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: storage.pointer, count: storage.count)
    }

    /// Read-only pointer; valid while this tensor (or a copy of it) is alive.
    public var pointer: UnsafePointer<Float> { UnsafePointer(storage.pointer) }

    public mutating func withMutableBuffer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: mutablePointer, count: storage.count))
    }

    /// A writable pointer, after copying borrowed or shared storage. Valid while this tensor is alive and unchanged.
    public var mutablePointer: UnsafeMutablePointer<Float> {
        mutating get {
            if storage.isBorrowed || !isKnownUniquelyReferenced(&storage) {
                let copy = FloatStorage(count: storage.count)
                copy.pointer.update(from: storage.pointer, count: storage.count)
                storage = copy
            }
            return storage.pointer
        }
    }

    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    public subscript(flat index: Int) -> Float { storage.pointer[index] }

    /// Rows `range` of a tensor viewed as [shape[0], rest...] (a copy).
    public func rows(_ range: Range<Int>) -> Tensor {
        let width = shape.dropFirst().reduce(1, *)
        var out = Tensor(uninitialized: [range.count] + shape.dropFirst())
        out.withMutableBuffer { dst in
            dst.baseAddress!.update(from: storage.pointer + range.lowerBound * width, count: range.count * width)
        }
        return out
    }

    /// Whether two tensors hold the same shape and bit-identical values.
    public func isIdentical(to other: Tensor) -> Bool {
        shape == other.shape && memcmp(storage.pointer, other.storage.pointer, count * 4) == 0
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}

extension Tensor {
    /// Overwrites rows starting at `start` (viewing self as [shape[0], rest…]) with `block`'s values.
    public mutating func replaceRows(at start: Int, with block: Tensor) {
        let width = shape.dropFirst().reduce(1, *)
        precondition(block.count % max(width, 1) == 0 && start * width + block.count <= count,
                     "a hook intervention changed the shape of its activation (got \(block.shape))")
        withMutableBuffer { dst in (dst.baseAddress! + start * width).update(from: block.pointer, count: block.count) }
    }
}

extension Tensor {
    /// Columns `range` of a matrix [rows, cols] (a copy).
    public func columns(_ range: Range<Int>) -> Tensor {
        let rows = shape[0], cols = count / max(rows, 1)
        var out = Tensor(uninitialized: [rows, range.count])
        let dst = out.mutablePointer
        for r in 0..<rows { (dst + r * range.count).update(from: pointer + r * cols + range.lowerBound, count: range.count) }
        return out
    }

    /// The listed rows of a tensor viewed as [shape[0], rest…] (a copy), stacked in order.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        let width = shape.dropFirst().reduce(1, *)
        var out = Tensor(uninitialized: [indices.count] + shape.dropFirst())
        let dst = out.mutablePointer
        for (i, row) in indices.enumerated() { (dst + i * width).update(from: pointer + row * width, count: width) }
        return out
    }
}

extension Tensor {
    /// Tensors [n_i, width] stacked along their rows into one [Σ n_i, width] (a copy).
    public static func concatenatingRows(_ parts: [Tensor], width: Int) -> Tensor {
        var out = Tensor(uninitialized: [parts.reduce(0) { $0 + $1.count } / max(width, 1), width])
        var offset = 0
        let dst = out.mutablePointer
        for part in parts {
            (dst + offset).update(from: part.pointer, count: part.count)
            offset += part.count
        }
        return out
    }

    /// The transpose of a matrix [rows, cols]: [cols, rows] (a copy).
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() takes a matrix, not \(shape)")
        let rows = shape[0], cols = shape[1]
        return Tensor(shape: [cols, rows]) { out in
            let src = pointer
            for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = src[r * cols + c] } }
        }
    }
}
