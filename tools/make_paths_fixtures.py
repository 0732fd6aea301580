#!/usr/bin/env python3
"""Generate Scalpel's vector-path fixtures: representations, leave-one-out directions and path logits.

Reference for `VectorPaths` (Sources/Scalpel/Analysis/VectorPaths.swift) on the fixture checkpoint
`models/tiny-hub` (2 layers, d 64, vocab 1000, BOS 999), with two token-id families and no tokenizer:
family A = ids 10..19, family B = ids 110..119, values 1..10 each.

For every case (a direction and a template):
  - representation of an item at layer L = blocks.{L}.hook_resid_post (the output of HF block L, before
    ln_f for the last block) at the LAST position of the item's prompt;
  - Δ for pair k = mean over the OTHER pairs of (r_target − r_source) (leave-one-out);
  - points x = r_source + α·Δ_k at layer L, judged
      decode-only: lm_head(ln_f(x)), and
      propagated:  the source prompt run through the model with the residual stream after block L
                   replaced by x at the last position only, then the rest of the blocks, ln_f, lm_head
                   (logits of the last position).

Writes, under Tests/ScalpelTests/Fixtures/paths/:
  cases.json             families, layers, alphas, cases (pairs, prompts), which logit rows are stored
  <case>.safetensors     float32 reps/<family>/<L>, delta/<L>/<k>, decode/<L>, propagated/<L>
See Tests/ScalpelTests/Fixtures/paths/README.md. Needs the tiny-hub checkpoint of tools/make_fixtures.py
and reuses helpers of tools/make_surgery_fixtures.py.

No randomness, single-threaded, byte-identical reruns: `python3 tools/make_paths_fixtures.py`.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as mf  # noqa: E402  (sets HF_HUB_OFFLINE=1)
import make_surgery_fixtures as sf  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402

PATHS_DIR = mf.FIXTURES / "paths"
MODEL = "tiny-hub"

FAMILIES = {
    "A": {"ids": list(range(10, 20)), "values": list(range(1, 11))},
    "B": {"ids": list(range(110, 120)), "values": list(range(1, 11))},
}
LAYERS = [0, 1]
ALPHAS = [0.0, 0.5, 1.0, 1.5]
WINDOW = 3  # the sequence template holds up to 3 previous items of the family, then the item

# Logit rows are stored for the first LOGIT_PAIRS pairs of each case only (all alphas, every layer for
# decode, layers before the last for propagated; see the README for the size arithmetic).
LOGIT_PAIRS = 2
SIZE_LIMIT = 400 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    template: str  # "alone" | "sequence"
    kind: str  # "offset" | "next"
    source: str  # family of the source items ("from")
    target: str  # family of the target items ("to")


CASES = [
    Case("offset-A-B-sequence", "sequence", "offset", "A", "B"),
    Case("next-A-sequence", "sequence", "next", "A", "A"),
    Case("offset-A-B-alone", "alone", "offset", "A", "B"),
]


# --------------------------------------------------------------------------------------------------
# Prompts, pairs, directions
# --------------------------------------------------------------------------------------------------

def prompt(template: str, family: str, index: int, bos: int) -> list[int]:
    ids = FAMILIES[family]["ids"]
    if template == "alone":
        return [bos, ids[index]]
    assert template == "sequence", template
    return [bos] + ids[max(0, index - WINDOW):index + 1]


def pairs_of(case: Case) -> list[tuple[int, int]]:
    """(source index, target index): offset aligns equal values, next goes from value v to v + 1."""
    src, tgt = FAMILIES[case.source]["values"], FAMILIES[case.target]["values"]
    if case.kind == "offset":
        return [(i, tgt.index(v)) for i, v in enumerate(src) if v in tgt]
    assert case.kind == "next" and case.source == case.target, case
    return [(i, src.index(v + 1)) for i, v in enumerate(src) if v + 1 in src]


def deltas(pairs, r_src: torch.Tensor, r_tgt: torch.Tensor, leave_one_out: bool = True) -> torch.Tensor:
    """[pairs, d] float32: Δ_k = mean over the other pairs (all pairs without leave-one-out) of r_t − r_s.

    The differences and the mean are taken in float64 from the float32 representations, then rounded
    once to float32 (as VectorPaths.delta, which sums Doubles).
    """
    diffs = torch.stack([r_tgt[j].double() - r_src[i].double() for i, j in pairs])  # [pairs, d]
    out = []
    for k in range(len(pairs)):
        used = [m for m in range(len(pairs)) if not leave_one_out or m != k]
        out.append(diffs[used].sum(0) / len(used))
    return torch.stack(out).to(torch.float32)


# --------------------------------------------------------------------------------------------------
# Model routes
# --------------------------------------------------------------------------------------------------

@contextmanager
def forward_hook(module, fn):
    handle = module.register_forward_hook(fn)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def hf_resid_post(model: GPT2LMHeadModel, ids: list[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Plain HF forward: (outputs of every block [pos, d] captured by forward hooks, logits [pos, vocab])."""
    outs: list[torch.Tensor] = []
    handles = [blk.register_forward_hook(lambda mod, args, out: outs.append(
        (out[0] if isinstance(out, tuple) else out)[0].clone())) for blk in model.transformer.h]
    try:
        logits = model(torch.tensor([ids]), use_cache=False).logits[0]
    finally:
        for h in handles:
            h.remove()
    assert len(outs) == model.config.n_layer
    return outs, logits


