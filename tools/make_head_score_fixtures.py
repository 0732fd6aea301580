#!/usr/bin/env python3
"""Generate Scalpel's copy-score, next-score and writing-scatter fixtures with PyTorch.

For `scalpel heads --copy-scores` and `--writing` (DESIGN.md "Causal analyses"), following the
study's own notebook code (wlg100/numseqcont_circuit_expms, "copy scores/numseq_headFNs_expms.ipynb":
`get_copy_scores` and `scatter_attention_and_contribution` / `get_prob_dot` + `scipy.stats.pearsonr`)
on the Hugging Face weights (`GPT2LMHeadModel`, raw: no fold_ln, no centring) of the fixture models
tiny-hub and odd-head. The fixture models have no tokenizer: prompts are token ids, BOS = vocab - 1.

Copy score of head (L, h), per prompt, at every position t but the BOS:
  r = blocks.0.hook_resid_post[t]              (HF hidden_states[1])
  v = ln_1 of block L (weight and bias)(r) @ W_V[h] + b_V[h]
  o = sign * v @ W_O[h]                        (no b_O)
  logits = ln_f(o) @ wte.T                     (torch.topk(logits, 5))
  copy hit: the token at t is in the top 5; next hit: the token at t + 1 (the answer at the last
  position) is. The study uses block 1's ln1 on EasyTransformer weights with LayerNorm folded
  (the weights then sit in W_V of block L, so any ln1 is the plain normalisation); on raw weights the
  equivalent is block L's own ln_1, as DESIGN.md says.
Writing scatter of head (L, h), per prompt, at every position s but the BOS:
  x = attentions[L][h, last, s]; y = (z[last, h] @ W_O[h]) . wte[token(s)]   (no LayerNorm, no b_O)
  then scipy.stats.pearsonr(x, y) over all points (r, two-sided p-value).
Also scipy.special.betainc and pearson p-values for the regularized incomplete beta of Scalpel.

Writes Tests/ScalpelTests/Fixtures/heads/cases.json. Single-threaded, deterministic:
`python3 tools/make_head_score_fixtures.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tl_reference as tr  # noqa: E402
import scipy  # noqa: E402
import scipy.special  # noqa: E402
import scipy.stats  # noqa: E402
import torch  # noqa: E402

OUT = tr.FIXTURES / "heads" / "cases.json"
K = 5
EXTRA_PROMPTS = 6   # seeded random prompts (with answers) besides the 8 clean and corrupted items
EXTRA_LENGTH = 7    # tokens after BOS


def prompts_of(fm: tr.FixtureModel, vocab: int, seed: int):
    """(prompt ids with BOS first, answer) pairs: clean items, corrupted items, seeded random prompts."""
    out = [(it.clean, it.answer) for it in fm.items] + [(it.corrupted, it.corrupted_answer) for it in fm.items]
    g = torch.Generator().manual_seed(seed)
    for _ in range(EXTRA_PROMPTS):
        ids = torch.randint(0, vocab - 1, (EXTRA_LENGTH + 1,), generator=g).tolist()
        out.append(([vocab - 1] + ids[:-1], ids[-1]))
    return out


@torch.no_grad()
def head_weights(hf, L, h):
    blk = hf.transformer.h[L]
    d = hf.config.n_embd
    dh = d // hf.config.n_head
    W = blk.attn.c_attn.weight  # [d, 3d] (Conv1D)
    b = blk.attn.c_attn.bias
    W_V = W[:, 2 * d + h * dh: 2 * d + (h + 1) * dh]
    b_V = b[2 * d + h * dh: 2 * d + (h + 1) * dh]
    W_O = blk.attn.c_proj.weight[h * dh:(h + 1) * dh, :]  # [dh, d]
    return W_V, b_V, W_O


@torch.no_grad()
def copy_scores(hf, prompts, first, sign):
    n_layer, n_head = hf.config.n_layer, hf.config.n_head
    wte = hf.transformer.wte.weight
    copy = [[0] * n_head for _ in range(n_layer)]
    nxt = [[0] * n_head for _ in range(n_layer)]
    tops = {}
    positions = 0
    for ids, answer in prompts:
        ids = ids[first:]
        out = hf(torch.tensor([ids]), output_hidden_states=True)
        resid = out.hidden_states[1][0]  # blocks.0.hook_resid_post [pos, d]
        start = 1 if first == 0 else 0   # the BOS is never scored
        for t in range(start, len(ids)):
            positions += 1
        for L in range(n_layer):
            z0 = hf.transformer.h[L].ln_1(resid)
            for h in range(n_head):
                W_V, b_V, W_O = head_weights(hf, L, h)
                v = torch.einsum("pb,bc->pc", z0, W_V) + b_V
                o = sign * torch.einsum("ph,hd->pd", v, W_O)
                logits = hf.transformer.ln_f(o) @ wte.T
                for t in range(start, len(ids)):
                    top = torch.topk(logits[t], K).indices.tolist()
                    following = ids[t + 1] if t + 1 < len(ids) else answer
                    copy[L][h] += int(ids[t] in top)
                    nxt[L][h] += int(following in top)
                    tops.setdefault(f"{L}.{h}", []).append(top)
    return {"positions": positions, "copy_hits": copy, "next_hits": nxt, "top": tops}


@torch.no_grad()
def writing(hf, prompts, first):
    n_layer, n_head = hf.config.n_layer, hf.config.n_head
    d = hf.config.n_embd
    dh = d // n_head
    wte = hf.transformer.wte.weight
    out = {}
    for L in range(n_layer):
        captured = {}
        hook = hf.transformer.h[L].attn.c_proj.register_forward_hook(lambda m, inp, o: captured.__setitem__("z", inp[0]))
        per_prompt = []
        for ids, _ in prompts:
            ids = ids[first:]
            res = hf(torch.tensor([ids]), output_attentions=True)
            per_prompt.append((ids, res.attentions[L][0], captured["z"][0].reshape(len(ids), n_head, dh)))
        hook.remove()
        for h in range(n_head):
            _, _, W_O = head_weights(hf, L, h)
            xs, ys = [], []
            start = 1 if first == 0 else 0
            for ids, att, z in per_prompt:
                last = len(ids) - 1
                written = z[last, h] @ W_O
                for s in range(start, len(ids)):
                    xs.append(float(att[h, last, s]))
                    ys.append(float(written @ wte[ids[s]]))
            r, p = scipy.stats.pearsonr(xs, ys)
            out[f"{L}.{h}"] = {"attention": xs, "projection": ys, "r": float(r), "p_value": float(p)}
    return out


def main() -> int:
    torch.set_num_threads(1)
    cases = {"description": __doc__.split("\n\n")[0], "k": K, "versions": {**tr.versions(), "scipy": scipy.__version__},
             "models": {}}
    for index, fm in enumerate(tr.MODELS):
        hf = tr.load_hf(fm.folder)
        vocab = hf.config.vocab_size
        prompts = prompts_of(fm, vocab, 777 + index)
        entry = {"bos": vocab - 1, "prompts": [{"tokens": ids, "answer": a} for ids, a in prompts]}
        # first = 0: prompts as given (BOS first, never scored); first = 1: the BOS dropped (--no-bos),
        # every position scored.
        for name, first in (("bos", 0), ("no_bos", 1)):
            entry[name] = {"copy": copy_scores(hf, prompts, first, 1), "copy_negative": copy_scores(hf, prompts, first, -1),
                           "writing": writing(hf, prompts, first)}
        cases["models"][fm.name] = entry
    # The regularized incomplete beta and Pearson p-values straight from scipy.
    betas = []
    for a, b, x in [(0.5, 0.5, 0.3), (1.0, 0.5, 0.9), (5.0, 0.5, 0.2), (39.0, 0.5, 0.95), (150.0, 0.5, 0.999),
                    (2.5, 3.5, 0.5), (10.0, 0.5, 0.01), (0.7, 20.0, 0.03)]:
        betas.append({"a": a, "b": b, "x": x, "value": float(scipy.special.betainc(a, b, x))})
    pvalues = []
    g = torch.Generator().manual_seed(5)
    for n, r in [(3, 0.5), (5, -0.9), (10, 0.1), (80, 0.45), (388, 0.81), (388, 0.05), (1000, -0.2), (30, 0.999)]:
        dist = scipy.stats.beta(n / 2 - 1, n / 2 - 1, loc=-1, scale=2)
        pvalues.append({"n": n, "r": r, "p_value": float(2 * dist.sf(abs(r)))})
    cases["betainc"] = betas
    cases["pearson_p"] = pvalues
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(tr.dump_json(cases))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
