"""Shared helpers of the TransformerLens reference scripts (make_patch_fixtures.py,
make_attribution_fixtures.py): the fixture models, their small patching datasets, loading a
TransformerLens bridge on raw weights (checked against Hugging Face), and an independent
plain-PyTorch GPT-2 forward pass with hook points used to verify TransformerLens's numbers.

Not a script; imported by the generators. Importing it sets HF_HUB_OFFLINE=1 (via make_fixtures).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's patching loops use tqdm

import make_fixtures as mf  # noqa: E402  (sets HF_HUB_OFFLINE=1; dump_json, Checks)

import numpy  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402

FIXTURES = mf.FIXTURES
MODELS_DIR = mf.MODELS_DIR
dump_json = mf.dump_json
Checks = mf.Checks


def versions() -> dict:
    import importlib.metadata as md

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "transformer_lens": md.version("transformer-lens"),
            "safetensors": safetensors.__version__, "numpy": numpy.__version__}


# --------------------------------------------------------------------------------------------------
# Datasets: digit-like sequences as token ids (the fixture models have no tokenizer)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    clean: list[int]       # token ids, BOS (vocab_size - 1) first
    corrupted: list[int]   # same length, differs in one or two positions
    answer: int            # the clean prompt's answer token
    corrupted_answer: int  # the foil (what the corrupted prompt suggests)
    note: str

    def as_json(self) -> dict:
        return {"clean": self.clean, "corrupted": self.corrupted, "answer": self.answer,
                "corrupted_answer": self.corrupted_answer, "note": self.note}


def sequence_item(bos: int, start: int, length: int, step: int, kind: str) -> Item:
    """`length` tokens start, start+step, ... after BOS; the answer is the next one.

    kind "repeat-last": the last element repeats the one before it (the study's "1 2 3 3");
    the corrupted answer is the clean prompt's last element.
    kind "swap-last-two": the last two elements are swapped (two positions differ); the corrupted
    answer is the clean prompt's last element (the element the corrupted prompt seems to skip).
    """
    seq = [start + step * i for i in range(length)]
    answer = start + step * length
    if kind == "repeat-last":
        corrupted = seq[:-1] + [seq[-2]]
    elif kind == "swap-last-two":
        corrupted = seq[:-2] + [seq[-1], seq[-2]]
    else:
        raise ValueError(kind)
    return Item([bos] + seq, [bos] + corrupted, answer, seq[-1], f"{kind}, start {start}, step {step}")


@dataclass(frozen=True)
class FixtureModel:
    name: str
    items: list[Item]

    @property
    def folder(self) -> Path:
        return MODELS_DIR / self.name


def _items(bos: int, length: int, starts: list[tuple[int, int, str]]) -> list[Item]:
    return [sequence_item(bos, s, length, step, kind) for s, step, kind in starts]


# Four items per model, all of one length (position-indexed analyses need that). Chosen (fixed, not
# searched at run time) so that the mean clean and corrupted logit differences are well apart; the
# generators stop with an error if |clean - corrupted| < 0.5.
MODELS = [
    FixtureModel("tiny-hub", _items(999, 5, [(101, 1, "repeat-last"), (202, 1, "repeat-last"),
                                             (303, 2, "repeat-last"), (404, 1, "swap-last-two")])),
    FixtureModel("odd-head", _items(699, 6, [(11, 1, "repeat-last"), (122, 1, "repeat-last"),
                                             (233, 3, "repeat-last"), (344, 1, "swap-last-two")])),
]


def tensors_of(items: list[Item]):
    clean = torch.tensor([it.clean for it in items])
    corrupted = torch.tensor([it.corrupted for it in items])
    answers = torch.tensor([it.answer for it in items])
    foils = torch.tensor([it.corrupted_answer for it in items])
    return clean, corrupted, answers, foils


# --------------------------------------------------------------------------------------------------
# Metrics on [batch, pos, vocab] logits
# --------------------------------------------------------------------------------------------------

def logit_diff_per_item(logits, answers, foils):
    last = logits[:, -1, :]
    rows = torch.arange(last.shape[0])
    return last[rows, answers] - last[rows, foils]


def make_metrics(answers, foils):
    """Scalar metrics (mean over items), as TransformerLens's patching functions want them."""
    rows = torch.arange(answers.shape[0])

    def logit_diff(logits):
        return logit_diff_per_item(logits, answers, foils).mean()

    def logit(logits):
        return logits[:, -1, :][rows, answers].mean()

    def prob(logits):
        return torch.softmax(logits[:, -1, :].float(), dim=-1)[rows, answers].mean()

    return {"logit_diff": logit_diff, "logit": logit, "prob": prob}


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

def load_hf(folder: Path) -> GPT2LMHeadModel:
    model = GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def load_bridge(folder: Path):
    """TransformerLens 4.x bridge on the raw HF weights (boot_transformers does no weight
    processing: no fold_ln, no centring; enable_compatibility_mode() is deliberately NOT called)."""
    from transformer_lens.model_bridge import TransformerBridge

    logging.getLogger("transformers").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(str(folder), device="cpu", dtype=torch.float32)
    bridge.eval()
    return bridge


@torch.no_grad()
def check_bridge_matches_hf(bridge, hf: GPT2LMHeadModel, tokens: list[torch.Tensor], ck: Checks) -> None:
    """Bridge logits == HF GPT2LMHeadModel logits (<= 1e-5 absolute): the fixtures are on raw weights."""
    for ids in tokens:
        a = bridge(ids)
        b = hf(ids).logits
        ck.close("bridge_logits_vs_hf", a, b, 1e-5 / max(1.0, b.abs().max().item()))
        if (a - b).abs().max().item() > 1e-5:
            raise AssertionError(f"TransformerLens bridge logits differ from HF by {(a - b).abs().max().item():.3g}")


# --------------------------------------------------------------------------------------------------
# Independent reference forward (plain PyTorch from the HF state dict) with TransformerLens hook names
# --------------------------------------------------------------------------------------------------

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class RefGPT2:
    """GPT-2 forward written out from the HF weights, batch-first, with hooks.

    hooks: {hook name: fn(activation) -> activation}, names as TransformerLens:
    hook_embed, hook_pos_embed, blocks.L.hook_resid_pre, blocks.L.attn.hook_q|k|v|z ([b, pos, head, d_head]),
    blocks.L.attn.hook_pattern ([b, head, q, k]), blocks.L.hook_attn_out, blocks.L.hook_resid_mid,
    blocks.L.mlp.hook_post ([b, pos, d_mlp]), blocks.L.hook_mlp_out, blocks.L.hook_resid_post,
    ln_final.hook_scale ([b, pos, 1]). `cache` (a dict) receives every hook's (patched) value.
    """

    def __init__(self, hf: GPT2LMHeadModel):
        sd = {k.removeprefix("transformer."): v.detach().clone() for k, v in hf.state_dict().items()}
        self.sd = sd
        c = hf.config
        self.n_layer, self.n_head, self.d = c.n_layer, c.n_head, c.n_embd
        self.d_head = self.d // self.n_head
        self.eps = c.layer_norm_epsilon

    def _ln(self, x, prefix, scale_name=None, hooks=None, cache=None):
        mu = x.mean(-1, keepdim=True)
        xc = x - mu
        scale = (xc.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
        if scale_name is not None:
            scale = self._h(scale_name, scale, hooks, cache)
        return xc / scale * self.sd[prefix + ".weight"] + self.sd[prefix + ".bias"]

    @staticmethod
    def _h(name, x, hooks, cache):
        if hooks and name in hooks:
            x = hooks[name](x.clone())
        if cache is not None:
            cache[name] = x
        return x

    @torch.no_grad()
    def forward(self, ids, hooks=None, cache=None):
        sd, H, dh = self.sd, self.n_head, self.d_head
        b, p = ids.shape
        embed = self._h("hook_embed", sd["wte.weight"][ids], hooks, cache)
        pos = self._h("hook_pos_embed", sd["wpe.weight"][:p].expand(b, p, self.d), hooks, cache)
        x = embed + pos
        mask = torch.ones(p, p, dtype=torch.bool).tril()
        for L in range(self.n_layer):
            pre = f"h.{L}"
            hk = f"blocks.{L}"
            x = self._h(f"{hk}.hook_resid_pre", x, hooks, cache)
            h = self._ln(x, f"{pre}.ln_1")
            qkv = h @ sd[f"{pre}.attn.c_attn.weight"] + sd[f"{pre}.attn.c_attn.bias"]
            q, k, v = (t.reshape(b, p, H, dh) for t in qkv.split(self.d, dim=-1))
            q = self._h(f"{hk}.attn.hook_q", q, hooks, cache)
            k = self._h(f"{hk}.attn.hook_k", k, hooks, cache)
            v = self._h(f"{hk}.attn.hook_v", v, hooks, cache)
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh)
            scores = scores.masked_fill(~mask, float("-inf"))
            pattern = self._h(f"{hk}.attn.hook_pattern", torch.softmax(scores, dim=-1), hooks, cache)
            z = self._h(f"{hk}.attn.hook_z", torch.einsum("bhqk,bkhd->bqhd", pattern, v), hooks, cache)
            attn_out = z.reshape(b, p, self.d) @ sd[f"{pre}.attn.c_proj.weight"] + sd[f"{pre}.attn.c_proj.bias"]
            attn_out = self._h(f"{hk}.hook_attn_out", attn_out, hooks, cache)
            x = self._h(f"{hk}.hook_resid_mid", x + attn_out, hooks, cache)
            h = self._ln(x, f"{pre}.ln_2")
            post = gelu_new(h @ sd[f"{pre}.mlp.c_fc.weight"] + sd[f"{pre}.mlp.c_fc.bias"])
            post = self._h(f"{hk}.mlp.hook_post", post, hooks, cache)
            mlp_out = self._h(f"{hk}.hook_mlp_out", post @ sd[f"{pre}.mlp.c_proj.weight"] + sd[f"{pre}.mlp.c_proj.bias"],
                              hooks, cache)
            x = self._h(f"{hk}.hook_resid_post", x + mlp_out, hooks, cache)
        x = self._ln(x, "ln_f", "ln_final.hook_scale", hooks, cache)
        return x @ sd["wte.weight"].T
