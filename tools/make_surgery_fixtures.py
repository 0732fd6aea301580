#!/usr/bin/env python3
"""Generate Scalpel's surgery fixtures: expected logits of edited GPT-2 graphs.

An edited model is a graph: embedding -> list of block parts -> ln_f -> lm_head (tied). Every part is
run here by calling the Hugging Face submodules of `GPT2LMHeadModel.transformer.h[i]` (`ln_1`, `attn`,
`ln_2`, `mlp`) directly; head and neuron ablations replace the input of `attn.c_proj` / `mlp.c_proj`
with a forward pre-hook. See DESIGN.md "Surgery plans" and Tests/ScalpelTests/Fixtures/surgery/README.md.

Writes, under Tests/ScalpelTests/Fixtures/:
  models/tiny-hub-b/        a second 2-layer model of tiny-hub's width (save_pretrained), for stitching
  surgery/cases.json        the cases (block lists, edits, prompts as token ids)
  surgery/<name>.safetensors
                            float32 `logits/<prompt index>` [pos, vocab] and, for mean edits,
                            `means/<edit index>/<layer.unit>` ([d_head] per head, [1] per neuron)

Needs the fixture checkpoints of tools/make_fixtures.py (it reuses that script's helpers).
Seeded, single-threaded, byte-identical reruns: `python3 tools/make_surgery_fixtures.py`.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixtures as mf  # noqa: E402  (sets HF_HUB_OFFLINE=1)
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402

FIXTURES = mf.FIXTURES
MODELS_DIR = mf.MODELS_DIR
REFERENCE_DIR = mf.REFERENCE_DIR
SURGERY_DIR = FIXTURES / "surgery"

# The stitching partner of tiny-hub: same shape, its own seed; weights drawn exactly as make_fixtures.py.
TINY_HUB_B = mf.ModelSpec(
    name="tiny-hub-b", seed=1005, n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=32,
    layout="save_pretrained", prompt_lengths=[],
)

# Which prompts of reference/<model>.json each case is evaluated on: the shortest (BOS alone) and the
# longest (it repeats a run of tokens), which covers every prefix length. All prompts would make the
# surgery folder about 1.1 MB; these two keep it near 0.5 MB.
EVAL_PROMPT_INDICES = {"tiny-hub": [0, 3], "odd-head": [0, 4]}

# The prompts mean ablations average over: three fixed prompts per model, BOS (vocab - 1) first.
MEAN_PROMPT_LENGTHS = [3, 6, 9]
MEAN_PROMPT_SEED = 3001


@dataclass(frozen=True)
class Case:
    name: str
    base: str
    blocks: list
    edits: list = ()
    models: dict | None = None
    description: str = ""


CASES = [
    Case("identity", "odd-head", ["0-2"],
         description="every block: must equal the plain HF forward pass"),
    Case("tiny-0-1mlp", "tiny-hub", ["0", "1.mlp"],
         description="block 0, then only the MLP half of block 1"),
    Case("tiny-0attn-1", "tiny-hub", ["0.attn", "1"],
         description="only the attention half of block 0, then block 1"),
    Case("odd-0to1-2attn", "odd-head", ["0-1", "2.attn"],
         description="range 0-1, then the attention half of block 2"),
    Case("odd-0attn-1mlpnoln-2", "odd-head", ["0.attn", "1.mlp.noln", "2"],
         description="attention of 0, MLP of 1 without ln_2, block 2"),
    Case("odd-reorder-2-0-0", "odd-head", ["2", "0", "0"],
         description="reordering and repeats"),
    Case("odd-empty", "odd-head", [],
         description="no blocks: ln_f(wte + wpe) -> lm_head"),
    Case("odd-mlp-only", "odd-head", ["0-2.mlp"],
         description="range with a part: the MLP halves of 0, 1, 2"),
    Case("odd-ablate-heads-zero", "odd-head", ["0-2"],
         edits=[{"ablate_heads": ["1.2", "0.0"], "mode": "zero"}],
         description="heads 1.2 and 0.0 zeroed"),
    Case("odd-ablate-head-mean", "odd-head", ["0-2"],
         edits=[{"ablate_heads": ["2.1"], "mode": "mean"}],
         description="head 2.1 replaced by its mean z over mean_prompts"),
    Case("odd-keep-heads-mean", "odd-head", ["0-1", "2.mlp"],
         edits=[{"keep_heads": ["1.3"], "mode": "mean"}],
         description="every head of the graph's attention halves (0.*, 1.*) mean-ablated except 1.3"),
    Case("odd-ablate-neurons-zero", "odd-head", ["0-2"],
         edits=[{"ablate_neurons": ["1.5", "2.79"], "mode": "zero"}],
         description="MLP neurons 1.5 and 2.79 (post-gelu) zeroed"),
    Case("odd-ablate-neurons-mean", "odd-head", ["0-2"],
         edits=[{"ablate_neurons": ["1.5", "2.79"], "mode": "mean"}],
         description="MLP neurons 1.5 and 2.79 replaced by their means over mean_prompts"),
    Case("tiny-stitch-other", "tiny-hub", ["0", "other:1", "other:0.mlp"], models={"other": "tiny-hub-b"},
         description="block 0 of tiny-hub, block 1 of tiny-hub-b, then the MLP half of tiny-hub-b's block 0"),
]


# --------------------------------------------------------------------------------------------------
# Block lists
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    """One entry of the expanded graph: a block (or half block) of one model."""

    model: str  # "base" or a key of Case.models
    layer: int
    part: str  # "block" | "attn" | "mlp" | "mlp.noln"

    @property
    def has_attn(self) -> bool:
        return self.part in ("block", "attn")

    @property
    def has_mlp(self) -> bool:
        return self.part in ("block", "mlp", "mlp.noln")


BLOCK_RE = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]*):)?(\d+)(?:-(\d+))?(?:\.(attn|mlp\.noln|mlp))?$")
UNIT_RE = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]*):)?(\d+)\.(\d+)$")


def expand_blocks(blocks: list[str], models: dict[str, GPT2LMHeadModel]) -> list[Node]:
    nodes = []
    for entry in blocks:
        m = BLOCK_RE.match(entry)
        assert m, f"bad block entry {entry!r}"
        key = m.group(1) or "base"
        assert key in models, f"block {entry!r}: no model {key!r}"
        first = int(m.group(2))
        last = int(m.group(3)) if m.group(3) is not None else first
        assert first <= last, f"block {entry!r}: empty range"
        n_layer = models[key].config.n_layer
        assert last < n_layer, f"block {entry!r}: model has {n_layer} layers"
        nodes += [Node(key, i, m.group(4) or "block") for i in range(first, last + 1)]
    return nodes


def parse_unit(text: str) -> tuple[str, int, int]:
    """'l.u' or 'other:l.u' -> (model key, layer, head or neuron)."""
    m = UNIT_RE.match(text)
    assert m, f"bad unit {text!r}"
    return m.group(1) or "base", int(m.group(2)), int(m.group(3))


# --------------------------------------------------------------------------------------------------
# Running a graph
# --------------------------------------------------------------------------------------------------

def causal_mask(n: int) -> torch.Tensor:
    """Additive mask [1, 1, n, n]: 0 on and below the diagonal, float32 min above (as HF's eager mask).

    Calling `GPT2Attention` directly with `attention_mask=None` under eager attention is NOT causal in
    transformers 5 (the mask is built by GPT2Model), so it has to be passed explicitly.
    """
    m = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)
    return m.view(1, 1, n, n)


@contextmanager
def pre_hook(module, fn):
    handle = module.register_forward_pre_hook(fn)
    try:
        yield
    finally:
        handle.remove()


class Graph:
    """A base model, optional other models, an expanded block list and the edits applied so far."""

    def __init__(self, models: dict[str, GPT2LMHeadModel], nodes: list[Node]):
        self.models = models
        self.nodes = nodes
        # (model, layer, head) -> None (zero) or a [d_head] vector; (model, layer, neuron) -> None or [1]
        self.heads: dict[tuple[str, int, int], torch.Tensor | None] = {}
        self.neurons: dict[tuple[str, int, int], torch.Tensor | None] = {}

    def block(self, node: Node):
        return self.models[node.model].transformer.h[node.layer]

    @torch.no_grad()
    def run(self, ids: list[int], capture: dict | None = None) -> torch.Tensor:
        """Logits [pos, vocab]. With `capture`, records per (kind, model, layer) the edited c_proj inputs."""
        base = self.models["base"].transformer
        n = len(ids)
        x = base.wte(torch.tensor([ids])) + base.wpe(torch.arange(n).unsqueeze(0))
        mask = causal_mask(n)
        for node in self.nodes:
            block = self.block(node)
            if node.has_attn:
                with pre_hook(block.attn.c_proj, self._z_hook(node, capture)):
                    attn_out, _ = block.attn(block.ln_1(x), attention_mask=mask)
                x = x + attn_out
            if node.has_mlp:
                with pre_hook(block.mlp.c_proj, self._post_hook(node, capture)):
                    h = x if node.part == "mlp.noln" else block.ln_2(x)
                    x = x + block.mlp(h)
        return self.models["base"].lm_head(base.ln_f(x))[0]

    def _z_hook(self, node: Node, capture):
        d_head = self.models[node.model].config.n_embd // self.models[node.model].config.n_head
        edits = {h: v for (m, l, h), v in self.heads.items() if (m, l) == (node.model, node.layer)}

        def hook(module, args):
            z = args[0]
            if edits:
                z = z.clone()
                for h, v in edits.items():
                    z[..., h * d_head:(h + 1) * d_head] = 0.0 if v is None else v
            if capture is not None:
                capture.setdefault(("z", node.model, node.layer), []).append(z[0].clone())
            return (z,)
        return hook

    def _post_hook(self, node: Node, capture):
        edits = {u: v for (m, l, u), v in self.neurons.items() if (m, l) == (node.model, node.layer)}

        def hook(module, args):
            post = args[0]
            if edits:
                post = post.clone()
                for u, v in edits.items():
                    post[..., u] = 0.0 if v is None else v[0]
            if capture is not None:
                capture.setdefault(("post", node.model, node.layer), []).append(post[0].clone())
            return (post,)
        return hook

    def attn_sources(self) -> list[tuple[str, int]]:
        return [(n.model, n.layer) for n in self.nodes if n.has_attn]

    def mlp_sources(self) -> list[tuple[str, int]]:
        return [(n.model, n.layer) for n in self.nodes if n.has_mlp]


def unit_name(model: str, layer: int, unit: int) -> str:
    return f"{layer}.{unit}" if model == "base" else f"{model}:{layer}.{unit}"


@torch.no_grad()
def apply_edit(graph: Graph, edit: dict, mean_prompts: list[list[int]] | None) -> dict[str, torch.Tensor]:
    """Adds one edit to the graph; returns the means it computed ({'l.u': tensor}), empty for zero mode."""
    mode = edit["mode"]
    assert mode in ("zero", "mean"), edit
    kinds = [k for k in ("ablate_heads", "keep_heads", "ablate_neurons") if k in edit]
    assert len(kinds) == 1 and set(edit) == {kinds[0], "mode"}, f"bad edit {edit}"
    kind = kinds[0]
    attn_sources, mlp_sources = graph.attn_sources(), graph.mlp_sources()
    if kind == "keep_heads":
        keep = {parse_unit(u) for u in edit[kind]}
        units = []
        for m, l in dict.fromkeys(attn_sources):  # graph order, each source once
            units += [(m, l, h) for h in range(graph.models[m].config.n_head) if (m, l, h) not in keep]
    else:
        units = [parse_unit(u) for u in edit[kind]]
    heads = kind != "ablate_neurons"
    for m, l, u in units:
        cfg = graph.models[m].config
        limit = cfg.n_head if heads else (cfg.n_inner or 4 * cfg.n_embd)
        assert 0 <= u < limit, f"{kind}: unit {unit_name(m, l, u)} out of range ({limit})"
        sources = attn_sources if heads else mlp_sources
        assert (m, l) in sources, f"{kind}: {unit_name(m, l, u)}: layer {l} has no {'attention' if heads else 'MLP'} in the graph"
        # A mean over a source that runs twice in the graph would be ambiguous (which occurrence?).
        assert mode == "zero" or sources.count((m, l)) == 1, f"mean of repeated block {m}:{l} is ambiguous"

    means: dict[str, torch.Tensor] = {}
    if mode == "mean":
        assert mean_prompts, "mean mode needs mean_prompts"
        capture: dict = {}
        for ids in mean_prompts:  # the graph as built so far: earlier edits applied, this one not yet
            graph.run(ids, capture)
        for m, l, u in units:
            if heads:
                d_head = graph.models[m].config.n_embd // graph.models[m].config.n_head
                z = torch.cat(capture[("z", m, l)])  # [every position of every prompt, n_embd]
                means[unit_name(m, l, u)] = z[:, u * d_head:(u + 1) * d_head].mean(0)
            else:
                post = torch.cat(capture[("post", m, l)])
                means[unit_name(m, l, u)] = post[:, u:u + 1].mean(0)
    table = graph.heads if heads else graph.neurons
    for m, l, u in units:
        table[(m, l, u)] = None if mode == "zero" else means[unit_name(m, l, u)]
    return means


# --------------------------------------------------------------------------------------------------
# Independent cross-checks (plain HF forward passes of modified copies of the model)
# --------------------------------------------------------------------------------------------------

@torch.no_grad()
def hf_logits(model: GPT2LMHeadModel, ids: list[int]) -> torch.Tensor:
    return model(torch.tensor([ids]), use_cache=False).logits[0]


@torch.no_grad()
def folded_model(model: GPT2LMHeadModel, graph: Graph) -> GPT2LMHeadModel:
    """A copy of the model with the graph's (full-model, base-only) ablations folded into c_proj.

    Replacing a head's z slice by v equals zeroing those rows of attn.c_proj.weight ([in, out]) and
    adding v @ rows to attn.c_proj.bias; a neuron likewise with mlp.c_proj.
    """
    folded = copy.deepcopy(model)
    h = folded.transformer.h
    d_head = model.config.n_embd // model.config.n_head
    for (m, l, u), v in graph.heads.items():
        assert m == "base"
        proj = h[l].attn.c_proj
        rows = slice(u * d_head, (u + 1) * d_head)
        if v is not None:
            proj.bias += v @ proj.weight[rows]
        proj.weight[rows] = 0.0
    for (m, l, u), v in graph.neurons.items():
        assert m == "base"
        proj = h[l].mlp.c_proj
        if v is not None:
            proj.bias += v[0] * proj.weight[u]
        proj.weight[u] = 0.0
    return folded


@torch.no_grad()
def hf_means(model: GPT2LMHeadModel, kind: str, units: list[str], prompts: list[list[int]]) -> dict[str, torch.Tensor]:
    """Means of base-model units ('l.u') from the plain HF forward pass with hooks on c_proj.

    Equals the graph's means when the graph up to those layers is the unedited model (a first edit whose
    units sit in a leading run of whole blocks 0, 1, ...).
    """
    d_head = model.config.n_embd // model.config.n_head
    seen: dict[int, list[torch.Tensor]] = {}
    handles = []
    for l, block in enumerate(model.transformer.h):
        target = block.attn.c_proj if kind == "heads" else block.mlp.c_proj
        handles.append(target.register_forward_pre_hook(
            lambda mod, args, l=l: seen.setdefault(l, []).append(args[0][0].clone())))
    try:
        for ids in prompts:
            model(torch.tensor([ids]), use_cache=False)
    finally:
        for hd in handles:
            hd.remove()
    out = {}
    for u in units:
        _, l, i = parse_unit(u)
        acts = torch.cat(seen[l])
        out[u] = acts[:, i * d_head:(i + 1) * d_head].mean(0) if kind == "heads" else acts[:, i:i + 1].mean(0)
    return out


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------

def load(name: str) -> GPT2LMHeadModel:
    model, info = GPT2LMHeadModel.from_pretrained(
        str(MODELS_DIR / name), dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"{name}: loading info {bad}"
    assert model.lm_head.weight is model.transformer.wte.weight
    return model.eval()


def mean_prompts_for(model: GPT2LMHeadModel) -> list[list[int]]:
    g = torch.Generator().manual_seed(MEAN_PROMPT_SEED)
    vocab = model.config.vocab_size
    return [[vocab - 1] + torch.randint(0, vocab - 1, (n - 1,), generator=g).tolist()
            for n in MEAN_PROMPT_LENGTHS]


def write_tiny_hub_b() -> Path:
    folder = MODELS_DIR / TINY_HUB_B.name
    model = mf.build_model(TINY_HUB_B)
    mf.save_checkpoint(model, TINY_HUB_B, folder)
    mf.check_checkpoint_files(TINY_HUB_B, folder, model)
    reloaded = load(TINY_HUB_B.name)
    for (k, a), (k2, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    return folder


def dump_json(obj) -> str:
    """make_fixtures.dump_json, and lists of plain strings (block lists, units) also kept on one line."""
    text = mf.dump_json(obj)
    return re.sub(r'\[\s*("[^"\[\]{}]*"(?:,\s*"[^"\[\]{}]*")*)\s*\]',
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def close(name: str, a: torch.Tensor, b: torch.Tensor, tol: float, worst: dict) -> None:
    assert a.shape == b.shape, f"{name}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    diff = (a.double() - b.double()).abs().max().item()
    worst[name] = max(worst.get(name, 0.0), diff)
    assert diff <= tol, f"{name}: max diff {diff:.3g} > {tol:g}"


def main() -> int:
    torch.set_num_threads(1)  # bit-reproducible reruns
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    written = [*sorted(write_tiny_hub_b().iterdir())]
    models = {name: load(name) for name in ("tiny-hub", "odd-head", "tiny-hub-b")}
    reference = {name: json.loads((REFERENCE_DIR / f"{name}.json").read_text())["prompts"]
                 for name in ("tiny-hub", "odd-head")}
    SURGERY_DIR.mkdir(parents=True, exist_ok=True)
    for old in SURGERY_DIR.glob("*.safetensors"):
        old.unlink()

    worst: dict[str, float] = {}
    cases_json = []
    for case in CASES:
        bound = {"base": models[case.base]} | {k: models[v] for k, v in (case.models or {}).items()}
        for key, m in bound.items():
            assert m.config.n_embd == bound["base"].config.n_embd, f"{case.name}: {key} has another width"
        graph = Graph(bound, expand_blocks(case.blocks, bound))
        uses_mean = any(e["mode"] == "mean" for e in case.edits)
        mean_prompts = mean_prompts_for(bound["base"]) if uses_mean else None
        tensors: dict[str, torch.Tensor] = {}
        for k, edit in enumerate(case.edits):
            for unit, mean in apply_edit(graph, edit, mean_prompts).items():
                tensors[f"means/{k}/{unit}"] = mean
        prompts = [reference[case.base][p] for p in EVAL_PROMPT_INDICES[case.base]]
        for p, ids in enumerate(prompts):
            tensors[f"logits/{p}"] = graph.run(ids)

        # Independent routes.
        base = bound["base"]
        if case.name == "identity":
            for p, ids in enumerate(reference[case.base]):  # every reference prompt, not just the stored ones
                close("identity = HF forward", graph.run(ids), hf_logits(base, ids), 1e-5, worst)
        full = case.blocks == [f"0-{base.config.n_layer - 1}"] and not case.models
        if full and case.edits:
            folded = folded_model(base, graph)
            for p, ids in enumerate(prompts):
                close(f"{case.name}: edits folded into c_proj (HF forward)", tensors[f"logits/{p}"],
                      hf_logits(folded, ids), 1e-5, worst)
            # The edit must matter.
            assert (tensors["logits/1"] - hf_logits(base, prompts[1])).abs().max() > 1e-2, case.name
        if case.edits and not case.models:
            # Any base-only graph: the edits folded into c_proj, run as the same graph without edits.
            folded_graph = Graph({"base": folded_model(base, graph)}, graph.nodes)
            for p, ids in enumerate(prompts):
                close(f"{case.name}: edits folded into c_proj (graph)", tensors[f"logits/{p}"],
                      folded_graph.run(ids), 1e-5, worst)
        if uses_mean:
            # Every mean case here has one edit whose layers sit in leading whole blocks 0, 1, ...
            assert len(case.edits) == 1
            units = [k.split("/", 2)[2] for k in tensors if k.startswith("means/0/")]
            kind = "neurons" if "ablate_neurons" in case.edits[0] else "heads"
            for unit, mean in hf_means(base, kind, units, mean_prompts).items():
                close(f"{case.name}: means from HF forward hooks", tensors[f"means/0/{unit}"], mean, 1e-6, worst)
        if case.name == "odd-ablate-heads-zero":
            # The brief's named check: zero ablation by hand = HF model with those c_proj rows zeroed.
            zeroed = copy.deepcopy(base)
            d_head = base.config.n_embd // base.config.n_head
            with torch.no_grad():
                for unit in case.edits[0]["ablate_heads"]:
                    _, l, h = parse_unit(unit)
                    zeroed.transformer.h[l].attn.c_proj.weight[h * d_head:(h + 1) * d_head] = 0.0
            for p, ids in enumerate(prompts):
                close("zero heads = c_proj rows zeroed (HF forward)", tensors[f"logits/{p}"],
                      hf_logits(zeroed, ids), 1e-5, worst)
        if case.name == "odd-empty":
            tr = base.transformer
            for p, ids in enumerate(prompts):
                x = tr.wte.weight[ids] + tr.wpe.weight[:len(ids)]
                close("empty = ln_f(wte + wpe) @ wte^T", tensors[f"logits/{p}"],
                      torch.nn.functional.layer_norm(x, (x.shape[-1],), tr.ln_f.weight, tr.ln_f.bias, 1e-5)
                      @ tr.wte.weight.T, 1e-5, worst)
        if case.name == "odd-reorder-2-0-0":
            # Whole blocks as HF's GPT2Block.forward, called directly with the causal mask.
            tr = base.transformer
            for p, ids in enumerate(prompts):
                x = tr.wte(torch.tensor([ids])) + tr.wpe(torch.arange(len(ids)).unsqueeze(0))
                with torch.no_grad():
                    for i in (2, 0, 0):
                        x = tr.h[i](x, attention_mask=causal_mask(len(ids)))
                    close("whole blocks = GPT2Block.forward", tensors[f"logits/{p}"],
                          base.lm_head(tr.ln_f(x))[0], 1e-5, worst)
        if case.name == "tiny-stitch-other":
            # Stitching from a copy of the model itself must equal the unstitched graph exactly.
            same = Graph({"base": base, "other": base}, expand_blocks(case.blocks, {"base": base, "other": base}))
            plain = Graph({"base": base}, expand_blocks(["0", "1", "0.mlp"], {"base": base}))
            close("other:=self equals plain", same.run(prompts[1]), plain.run(prompts[1]), 0, worst)
            assert (tensors["logits/1"] - plain.run(prompts[1])).abs().max() > 1e-2

        tensors = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}
        assert all(torch.isfinite(t).all() for t in tensors.values())
        path = SURGERY_DIR / f"{case.name}.safetensors"
        save_file(tensors, str(path), metadata={"format": "pt"})
        written.append(path)

        entry = {"name": case.name, "description": case.description, "base": case.base}
        if case.models:
            entry["models"] = dict(case.models)
        entry["blocks"] = list(case.blocks)
        entry["edits"] = [dict(e) for e in case.edits]
        if uses_mean:
            entry["mean_prompts"] = mean_prompts
        entry["prompts"] = prompts
        cases_json.append(entry)
        lg = torch.cat([tensors[f"logits/{p}"].flatten() for p in range(len(prompts))])
        n_means = sum(k.startswith("means/") for k in tensors)
        print(f"{case.name:26s} {case.base:8s} {str(case.blocks):32s} logits [{lg.min():6.2f}, {lg.max():6.2f}]"
              f"{f', {n_means} means' if n_means else ''}")

    # The causal mask matters: without it the longest prompt's logits change.
    g = Graph({"base": models["odd-head"]}, expand_blocks(["0-2"], {"base": models["odd-head"]}))
    ids = reference["odd-head"][-1]
    with torch.no_grad():
        tr = models["odd-head"].transformer
        x = tr.wte(torch.tensor([ids])) + tr.wpe(torch.arange(len(ids)).unsqueeze(0))
        for blk in tr.h:
            x = blk(x)  # attention_mask=None
        unmasked = models["odd-head"].lm_head(tr.ln_f(x))[0]
    assert (unmasked - g.run(ids)).abs().max() > 1e-2, "eager attention without a mask was causal after all?"

    cases_path = SURGERY_DIR / "cases.json"
    cases_path.write_text(dump_json(cases_json))
    written.append(cases_path)

    print("\nchecks (max abs diff):")
    for name, diff in sorted(worst.items()):
        print(f"  {diff:9.3g}  {name}")
    print("\nwritten:")
    total = 0
    for path in written:
        total += path.stat().st_size
        print(f"  {path.stat().st_size / 1024:8.1f} KiB  {path.relative_to(mf.REPO)}")
    surgery = sum(p.stat().st_size for p in SURGERY_DIR.iterdir())
    print(f"total {total / 1024:.1f} KiB; surgery/ {surgery / 1024:.1f} KiB")
    assert surgery < 700 * 1024, "surgery fixtures grew past 700 KiB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