@torch.no_grad()
def hf_propagated(model: GPT2LMHeadModel, ids: list[int], layer: int, x: torch.Tensor) -> torch.Tensor:
    """HF forward with block `layer`'s output replaced by x at the last position; last-position logits."""
    def replace(mod, args, out):
        h = (out[0] if isinstance(out, tuple) else out).clone()
        h[0, -1] = x
        return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h

    with forward_hook(model.transformer.h[layer], replace):
        return model(torch.tensor([ids]), use_cache=False).logits[0, -1]


@torch.no_grad()
def manual_propagated(model: GPT2LMHeadModel, ids: list[int], layer: int | None, x: torch.Tensor | None):
    """The same by hand: GPT2Block.forward with an explicit causal mask (transformers 5 needs it).

    Returns (block outputs [pos, d] per block, last-position logits)."""
    tr = model.transformer
    n = len(ids)
    h = tr.wte(torch.tensor([ids])) + tr.wpe(torch.arange(n).unsqueeze(0))
    mask = sf.causal_mask(n)
    outs = []
    for i, blk in enumerate(tr.h):
        h = blk(h, attention_mask=mask)
        if i == layer:
            h = h.clone()
            h[0, -1] = x
        outs.append(h[0].clone())
    return outs, model.lm_head(tr.ln_f(h))[0, -1]


@torch.no_grad()
def decode(model: GPT2LMHeadModel, x: torch.Tensor) -> torch.Tensor:
    """lm_head(ln_f(x)) for rows x [n, d]; ln_f uses each row's own statistics."""
    return model.lm_head(model.transformer.ln_f(x))


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------

