#!/usr/bin/env python3
"""Generate Scalpel's circuit (mean-ablation) fixtures with ARENA's IOI procedure, in plain PyTorch.

For `scalpel circuit` (DESIGN.md "Causal analyses"): ARENA 3.0's `ioi_circuit_extraction`
(`compute_means_by_template`, `get_heads_and_posns_to_keep`, `hook_fn_mask_z`,
`add_mean_ablation_hook`), as the study (wlg100/numseqcont_circuit_expms, minimal_circuits/) uses it:
- means: the means dataset is run once; `hook_z` [batch, seq, head, d_head] is averaged over the
  prompts of each template (here one template, as the study: every prompt of a fixture has one
  length) at every position -> means[layer] [seq, head, d_head]; "pooled" also averages over
  positions (Scalpel's --pooled-means);
- keep-mask: mask[layer][:, pos, head] = 1 for every circuit head at its kept positions;
- hook: z = torch.where(mask[layer].unsqueeze(-1), z, means[layer]) on every layer's hook_z;
- score: mean over the scored items of logits[last, answer] - logits[last, corrupted_answer].
- MLPs (circuit files' `mlps:`): a circuit with "mlps" mean-ablates every MLP's output
  (`hook_mlp_out`, the output of `h[l].mlp`, per-position or pooled means likewise) except the
  listed MLPs at their kept positions: out = torch.where(mlp_mask[layer].unsqueeze(-1), out,
  mlp_means[layer]); a circuit without "mlps" leaves every MLP alone.

Hugging Face's GPT2Attention has no hook_z; its `c_proj` input is z with heads merged
([batch, seq, head * d_head]), so a forward pre-hook on `attn.c_proj` reshapes it to
[batch, seq, head, d_head], applies the mask and merges it back. The weights are the raw HF ones
(no fold_ln, no centring), as Scalpel loads them.

Writes Tests/ScalpelTests/Fixtures/circuits/cases.json. Deterministic and rerunnable:
`python3 tools/make_circuit_fixtures.py`. See Tests/ScalpelTests/Fixtures/circuits/README.md.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch
import transformers
from transformers import GPT2LMHeadModel

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "ScalpelTests" / "Fixtures"
OUT = FIXTURES / "circuits" / "cases.json"


def sequence(bos: int, start: int, length: int, step: int = 1) -> list[int]:
    return [bos] + [start + step * i for i in range(length)]


def scored_items(bos: int, length: int, starts: list[tuple[int, int]]) -> list[dict]:
    """Clean = BOS + an arithmetic sequence, answer its next element; foil = its last element."""
    items = []
    for start, step in starts:
        clean = sequence(bos, start, length, step)
        corrupted = clean[:-1] + [clean[-2]]
        items.append({"clean": clean, "corrupted": corrupted, "answer": start + step * length, "corrupted_answer": clean[-1]})
    return items


# Circuits as Scalpel's circuit files write them: "layer.head" -> "all" or a list of kept positions
# (negative counts from the end; -1 = `end`).
def circuits(n_layer: int, n_head: int) -> list[dict]:
    every = {f"{l}.{h}": "all" for l in range(n_layer) for h in range(n_head)}
    return [
        {"name": "every-head", "heads": every},
        {"name": "empty", "heads": {}},
        {"name": "one-head-end", "heads": {"1.2": [-1]}},
        {"name": "mixed", "heads": {"0.1": "all", "1.0": [-1], f"{n_layer - 1}.3": [1, 2], "0.3": [0, -2]}},
        {"name": "layer-0-all", "heads": {f"0.{h}": "all" for h in range(n_head)}},
        {"name": "every-head-end", "heads": {k: [-1] for k in every}},
        # MLP circuits (`mlps:`): listed MLPs keep their output at their positions, the others get their mean.
        {"name": "every-head-every-mlp", "heads": every, "mlps": {str(l): "all" for l in range(n_layer)}},
        {"name": "no-mlp", "heads": {"1.2": [-1], "0.1": "all"}, "mlps": {}},
        {"name": "heads-all-mlp-last-end", "heads": every, "mlps": {str(n_layer - 1): [-1]}},
        {"name": "mixed-mlps", "heads": {"0.1": "all", "1.0": [-1], "0.3": [0, -2]}, "mlps": {"0": "all", str(n_layer - 1): [1, -2]}},
    ]


MODELS = [
    # (name, bos, prompt length after BOS, scored starts, means starts)
    ("tiny-hub", 999, 5, [(101, 1), (202, 1), (303, 2), (404, 1)], [(150, 1), (250, 1), (350, 2), (450, 1), (520, 3)]),
    ("odd-head", 699, 6, [(11, 1), (122, 1), (233, 3), (344, 1)], [(40, 1), (150, 1), (260, 2), (370, 1)]),
]


def z_hooks(model: GPT2LMHeadModel, fn):
    """A forward pre-hook on every attn.c_proj calling fn(layer, z [batch, seq, head, d_head]) -> z."""
    cfg = model.config
    handles = []
    for layer, block in enumerate(model.transformer.h):
        def pre(module, args, layer=layer):
            x = args[0]
            b, s, _ = x.shape
            z = x.reshape(b, s, cfg.n_head, cfg.n_embd // cfg.n_head)
            out = fn(layer, z)
            return (out.reshape(b, s, cfg.n_embd),) + tuple(args[1:])
        handles.append(block.attn.c_proj.register_forward_pre_hook(pre))
    return handles


def mlp_hooks(model: GPT2LMHeadModel, fn):
    """A forward hook on every h[l].mlp calling fn(layer, out [batch, seq, d_model]) -> out (hook_mlp_out)."""
    return [block.mlp.register_forward_hook(lambda module, args, out, layer=layer: fn(layer, out))
            for layer, block in enumerate(model.transformer.h)]


def compute_means_by_template(model, tokens: torch.Tensor, pooled: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """ARENA's compute_means_by_template with one template group: per layer [seq, head, d_head] of
    hook_z, and likewise [seq, d_model] of hook_mlp_out."""
    captured: dict[int, torch.Tensor] = {}
    captured_mlp: dict[int, torch.Tensor] = {}

    def capture(layer, z):
        captured[layer] = z.detach().clone()
        return z

    def capture_mlp(layer, out):
        captured_mlp[layer] = out.detach().clone()
        return out
    handles = z_hooks(model, capture) + mlp_hooks(model, capture_mlp)
    with torch.no_grad():
        model(tokens)
    for h in handles:
        h.remove()

    def reduce(x: torch.Tensor) -> torch.Tensor:
        m = x.double().mean(dim=0)  # einops.reduce("batch seq ... -> seq ...", "mean")
        if pooled:
            m = m.mean(dim=0, keepdim=True).expand_as(m)
        return m.float()
    layers = range(model.config.n_layer)
    return [reduce(captured[l]) for l in layers], [reduce(captured_mlp[l]) for l in layers]


def heads_and_posns_to_keep(n_layer, n_head, seq, heads: dict) -> list[torch.Tensor]:
    """ARENA's get_heads_and_posns_to_keep: per layer a bool mask [seq, head]."""
    masks = [torch.zeros(seq, n_head, dtype=torch.bool) for _ in range(n_layer)]
    for key, positions in heads.items():
        layer, head = map(int, key.split("."))
        idx = list(range(seq)) if positions == "all" else [p % seq for p in positions]
        masks[layer][idx, head] = True
    return masks


