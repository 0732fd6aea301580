#!/usr/bin/env python3
"""Generate Scalpel's GPT-2 parity fixtures.

Writes, under Tests/ScalpelTests/Fixtures/:
  models/<name>/            small random GPT-2 checkpoints in the Hugging Face layouts Scalpel loads
  reference/<name>.json     prompts (token ids), versions, checks and notes for each model
  reference/<name>.safetensors
                            float32 activations named with TransformerLens hook names, one prompt at a
                            time (`<hook name>/<prompt index>`), plus HF's own outputs and logit-lens rows
  reference/<name>.added.safetensors
                            the same for the hooks added later (ADDED_HOOKS), kept apart so that adding
                            them left the first references byte for byte as committed

Everything is seeded, single-threaded and rerunnable: `python3 tools/make_fixtures.py`.
`python3 tools/make_fixtures.py --added-only` rewrites only the `.added` files, from the committed
checkpoints, after checking that they still give the committed logits.
See Tests/ScalpelTests/Fixtures/reference/README.md for the naming and conventions.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach the hub

import numpy
import safetensors
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "Tests" / "ScalpelTests" / "Fixtures"
MODELS_DIR = FIXTURES / "models"
REFERENCE_DIR = FIXTURES / "reference"

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Hooks of a block added after the first references were committed; stored in <name>.added.safetensors.
ADDED_HOOKS = ("ln1.hook_normalized", "attn.hook_result", "ln2.hook_normalized")


def is_added(hook: str) -> bool:
    return any(hook.endswith("." + suffix) for suffix in ADDED_HOOKS)


# --------------------------------------------------------------------------------------------------
# Model specifications
# --------------------------------------------------------------------------------------------------

@dataclass
class ModelSpec:
    """One fixture model: its shape, how it is stored, its prompts and whether lens rows are stored."""

    name: str
    seed: int
    n_layer: int
    n_embd: int
    n_head: int
    vocab_size: int
    n_positions: int
    layout: str  # "hub" (save_file, no prefix, attn.bias buffers) | "save_pretrained"
    prompt_lengths: list[int]
    n_inner: int | None = None
    dtype: str = "float32"  # storage dtype of the checkpoint
    max_shard_size: str | None = None  # set to shard with save_pretrained
    lens_prompts: list[int] = field(default_factory=list)  # prompt indices with lens.* tensors
    notes: list[str] = field(default_factory=list)

    @property
    def bos(self) -> int:
        return self.vocab_size - 1

    @property
    def d_head(self) -> int:
        return self.n_embd // self.n_head

    @property
    def d_mlp(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd


SPECS = [
    ModelSpec(
        name="tiny-hub", seed=1001, n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=32,
        layout="hub", prompt_lengths=[1, 4, 7, 12], lens_prompts=[0, 2],
        notes=["Laid out like the hub's gpt2 model.safetensors: no `transformer.` prefix, "
               "`h.N.attn.bias` causal-mask buffers (F32 [1,1,n_positions,n_positions], torch.tril of "
               "ones), no `lm_head.weight` (tied to wte). Written with safetensors.torch.save_file, "
               "metadata {\"format\": \"pt\"}. config.json written by GPT2Config.save_pretrained."],
    ),
    ModelSpec(
        name="odd-head", seed=1002, n_layer=3, n_embd=48, n_head=4, vocab_size=700, n_positions=24,
        n_inner=80, layout="save_pretrained", prompt_lengths=[1, 2, 5, 8, 11], lens_prompts=[0, 3],
        notes=["d_head 12 (not a power of two), explicit n_inner 80. Written by "
               "model.save_pretrained(safe_serialization=True): names carry the `transformer.` prefix, "
               "no lm_head.weight, no attn.bias buffers."],
    ),
    ModelSpec(
        name="sharded-f16", seed=1003, n_layer=2, n_embd=40, n_head=5, vocab_size=500, n_positions=16,
        layout="save_pretrained", dtype="float16", max_shard_size="50KB", prompt_lengths=[1, 3, 6, 11],
        notes=["Stored as float16, sharded by save_pretrained(max_shard_size='50KB') into "
               "model-0000k-of-0000n.safetensors with model.safetensors.index.json. References are "
               "computed in float32 from the float16-rounded weights."],
    ),
    ModelSpec(
        name="bf16", seed=1004, n_layer=1, n_embd=32, n_head=2, vocab_size=300, n_positions=12,
        layout="save_pretrained", dtype="bfloat16", prompt_lengths=[1, 3, 7, 12],
        notes=["Stored as bfloat16, single model.safetensors. References are computed in float32 from "
               "the bfloat16-rounded weights. The last prompt fills the whole context (n_positions 12)."],
    ),
]


# --------------------------------------------------------------------------------------------------
# Building and saving models
# --------------------------------------------------------------------------------------------------

def make_config(spec: ModelSpec) -> GPT2Config:
    """GPT2Config for a spec: gelu_new, BOS = EOS = last id (as GPT-2's <|endoftext|>)."""
    return GPT2Config(
        vocab_size=spec.vocab_size, n_positions=spec.n_positions, n_embd=spec.n_embd,
        n_layer=spec.n_layer, n_head=spec.n_head, n_inner=spec.n_inner,
        activation_function="gelu_new", bos_token_id=spec.bos, eos_token_id=spec.bos,
        architectures=["GPT2LMHeadModel"],
    )


@torch.no_grad()
def randomise_(model: GPT2LMHeadModel, spec: ModelSpec) -> None:
    """Re-draw every parameter so that nothing sits at its init and activations are O(1).

    Conv1D weights ~ N(0, (gain / sqrt(fan_in))^2) (gain 1.5 for c_attn so patterns are peaked);
    wte ~ N(0, (2 / sqrt(d))^2) so tied logits span several units; wpe ~ N(0, 0.3^2);
    every bias ~ N(0, 0.1^2); LayerNorm weights 1 + N(0, 0.1^2), LayerNorm biases N(0, 0.1^2).
    """
    g = torch.Generator().manual_seed(spec.seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std + mean

    d = spec.n_embd
    for name, p in model.named_parameters():  # tied lm_head.weight is listed once (as wte)
        if name.endswith("wte.weight"):
            p.copy_(normal(p.shape, 2.0 / math.sqrt(d)))
        elif name.endswith("wpe.weight"):
            p.copy_(normal(p.shape, 0.3))
        elif ".ln_" in name and name.endswith(".weight"):
            p.copy_(normal(p.shape, 0.1, mean=1.0))
        elif name.endswith(".bias"):
            p.copy_(normal(p.shape, 0.1))
        elif name.endswith(".weight"):  # Conv1D, stored [in, out]
            gain = 1.5 if "c_attn" in name else 1.0
            p.copy_(normal(p.shape, gain / math.sqrt(p.shape[0])))
        else:
            raise ValueError(f"unexpected parameter {name}")


@torch.no_grad()
def build_model(spec: ModelSpec) -> GPT2LMHeadModel:
    """A float32 eval-mode model, randomised and rounded through the storage dtype."""
    torch.manual_seed(spec.seed)  # only affects the init that randomise_ overwrites
    model = GPT2LMHeadModel(make_config(spec))
    model.config._attn_implementation = "eager"  # needed for output_attentions; not saved
    model.eval()
    randomise_(model, spec)
    if spec.dtype != "float32":
        for p in model.parameters():
            p.copy_(p.to(DTYPES[spec.dtype]).float())
    assert model.lm_head.weight is model.transformer.wte.weight, "lm_head must stay tied to wte"
    return model


def save_checkpoint(model: GPT2LMHeadModel, spec: ModelSpec, folder: Path) -> None:
    """Write the checkpoint folder in the spec's layout (replacing any previous one)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if spec.layout == "hub":
        assert spec.dtype == "float32"
        tensors = {k: v.detach().contiguous().clone() for k, v in model.transformer.state_dict().items()}
        mask = torch.tril(torch.ones(spec.n_positions, spec.n_positions, dtype=torch.float32))
        for i in range(spec.n_layer):
            tensors[f"h.{i}.attn.bias"] = mask.view(1, 1, spec.n_positions, spec.n_positions).clone()
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        model.config.save_pretrained(str(folder))
    elif spec.layout == "save_pretrained":
        stored = copy.deepcopy(model).to(DTYPES[spec.dtype])
        kwargs = {"safe_serialization": True}
        if spec.max_shard_size:
            kwargs["max_shard_size"] = spec.max_shard_size
        stored.save_pretrained(str(folder), **kwargs)
    else:
        raise ValueError(spec.layout)


def checkpoint_tensors(folder: Path) -> dict[str, tuple[str, list[int]]]:
    """name -> (safetensors dtype, shape) over every .safetensors file of a checkpoint folder."""
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as sf:
            for k in sf.keys():
                sl = sf.get_slice(k)
                out[k] = (sl.get_dtype(), list(sl.get_shape()))
    return out


# --------------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------------

def make_prompts(spec: ModelSpec) -> list[list[int]]:
    """Seeded prompts, each starting with BOS; the longest repeats a run of tokens (induction-like)."""
    g = torch.Generator().manual_seed(spec.seed + 7)
    prompts = []
    longest = max(spec.prompt_lengths)
    for n in spec.prompt_lengths:
        body = torch.randint(0, spec.vocab_size - 1, (n - 1,), generator=g).tolist()
        if n == longest and n >= 7:
            half = (n - 1) // 2
            body = body[:half] + body[: n - 1 - half]
        ids = [spec.bos] + body
        assert len(ids) == n <= spec.n_positions
        prompts.append(ids)
    return prompts


# --------------------------------------------------------------------------------------------------
# Capturing activations
# --------------------------------------------------------------------------------------------------

def ln_scale(x: torch.Tensor, eps: float) -> torch.Tensor:
    """TransformerLens LayerNorm hook_scale: sqrt(mean((x - mean x)^2) + eps), shape [..., 1]."""
    xc = x - x.mean(-1, keepdim=True)
    return (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def ln_normalized(x: torch.Tensor, eps: float) -> torch.Tensor:
    """TransformerLens hook_normalized with LayerNorm folded: (x - mean x) / hook_scale, before w and b."""
    return (x - x.mean(-1, keepdim=True)) / ln_scale(x, eps)


class Recorder:
    """PyTorch hooks on the HF modules; records raw inputs/outputs of one forward (batch 1)."""

    def __init__(self, model: GPT2LMHeadModel):
        self.raw: dict[str, torch.Tensor] = {}
        self.handles = []
        tr = model.transformer
        self._out(tr.wte, "wte.out")
        self._out(tr.wpe, "wpe.out")
        for i, block in enumerate(tr.h):
            self._in(block, f"h.{i}.in")
            self._out(block, f"h.{i}.out")
            self._in(block.ln_1, f"h.{i}.ln_1.in")
            self._out(block.ln_1, f"h.{i}.ln_1.out")
            self._out(block.attn.c_attn, f"h.{i}.attn.c_attn.out")
            self._in(block.attn.c_proj, f"h.{i}.attn.c_proj.in")
            self._out(block.attn.c_proj, f"h.{i}.attn.c_proj.out")
            self._in(block.ln_2, f"h.{i}.ln_2.in")
            self._out(block.ln_2, f"h.{i}.ln_2.out")
            self._out(block.mlp.c_fc, f"h.{i}.mlp.c_fc.out")
            self._out(block.mlp.act, f"h.{i}.mlp.act.out")
            self._out(block.mlp.c_proj, f"h.{i}.mlp.c_proj.out")
        self._in(tr.ln_f, "ln_f.in")
        self._out(tr.ln_f, "ln_f.out")

    @staticmethod
    def _first(x):
        return x[0] if isinstance(x, (tuple, list)) else x

    def _in(self, module, key):
        def hook(mod, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            self.raw[key] = x.detach()[0].clone()
        self.handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def _out(self, module, key):
        def hook(mod, args, output):
            self.raw[key] = self._first(output).detach()[0].clone()
        self.handles.append(module.register_forward_hook(hook))

    def remove(self):
        for h in self.handles:
            h.remove()


@torch.no_grad()
def run_prompt(model: GPT2LMHeadModel, spec: ModelSpec, ids: list[int]):
    """One prompt alone: returns (TransformerLens-named cache, HF outputs, raw module records)."""
    rec = Recorder(model)
    try:
        out = model(torch.tensor([ids]), output_hidden_states=True, output_attentions=True, use_cache=False)
    finally:
        rec.remove()
    raw = rec.raw
    eps = model.config.layer_norm_epsilon
    n, H, dh, d = len(ids), spec.n_head, spec.d_head, spec.n_embd
    causal_future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    scaling = dh ** -0.5  # as HF's GPT2Attention.scaling (scale_attn_weights=True)

    c = {"hook_embed": raw["wte.out"], "hook_pos_embed": raw["wpe.out"]}
    for i in range(spec.n_layer):
        b = f"blocks.{i}"
        c[f"{b}.hook_resid_pre"] = raw[f"h.{i}.in"]
        c[f"{b}.ln1.hook_scale"] = ln_scale(raw[f"h.{i}.ln_1.in"], eps)
        c[f"{b}.ln1.hook_normalized"] = ln_normalized(raw[f"h.{i}.ln_1.in"], eps)
        q, k, v = raw[f"h.{i}.attn.c_attn.out"].split(d, dim=-1)
        q, k, v = (t.reshape(n, H, dh) for t in (q, k, v))
        c[f"{b}.attn.hook_q"], c[f"{b}.attn.hook_k"], c[f"{b}.attn.hook_v"] = q, k, v
        scores = torch.matmul(q.transpose(0, 1), k.transpose(0, 1).transpose(-1, -2)) * scaling
        scores = scores.masked_fill(causal_future, float("-inf"))
        c[f"{b}.attn.hook_attn_scores"] = scores
        c[f"{b}.attn.hook_pattern"] = torch.softmax(scores, dim=-1)
        c[f"{b}.attn.hook_z"] = raw[f"h.{i}.attn.c_proj.in"].reshape(n, H, dh)
        # result[pos, h] = z[pos, h] @ W_O[h], W_O[h] being rows h*dh ..< (h+1)*dh of c_proj's [in, out] weight.
        w_o = model.transformer.h[i].attn.c_proj.weight.reshape(H, dh, d)
        c[f"{b}.attn.hook_result"] = torch.einsum("phe,hed->phd", c[f"{b}.attn.hook_z"], w_o)
        c[f"{b}.hook_attn_out"] = raw[f"h.{i}.attn.c_proj.out"]
        c[f"{b}.hook_resid_mid"] = raw[f"h.{i}.ln_2.in"]
        c[f"{b}.ln2.hook_scale"] = ln_scale(raw[f"h.{i}.ln_2.in"], eps)
        c[f"{b}.ln2.hook_normalized"] = ln_normalized(raw[f"h.{i}.ln_2.in"], eps)
        c[f"{b}.mlp.hook_pre"] = raw[f"h.{i}.mlp.c_fc.out"]
        c[f"{b}.mlp.hook_post"] = raw[f"h.{i}.mlp.act.out"]
        c[f"{b}.hook_mlp_out"] = raw[f"h.{i}.mlp.c_proj.out"]
        c[f"{b}.hook_resid_post"] = raw[f"h.{i}.out"]
    x = raw["ln_f.in"]
    c["ln_final.hook_scale"] = ln_scale(x, eps)
    c["ln_final.hook_normalized"] = (x - x.mean(-1, keepdim=True)) / c["ln_final.hook_scale"]
    c["logits"] = out.logits[0]
    hf = {
        "hidden_states": [h[0] for h in out.hidden_states],
        "attentions": [a[0] for a in out.attentions],
    }
    return c, hf, raw


# --------------------------------------------------------------------------------------------------
# Logit lens
# --------------------------------------------------------------------------------------------------

def lens_rows(cache: dict, n_layer: int, incl_mid: bool) -> torch.Tensor:
    """[rows, pos, d]: resid_pre 0..n-1 (with resid_mid after each if incl_mid), then resid_post n-1."""
    rows = []
    for i in range(n_layer):
        rows.append(cache[f"blocks.{i}.hook_resid_pre"])
        if incl_mid:
            rows.append(cache[f"blocks.{i}.hook_resid_mid"])
    rows.append(cache[f"blocks.{n_layer - 1}.hook_resid_post"])
    return torch.stack(rows)


@torch.no_grad()
def lens_probs(model: GPT2LMHeadModel, rows: torch.Tensor, cache: dict, mode: str) -> torch.Tensor:
    """Softmax probabilities [rows, pos, vocab].

    recomputed: ln_f(row) with ln_f's own statistics of that row, then lm_head.
    cached: (row - mean(row)) / ln_final.hook_scale (the final layer's scale at that position),
            then ln_f's weight and bias, then lm_head.
    """
    ln_f = model.transformer.ln_f
    if mode == "recomputed":
        normed = ln_f(rows)
    elif mode == "cached":
        centred = rows - rows.mean(-1, keepdim=True)
        normed = centred / cache["ln_final.hook_scale"].unsqueeze(0) * ln_f.weight + ln_f.bias
    else:
        raise ValueError(mode)
    return torch.softmax(model.lm_head(normed), dim=-1)


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------

class Checks:
    """Collects max |a - b| per named check (max over prompts) and fails loudly past a tolerance."""

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.max_diff: dict[str, float] = {}

    def close(self, name: str, a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
        assert a.shape == b.shape, f"{self.model_name}: {name}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
        finite = torch.isfinite(b)
        assert torch.equal(finite, torch.isfinite(a)), f"{self.model_name}: {name}: non-finite entries differ"
        if finite.any():
            a, b = a[finite], b[finite]
            diff = (a.double() - b.double()).abs().max().item()
            scale = max(1.0, b.abs().max().item())
        else:
            diff, scale = 0.0, 1.0
        self.max_diff[name] = max(self.max_diff.get(name, 0.0), diff)
        if diff > tol * scale:
            raise AssertionError(f"{self.model_name}: {name}: max diff {diff:.3g} > {tol:g} * {scale:.3g}")

    def summary(self) -> dict[str, float]:
        return {k: float(f"{v:.3g}") for k, v in sorted(self.max_diff.items())}


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """The tanh GELU of GPT-2, written out."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


@torch.no_grad()
def check_prompt(model, spec: ModelSpec, ids, cache: dict, hf: dict, raw: dict, lens: dict, ck: Checks):
    """Every hook against its reconstruction from neighbouring hooks and the weights."""
    tr = model.transformer
    n, H, d = len(ids), spec.n_head, spec.n_embd
    eps = model.config.layer_norm_epsilon

    def ln_apply(x, scale, ln):
        return (x - x.mean(-1, keepdim=True)) / scale * ln.weight + ln.bias

    ck.close("embed = wte[ids]", cache["hook_embed"], tr.wte.weight[ids], 0)
    ck.close("pos_embed = wpe[0..<n]", cache["hook_pos_embed"], tr.wpe.weight[:n], 0)
    ck.close("resid_pre.0 = embed + pos_embed", cache["blocks.0.hook_resid_pre"],
             cache["hook_embed"] + cache["hook_pos_embed"], 1e-6)
    for i, block in enumerate(tr.h):
        b = f"blocks.{i}"
        x = cache[f"{b}.hook_resid_pre"]
        ln1 = ln_apply(x, cache[f"{b}.ln1.hook_scale"], block.ln_1)
        ck.close("ln1 from hook_scale", ln1, raw[f"h.{i}.ln_1.out"], 1e-5)
        ck.close("ln1 = ln1.hook_normalized * w + b", cache[f"{b}.ln1.hook_normalized"] * block.ln_1.weight
                 + block.ln_1.bias, raw[f"h.{i}.ln_1.out"], 1e-5)
        qkv = torch.cat([cache[f"{b}.attn.hook_{t}"].reshape(n, d) for t in "qkv"], dim=-1)
        ck.close("q|k|v = ln1 @ W_attn + b", qkv, ln1 @ block.attn.c_attn.weight + block.attn.c_attn.bias, 1e-5)
        pattern = cache[f"{b}.attn.hook_pattern"]
        ck.close("pattern = HF attentions", pattern, hf["attentions"][i], 1e-6)
        ck.close("pattern rows sum to 1", pattern.sum(-1), torch.ones(H, n), 1e-6)
        future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        assert torch.isneginf(cache[f"{b}.attn.hook_attn_scores"][:, future]).all()
        assert torch.isfinite(cache[f"{b}.attn.hook_attn_scores"][:, ~future]).all()
        z = torch.matmul(pattern, cache[f"{b}.attn.hook_v"].transpose(0, 1)).transpose(0, 1)
        ck.close("z = pattern @ v", cache[f"{b}.attn.hook_z"], z, 1e-5)
        attn_out = cache[f"{b}.attn.hook_z"].reshape(n, d) @ block.attn.c_proj.weight + block.attn.c_proj.bias
        ck.close("attn_out = z @ W_O + b_O", cache[f"{b}.hook_attn_out"], attn_out, 1e-5)
        ck.close("attn_out = sum over heads of hook_result + b_O", cache[f"{b}.hook_attn_out"],
                 cache[f"{b}.attn.hook_result"].sum(1) + block.attn.c_proj.bias, 1e-5)
        ck.close("resid_mid = resid_pre + attn_out", cache[f"{b}.hook_resid_mid"],
                 x + cache[f"{b}.hook_attn_out"], 1e-6)
        mid = cache[f"{b}.hook_resid_mid"]
        ln2 = ln_apply(mid, cache[f"{b}.ln2.hook_scale"], block.ln_2)
        ck.close("ln2 from hook_scale", ln2, raw[f"h.{i}.ln_2.out"], 1e-5)
        ck.close("ln2 = ln2.hook_normalized * w + b", cache[f"{b}.ln2.hook_normalized"] * block.ln_2.weight
                 + block.ln_2.bias, raw[f"h.{i}.ln_2.out"], 1e-5)
        ck.close("mlp pre = ln2 @ W_in + b_in", cache[f"{b}.mlp.hook_pre"],
                 ln2 @ block.mlp.c_fc.weight + block.mlp.c_fc.bias, 1e-5)
        ck.close("mlp post = gelu_new(pre)", cache[f"{b}.mlp.hook_post"], gelu_new(cache[f"{b}.mlp.hook_pre"]), 1e-6)
        ck.close("mlp_out = post @ W_out + b_out", cache[f"{b}.hook_mlp_out"],
                 cache[f"{b}.mlp.hook_post"] @ block.mlp.c_proj.weight + block.mlp.c_proj.bias, 1e-5)
        ck.close("resid_post = resid_mid + mlp_out", cache[f"{b}.hook_resid_post"],
                 mid + cache[f"{b}.hook_mlp_out"], 1e-6)
        if i + 1 < spec.n_layer:
            ck.close("resid_pre.i+1 = resid_post.i", cache[f"blocks.{i + 1}.hook_resid_pre"],
                     cache[f"{b}.hook_resid_post"], 0)
        ck.close("HF hidden_states.i = resid_pre.i", hf["hidden_states"][i], x, 0)
    last = cache[f"blocks.{spec.n_layer - 1}.hook_resid_post"]
    ck.close("ln_f input = last resid_post", raw["ln_f.in"], last, 0)
    ck.close("ln_final scale", cache["ln_final.hook_scale"], ln_scale(last, eps), 0)
    final = cache["ln_final.hook_normalized"] * tr.ln_f.weight + tr.ln_f.bias
    ck.close("HF hidden_states.n = ln_f(resid_post) (normalized * w + b)", hf["hidden_states"][-1], final, 1e-5)
    ck.close("logits = HF last hidden @ wte^T", cache["logits"], hf["hidden_states"][-1] @ tr.wte.weight.T, 1e-5)
    if lens:
        probs = torch.softmax(cache["logits"], dim=-1)
        ck.close("lens.recomputed final row = softmax(logits)", lens["lens.recomputed"][-1], probs, 1e-6)
        ck.close("lens.cached final row = softmax(logits)", lens["lens.cached"][-1], probs, 1e-6)
        ck.close("lens.recomputed_with_mid even rows = lens.recomputed",
                 lens["lens.recomputed_with_mid"][0::2], lens["lens.recomputed"], 1e-6)
        ck.close("lens rows sum to 1", lens["lens.recomputed"].sum(-1), torch.ones(spec.n_layer + 1, n), 1e-5)


@torch.no_grad()
def check_reload(spec: ModelSpec, folder: Path, prompts, tensors: dict, ck: Checks) -> None:
    """Reload the folder with from_pretrained (float32): no missing/unexpected keys, same logits."""
    for impl, tol in (("eager", 1e-6), ("sdpa", 1e-5)):
        model, info = GPT2LMHeadModel.from_pretrained(
            str(folder), dtype=torch.float32, attn_implementation=impl, output_loading_info=True)
        model.eval()
        bad = {k: v for k, v in info.items() if v}
        assert not bad, f"{spec.name}: loading info {bad}"
        assert model.lm_head.weight is model.transformer.wte.weight
        for p, ids in enumerate(prompts):
            logits = model(torch.tensor([ids]), use_cache=False).logits[0]
            ck.close(f"reload ({impl}) logits = stored logits", logits, tensors[f"logits/{p}"], tol)


def check_checkpoint_files(spec: ModelSpec, folder: Path, model: GPT2LMHeadModel) -> dict:
    """Names, dtypes and layout of the written checkpoint; returns a summary for the JSON."""
    stored = checkpoint_tensors(folder)
    st_dtype = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[spec.dtype]
    params = list(model.transformer.state_dict().keys())
    if spec.layout == "hub":
        expected = set(params) | {f"h.{i}.attn.bias" for i in range(spec.n_layer)}
    else:
        expected = {"transformer." + k for k in params}
    assert set(stored) == expected, f"{spec.name}: unexpected tensor names {set(stored) ^ expected}"
    for k, (dt, shape) in stored.items():
        if k.endswith("attn.bias") and len(shape) == 4:
            assert dt == "F32" and shape == [1, 1, spec.n_positions, spec.n_positions], (k, dt, shape)
        else:
            assert dt == st_dtype, f"{spec.name}: {k} stored as {dt}, expected {st_dtype}"
    files = sorted(p.name for p in folder.iterdir())
    shards = [f for f in files if f.endswith(".safetensors")]
    if spec.max_shard_size:
        assert len(shards) >= 2 and "model.safetensors.index.json" in files, files
    else:
        assert shards == ["model.safetensors"], files
    return {"files": files, "tensor_names": sorted(stored), "stored_dtype": st_dtype,
            "has_lm_head_weight": any(k.endswith("lm_head.weight") for k in stored),
            "has_attn_bias_buffers": any(k.endswith("attn.bias") and len(s) == 4 for k, (_, s) in stored.items())}


# --------------------------------------------------------------------------------------------------
# Writing references
# --------------------------------------------------------------------------------------------------

def dump_json(obj) -> str:
    """Indented JSON with lists of plain numbers kept on one line (prompts stay readable)."""
    text = json.dumps(obj, indent=2)
    text = re.sub(r"\[\s*([-0-9.e,\s]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]"
                  if m.group(1).strip() else "[]", text)
    return text + "\n"


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "safetensors": safetensors.__version__,
            "numpy": numpy.__version__}


def generate(spec: ModelSpec) -> list[Path]:
    """Build, save, run, check and write one model's fixtures; returns the written paths."""
    folder = MODELS_DIR / spec.name
    model = build_model(spec)
    save_checkpoint(model, spec, folder)
    ck_files = check_checkpoint_files(spec, folder, model)
    prompts = make_prompts(spec)
    ck = Checks(spec.name)

    tensors: dict[str, torch.Tensor] = {}
    added: dict[str, torch.Tensor] = {}
    hook_names: list[str] = []
    for p, ids in enumerate(prompts):
        cache, hf, raw = run_prompt(model, spec, ids)
        hook_names = [name for name in cache if not is_added(name)]
        lens = {}
        if p in spec.lens_prompts:
            lens = {
                "lens.recomputed": lens_probs(model, lens_rows(cache, spec.n_layer, False), cache, "recomputed"),
                "lens.cached": lens_probs(model, lens_rows(cache, spec.n_layer, False), cache, "cached"),
                "lens.recomputed_with_mid": lens_probs(model, lens_rows(cache, spec.n_layer, True), cache,
                                                       "recomputed"),
            }
        check_prompt(model, spec, ids, cache, hf, raw, lens, ck)
        for name, t in cache.items():
            (added if is_added(name) else tensors)[f"{name}/{p}"] = t
        for l, h in enumerate(hf["hidden_states"]):
            tensors[f"hf.hidden_states.{l}/{p}"] = h
        for l, a in enumerate(hf["attentions"]):
            tensors[f"hf.attentions.{l}/{p}"] = a
        for name, t in lens.items():
            tensors[f"{name}/{p}"] = t
    tensors = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}
    check_reload(spec, folder, prompts, tensors, ck)

    logits = torch.cat([tensors[f"logits/{p}"].flatten() for p in range(len(prompts))])
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    st_path = REFERENCE_DIR / f"{spec.name}.safetensors"
    # One metadata key only: safetensors writes metadata in hash order, which would make reruns differ.
    save_file(tensors, str(st_path), metadata={"format": "pt"})
    added_path = save_added(spec, added)
    meta = {
        "model": spec.name,
        "checkpoint": f"models/{spec.name}",
        "layout": spec.layout,
        "stored_dtype": spec.dtype,
        "config": {
            "n_layer": spec.n_layer, "n_embd": spec.n_embd, "n_head": spec.n_head, "d_head": spec.d_head,
            "d_mlp": spec.d_mlp, "n_inner": spec.n_inner, "vocab_size": spec.vocab_size,
            "n_positions": spec.n_positions, "layer_norm_epsilon": model.config.layer_norm_epsilon,
            "activation_function": "gelu_new", "bos_token_id": spec.bos, "eos_token_id": spec.bos,
        },
        "checkpoint_files": ck_files,
        "seed": spec.seed,
        "prompts": prompts,
        "lens_prompts": spec.lens_prompts,
        "hooks": hook_names,
        "hf_outputs": [f"hf.hidden_states.{l}" for l in range(spec.n_layer + 1)]
                      + [f"hf.attentions.{l}" for l in range(spec.n_layer)],
        "lens": ["lens.recomputed", "lens.cached", "lens.recomputed_with_mid"] if spec.lens_prompts else [],
        "logit_range": [round(logits.min().item(), 3), round(logits.max().item(), 3)],
        "versions": versions(),
        "checks_max_abs_diff": ck.summary(),
        "notes": spec.notes + [
            "Each prompt was run alone (batch 1, no padding), eval mode, torch.no_grad, float32, "
            "eager attention; tensors are named '<hook>/<prompt index>' without a batch dimension.",
            "Prompt token ids are passed directly (no tokenizer); the first id is BOS = vocab_size - 1.",
            "See README.md in this folder for shapes and conventions.",
        ],
    }
    js_path = REFERENCE_DIR / f"{spec.name}.json"
    js_path.write_text(dump_json(meta))
    print(f"{spec.name}: {len(prompts)} prompts, lengths {[len(p) for p in prompts]}, "
          f"logits in [{logits.min().item():.2f}, {logits.max().item():.2f}], {len(tensors)} tensors, "
          f"worst check {max(ck.max_diff.values()):.2g}")
    return [*sorted(folder.iterdir()), st_path, js_path, added_path]


def save_added(spec: ModelSpec, added: dict) -> Path:
    """Writes the ADDED_HOOKS references of a model to reference/<name>.added.safetensors."""
    path = REFERENCE_DIR / f"{spec.name}.added.safetensors"
    save_file({k: v.detach().to(torch.float32).contiguous().clone() for k, v in added.items()}, str(path),
              metadata={"format": "pt"})
    return path


@torch.no_grad()
def generate_added(spec: ModelSpec) -> list[Path]:
    """Only the .added file, from the committed checkpoint and prompts, leaving every other file alone.

    The checkpoint is loaded as it is stored (float32 compute) and must reproduce the committed logits,
    so the added references belong to exactly the model and prompts of the committed ones.
    """
    folder = MODELS_DIR / spec.name
    model = GPT2LMHeadModel.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    meta = json.loads((REFERENCE_DIR / f"{spec.name}.json").read_text())
    prompts = meta["prompts"]
    ck = Checks(spec.name)
    added: dict[str, torch.Tensor] = {}
    with safe_open(str(REFERENCE_DIR / f"{spec.name}.safetensors"), "pt") as committed:
        for p, ids in enumerate(prompts):
            cache, hf, raw = run_prompt(model, spec, ids)
            check_prompt(model, spec, ids, cache, hf, raw, {}, ck)
            for name in meta["hooks"] + ["logits"]:
                ck.close(f"committed {name}", cache[name], committed.get_tensor(f"{name}/{p}"), 1e-6)
            added.update({f"{name}/{p}": t for name, t in cache.items() if is_added(name)})
    path = save_added(spec, added)
    print(f"{spec.name}: {len(added)} added tensors, worst check {max(ck.max_diff.values()):.2g}")
    return [path]


def main() -> int:
    torch.set_num_threads(1)  # bit-reproducible reruns
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    added_only = sys.argv[1:] == ["--added-only"]
    if sys.argv[1:] and not added_only:
        print("usage: make_fixtures.py [--added-only]", file=sys.stderr)
        return 2
    written = []
    for spec in SPECS:
        written += generate_added(spec) if added_only else generate(spec)
    total = 0
    print("\nwritten:")
    for path in written:
        size = path.stat().st_size
        total += size
        print(f"  {size / 1024:8.1f} KiB  {path.relative_to(REPO)}")
    readme = REFERENCE_DIR / "README.md"
    if readme.exists():
        total += readme.stat().st_size
    print(f"total {total / 1024 / 1024:.2f} MiB ({total} bytes) under {FIXTURES.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