def main() -> int:
    torch.set_num_threads(1)  # bit-reproducible reruns
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    model = sf.load(MODEL)
    cfg = model.config
    bos, last_layer = cfg.vocab_size - 1, cfg.n_layer - 1
    assert bos == 999 and cfg.n_layer == 2 and cfg.n_embd == 64 and cfg.vocab_size == 1000
    assert LAYERS == list(range(cfg.n_layer))
    for fam in FAMILIES.values():
        assert bos not in fam["ids"] and len(fam["ids"]) == len(fam["values"])

    PATHS_DIR.mkdir(parents=True, exist_ok=True)
    for old in PATHS_DIR.glob("*.safetensors"):
        old.unlink()

    worst: dict[str, float] = {}
    close = lambda name, a, b, tol: sf.close(name, a, b, tol, worst)  # noqa: E731
    written: list[Path] = []
    cases_json = []

    for case in CASES:
        families = list(dict.fromkeys([case.source, case.target]))
        prompts = {f: [prompt(case.template, f, i, bos) for i in range(len(FAMILIES[f]["ids"]))] for f in families}
        pairs = pairs_of(case)
        tensors: dict[str, torch.Tensor] = {}

        # Representations: HF block outputs (forward hooks) at the last position, checked against the
        # hand-run blocks and, before the last block, against output_hidden_states.
        reps: dict[str, dict[int, torch.Tensor]] = {}
        plain_logits: dict[str, list[torch.Tensor]] = {}
        for f in families:
            rows = {L: [] for L in LAYERS}
            plain_logits[f] = []
            for ids in prompts[f]:
                outs, logits = hf_resid_post(model, ids)
                by_hand, _ = manual_propagated(model, ids, None, None)
                with torch.no_grad():
                    hidden = model(torch.tensor([ids]), use_cache=False, output_hidden_states=True).hidden_states
                for L in LAYERS:
                    close("resid_post: hook = hand-run blocks", outs[L], by_hand[L], 0)
                    if L < last_layer:
                        close("resid_post: hook = hidden_states[L+1]", outs[L], hidden[L + 1][0], 0)
                    rows[L].append(outs[L][-1])
                plain_logits[f].append(logits[-1])
                # The last block's output goes through ln_f and lm_head to the model's logits.
                close("lens(resid_post last) = HF logits", decode(model, outs[last_layer]), logits, 1e-5)
            reps[f] = {L: torch.stack(rows[L]) for L in LAYERS}
            for L in LAYERS:
                tensors[f"reps/{f}/{L}"] = reps[f][L]

        for L in LAYERS:
            r_src, r_tgt = reps[case.source][L], reps[case.target][L]
            delta = deltas(pairs, r_src, r_tgt)
            for k in range(len(pairs)):
                tensors[f"delta/{L}/{k}"] = delta[k]

            # Leave-one-out against the all-pairs mean: (n−1)·Δ_k + (r_t − r_s)_k = n·Δ_all.
            n = len(pairs)
            full = deltas(pairs, r_src, r_tgt, leave_one_out=False)[0].double()
            for k, (i, j) in enumerate(pairs):
                close("leave-one-out identity", (n - 1) * delta[k].double() + (r_tgt[j].double() - r_src[i].double()),
                      n * full, 1e-5)
                # A single-pair direction without leave-one-out: x at α = 1 lands on the target.
                single = deltas([(i, j)], r_src, r_tgt, leave_one_out=False)[0]
                x1 = r_src[i] + 1.0 * single
                close("single pair, no LOO: r_s + 1·Δ = r_t (float32)", x1, r_tgt[j], 1e-6)
                close("single pair, no LOO: r_s + 1·Δ = r_t (float64)", r_src[i].double() + (r_tgt[j].double() - r_src[i].double()),
                      r_tgt[j].double(), 1e-12)
                if L == last_layer:
                    close("single pair at last layer: decode(r_s + Δ) = lens(r_t)", decode(model, x1[None])[0],
                          decode(model, r_tgt[j][None])[0], 1e-5)

            # Path points (pair-major, then α) for the first LOGIT_PAIRS pairs.
            xs, dec_rows, prop_rows = [], [], []
            for k, (i, _) in enumerate(pairs[:LOGIT_PAIRS]):
                for alpha in ALPHAS:
                    x = r_src[i] + alpha * delta[k]
                    xs.append(x)
                    prop = hf_propagated(model, prompts[case.source][i], L, x)
                    _, prop_hand = manual_propagated(model, prompts[case.source][i], L, x)
                    close("propagated: HF hook = hand-run blocks", prop, prop_hand, 1e-5)
                    prop_rows.append(prop)
            dec = decode(model, torch.stack(xs))
            prop = torch.stack(prop_rows)
            for k, (i, _) in enumerate(pairs[:LOGIT_PAIRS]):
                for a, alpha in enumerate(ALPHAS):
                    row = k * len(ALPHAS) + a
                    # One row alone through the lens gives the same numbers as the stacked rows.
                    close("decode: stacked rows = one row", dec[row], decode(model, xs[row][None])[0], 1e-5)
                    if alpha == 0.0:
                        close("α = 0: x = r_source", xs[row], r_src[i], 0)
                        close("α = 0: decode = logit lens of r_source", dec[row], decode(model, r_src[i][None])[0], 1e-5)
                        close("α = 0: propagated = plain HF logits", prop[row], plain_logits[case.source][i], 1e-5)
            if L == last_layer:
                close("last layer: propagated = decode", prop, dec, 1e-5)
            else:
                assert (prop - dec).abs().max() > 1e-1, "propagation after a non-final block should matter"
                tensors[f"propagated/{L}"] = prop
            tensors[f"decode/{L}"] = dec
            # α matters: the points move.
            assert (dec[1:len(ALPHAS)] - dec[0]).abs().max() > 1e-2

        tensors = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}
        assert all(torch.isfinite(t).all() for t in tensors.values())
        path = PATHS_DIR / f"{case.name}.safetensors"
        save_file(tensors, str(path), metadata={"format": "pt"})
        written.append(path)

        cases_json.append({
            "name": case.name, "template": case.template, "kind": case.kind,
            "from": case.source, "to": case.target,
            "pairs": [list(p) for p in pairs],
            "prompts": {f: prompts[f] for f in families},
        })
        d = tensors[f"decode/{LAYERS[0]}"]
        print(f"{case.name:22s} {len(pairs)} pairs, {len(tensors)} tensors, decode/0 [{d.min():6.2f}, {d.max():6.2f}]")

    doc = {
        "model": MODEL,
        "bos": bos,
        "families": FAMILIES,
        "layers": LAYERS,
        "alphas": ALPHAS,
        "window": WINDOW,
        "logit_pairs": list(range(LOGIT_PAIRS)),
        "propagated_layers": [L for L in LAYERS if L != last_layer],
        "cases": cases_json,
    }
    cases_path = PATHS_DIR / "cases.json"
    cases_path.write_text(sf.dump_json(doc))
    written.append(cases_path)

    print("\nchecks (max abs diff):")
    for name, diff in sorted(worst.items()):
        print(f"  {diff:9.3g}  {name}")
    print("\nwritten:")
    for path in written:
        print(f"  {path.stat().st_size / 1024:8.1f} KiB  {path.relative_to(mf.REPO)}")
    total = sum(p.stat().st_size for p in PATHS_DIR.iterdir())
    print(f"paths/ {total / 1024:.1f} KiB")
    assert total < SIZE_LIMIT, "paths fixtures grew past 400 KiB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
