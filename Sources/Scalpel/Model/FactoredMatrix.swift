import Foundation

/// A low-rank matrix M = A · B kept as its two factors (TransformerLens's `FactoredMatrix`), such as a
/// head's OV circuit W_V[h] · W_O[h]: A [d_model, d_head], B [d_head, d_model]. Applying it costs
/// two thin products, and the d_model × d_model matrix is only built by `dense()`.
public struct FactoredMatrix: Sendable {
    /// A [rows, inner]
    public var left: Tensor
    /// B [inner, columns]
    public var right: Tensor

    public init(left: Tensor, right: Tensor) {
        precondition(left.rank == 2 && right.rank == 2 && left.shape[1] == right.shape[0],
                     "factors \(left.shape) and \(right.shape) do not multiply")
        self.left = left
        self.right = right
    }

    /// [rows, columns] of the product.
    public var shape: [Int] { [left.shape[0], right.shape[1]] }

    /// x · A · B for row vectors x [n, rows] (or one vector [rows]): (x · A) first, [n, inner], then · B.
    /// The result has x's leading shape with the last axis `columns`.
    public func apply(to x: Tensor) -> Tensor {
        let rows = left.shape[0], inner = left.shape[1], columns = right.shape[1]
        precondition(x.shape.last == rows, "a vector of width \(x.shape.last ?? 0) applied to a \(shape) matrix")
        let n = x.count / rows
        var middle = Tensor(zeros: [n, inner]), out = Tensor(zeros: Array(x.shape.dropLast()) + [columns])
        Kernels.matmul(x.pointer, left.pointer, bias: nil, into: middle.mutablePointer, m: n, k: rows, n: inner)
        Kernels.matmul(middle.pointer, right.pointer, bias: nil, into: out.mutablePointer, m: n, k: inner, n: columns)
        return out
    }

    /// A · B [rows, columns], built only when asked for (d_model² floats for a head's circuit).
    public func dense() -> Tensor {
        let rows = left.shape[0], inner = left.shape[1], columns = right.shape[1]
        var product = Tensor(zeros: [rows, columns])
        Kernels.matmul(left.pointer, right.pointer, bias: nil, into: product.mutablePointer, m: rows, k: inner, n: columns)
        return product
    }
}
