import Foundation

/// One of the three input projections of an attention head, in the order they sit in HF `c_attn`.
public enum HeadProjection: Int, CaseIterable, Sendable {
    case query, key, value
}

/// An attention half's weights in TransformerLens shapes, every head stacked on the first axis:
/// W_Q, W_K, W_V [n_heads, d_model, d_head], b_Q, b_K, b_V [n_heads, d_head],
/// W_O [n_heads, d_head, d_model], b_O [d_model].
///
/// The archive stores exactly these tensors, and `AttentionHalf(ln:weights:)` fuses them back into
/// the HF layout the forward pass multiplies with, so each layout is converted in one place.
public struct AttentionWeights: Sendable {
    public var W_Q: Tensor
    public var W_K: Tensor
    public var W_V: Tensor
    public var b_Q: Tensor
    public var b_K: Tensor
    public var b_V: Tensor
    public var W_O: Tensor
    public var b_O: Tensor

    public var nHead: Int { W_O.shape[0] }

    public func weight(_ projection: HeadProjection) -> Tensor {
        switch projection { case .query: return W_Q; case .key: return W_K; case .value: return W_V }
    }

    public func bias(_ projection: HeadProjection) -> Tensor {
        switch projection { case .query: return b_Q; case .key: return b_K; case .value: return b_V }
    }
}

extension AttentionHalf {
    /// W_Q[h], W_K[h] or W_V[h] [d_model, d_head]: the head's columns of the fused `qkvWeight`.
    /// A copy, since in HF's layout a head's columns are strided (every row of [d_model, 3·d_model]
    /// holds d_head of them).
    public func inputWeight(_ projection: HeadProjection, head: Int) -> Tensor {
        checkHead(head)
        let d = outBias.count, first = projection.rawValue * d + head * dHead
        // c_attn [d, 3d] column (projection·d + head·d_head + j)  →  W[i, j]
        return qkvWeight.columns(first..<(first + dHead))
    }

    /// b_Q[h], b_K[h] or b_V[h] [d_head] (a copy of the head's part of `qkvBias`).
    public func inputBias(_ projection: HeadProjection, head: Int) -> Tensor {
        checkHead(head)
        let d = outBias.count, first = projection.rawValue * d + head * dHead
        return Tensor(shape: [dHead]) { $0.baseAddress!.update(from: qkvBias.pointer + first, count: dHead) }
    }

    /// W_O[h] [d_head, d_model]: rows h·d_head ..< (h+1)·d_head of `outWeight` (a copy; they are contiguous).
    public func outputWeight(head: Int) -> Tensor {
        checkHead(head)
        return outWeight.rows((head * dHead)..<((head + 1) * dHead))
    }

    /// Every head's weights in TransformerLens shapes. W_O and b_O share storage with `outWeight`
    /// and `outBias` (W_O is `outWeight` reshaped); W_Q, W_K, W_V and their biases are copies.
    public var weights: AttentionWeights {
        func stacked(_ projection: HeadProjection) -> (weight: Tensor, bias: Tensor) {
            let d = outBias.count
            var weight = Tensor(zeros: [nHead, d, dHead]), bias = Tensor(zeros: [nHead, dHead])
            for head in 0..<nHead {
                weight.replaceRows(at: head, with: inputWeight(projection, head: head))
                bias.replaceRows(at: head, with: inputBias(projection, head: head))
            }
            return (weight, bias)
        }
        let (q, k, v) = (stacked(.query), stacked(.key), stacked(.value))
        return AttentionWeights(W_Q: q.weight, W_K: k.weight, W_V: v.weight, b_Q: q.bias, b_K: k.bias, b_V: v.bias,
                                W_O: outWeight.reshaped([nHead, dHead, outBias.count]), b_O: outBias)
    }

    /// An attention half from weights in TransformerLens shapes: W_Q, W_K, W_V are fused into HF's
    /// `qkvWeight` [d_model, 3·d_model] (a copy); `outWeight` is W_O reshaped to [d_model, d_model]
    /// and `outBias` is b_O (both sharing storage). No head is ablated.
    public init(ln: LayerNormParams, weights: AttentionWeights) {
        let h = weights.nHead, d = weights.b_O.count, dh = d / h
        var qkv = Tensor(zeros: [d, 3 * d]), bias = Tensor(zeros: [3 * d])
        let out = qkv.mutablePointer, biasOut = bias.mutablePointer
        for projection in HeadProjection.allCases {
            let w = weights.weight(projection).pointer, b = weights.bias(projection).pointer
            for head in 0..<h {
                let column = projection.rawValue * d + head * dh
                // W[head, i, j]  →  c_attn [d, 3d] column (projection·d + head·d_head + j)
                for i in 0..<d { (out + i * 3 * d + column).update(from: w + (head * d + i) * dh, count: dh) }
                (biasOut + column).update(from: b + head * dh, count: dh)
            }
        }
        self.init(ln: ln, qkvWeight: qkv, qkvBias: bias, outWeight: weights.W_O.reshaped([d, d]), outBias: weights.b_O, nHead: h)
    }

    /// The OV circuit of a head: x ↦ x · W_V[h] · W_O[h], what the head writes to the residual stream
    /// for a source vector x (after ln1) when it attends only to x, leaving out b_V[h] · W_O[h] and b_O.
    public func ovCircuit(head: Int) -> FactoredMatrix {
        FactoredMatrix(left: inputWeight(.value, head: head), right: outputWeight(head: head))
    }

    /// The QK circuit of a head: W_Q[h] · W_K[h]ᵀ [d_model, d_model], so that a query x and a key y
    /// (both after ln1) score x · W_Q[h] · W_K[h]ᵀ · yᵀ before the biases and the 1/sqrt(d_head).
    public func qkCircuit(head: Int) -> FactoredMatrix {
        FactoredMatrix(left: inputWeight(.query, head: head), right: inputWeight(.key, head: head).transposed())
    }

    private func checkHead(_ head: Int) {
        precondition(head >= 0 && head < nHead, "head \(head) of an attention half with \(nHead) heads")
    }
}