def mlps_and_posns_to_keep(n_layer, seq, mlps: dict) -> list[torch.Tensor]:
    """As heads_and_posns_to_keep, for MLP outputs: per layer a bool mask [seq]."""
    masks = [torch.zeros(seq, dtype=torch.bool) for _ in range(n_layer)]
    for key, positions in mlps.items():
        idx = list(range(seq)) if positions == "all" else [p % seq for p in positions]
        masks[int(key)][idx] = True
    return masks


def score(model, items, means=None, masks=None, mlp_means=None, mlp_masks=None) -> float:
    tokens = torch.tensor([it["clean"] for it in items])
    handles = []
    if means is not None:
        def mask_z(layer, z):  # ARENA's hook_fn_mask_z
            return torch.where(masks[layer].unsqueeze(0).unsqueeze(-1), z, means[layer].unsqueeze(0))
        handles = z_hooks(model, mask_z)
    if mlp_masks is not None:
        def mask_mlp(layer, out):  # the same keep-mask on hook_mlp_out
            return torch.where(mlp_masks[layer].unsqueeze(0).unsqueeze(-1), out, mlp_means[layer].unsqueeze(0))
        handles += mlp_hooks(model, mask_mlp)
    with torch.no_grad():
        logits = model(tokens).logits.double()
    for h in handles:
        h.remove()
    last = logits[:, -1, :]
    rows = torch.arange(len(items))
    answers = torch.tensor([it["answer"] for it in items])
    foils = torch.tensor([it["corrupted_answer"] for it in items])
    return float((last[rows, answers] - last[rows, foils]).mean())


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = {"description": "ARENA IOI mean-ablation references (plain PyTorch on the HF weights); see README.md",
           "metric": "mean over items of logits[last, answer] - logits[last, corrupted_answer]",
           "models": {},
           "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}}
    for name, bos, length, starts, means_starts in MODELS:
        model = GPT2LMHeadModel.from_pretrained(FIXTURES / "models" / name, dtype=torch.float32, attn_implementation="eager").eval()
        cfg = model.config
        items = scored_items(bos, length, starts)
        means_prompts = [sequence(bos, s, length, step) for s, step in means_starts]
        seq = length + 1
        full = score(model, items)
        per_position = compute_means_by_template(model, torch.tensor(means_prompts), pooled=False)
        pooled = compute_means_by_template(model, torch.tensor(means_prompts), pooled=True)
        rows = []
        for circuit in circuits(cfg.n_layer, cfg.n_head):
            masks = heads_and_posns_to_keep(cfg.n_layer, cfg.n_head, seq, circuit["heads"])
            mlp_masks = mlps_and_posns_to_keep(cfg.n_layer, seq, circuit["mlps"]) if "mlps" in circuit else None
            row = dict(circuit)
            row["per_position"] = score(model, items, per_position[0], masks, per_position[1], mlp_masks)
            row["pooled"] = score(model, items, pooled[0], masks, pooled[1], mlp_masks)
            rows.append(row)
        by_name = {r["name"]: r for r in rows}
        # Checks: keeping every head at every position is the full model, bit for bit in PyTorch too.
        assert abs(by_name["every-head"]["per_position"] - full) < 1e-6, (name, by_name["every-head"], full)
        assert abs(by_name["empty"]["per_position"] - by_name["layer-0-all"]["per_position"]) > 1e-3, "layer 0 should matter"
        assert abs(by_name["every-head-every-mlp"]["per_position"] - full) < 1e-6, "every MLP kept everywhere is the full model"
        assert abs(by_name["heads-all-mlp-last-end"]["per_position"] - full) > 1e-3, "ablating MLPs should matter"
        out["models"][name] = {"checkpoint": f"models/{name}", "bos": bos, "items": items, "means_prompts": means_prompts,
                               "full": full, "circuits": rows}
        print(name, "full", round(full, 5), {r["name"]: (round(r["per_position"], 5), round(r["pooled"], 5)) for r in rows})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", OUT.relative_to(ROOT))


if __name__ == "__main__":
    sys.exit(main())
