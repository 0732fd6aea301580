#!/usr/bin/env python3
"""Generate Scalpel's activation-patching fixtures with TransformerLens's own `patching` module.

For `scalpel patch` (DESIGN.md "Causal analyses"): on the fixture models tiny-hub and odd-head, a
small dataset of 4 items (clean and corrupted token ids of one length, answer and corrupted answer),
every patching sweep of TransformerLens 4.x (`transformer_lens.patching.get_act_patch_*`, run on a
`TransformerBridge` booted on the raw HF weights: no fold_ln, no centring), plus a per-neuron loop on
`blocks.L.mlp.hook_post` with `run_with_hooks`, in the denoise direction (clean activation into the
corrupted run) and, for a few targets, the noise direction (corrupted activation into the clean run).

Writes, under Tests/ScalpelTests/Fixtures/patching/:
  cases.json              items (token ids), metrics, dims of every target, versions, checks
  <model>.safetensors     float32 `<model>/<direction>/<metric>/<target>/raw|normalised`

Every patched value is checked against an independent plain-PyTorch forward pass (tl_reference.RefGPT2)
with the same hook replaced by hand, for every index of every sweep; the bridge's logits are checked
against Hugging Face's GPT2LMHeadModel (<= 1e-5). The script stops with an error if a check fails.
Seeded, single-threaded, rerunnable: `python3 tools/make_patch_fixtures.py`. See
Tests/ScalpelTests/Fixtures/patching/README.md.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tl_reference as tr  # noqa: E402  (sets HF_HUB_OFFLINE, TQDM_DISABLE)
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformer_lens import patching  # noqa: E402

OUT_DIR = tr.FIXTURES / "patching"
REF_TOL = 1e-4  # |TransformerLens patched metric - hand-patched reference| (values are O(1..10))


# --------------------------------------------------------------------------------------------------
# Targets: (name, TransformerLens function, dims, how to patch the reference by hand)
# --------------------------------------------------------------------------------------------------

def _resid_post_sweep(model, corrupted_tokens, clean_cache, metric, **kw):
    """TransformerLens has no get_act_patch_resid_post; the same partial for `resid_post`."""
    return patching.generic_activation_patch(
        model, corrupted_tokens, clean_cache, metric, patch_setter=patching.layer_pos_patch_setter,
        activation_name="resid_post", index_axis_names=("layer", "pos"), **kw)


# Each target: TransformerLens callable, dims of the result, and for the reference check a function
# index -> list of (hook name, setter(corrupted activation, clean activation)).
def _pos_patch(hook):
    def f(index):
        layer, pos = index

        def s(act, clean):
            act[:, pos] = clean[:, pos]
            return act
        return [(f"blocks.{layer}.{hook}", s)]
    return f


def _head_patch(hook):
    def f(index):
        layer, head = index

        def s(act, clean):
            act[:, :, head] = clean[:, :, head]
            return act
        return [(f"blocks.{layer}.attn.{hook}", s)]
    return f


def _pos_head_patch(hook):
    def f(index):
        layer, pos, head = index

        def s(act, clean):
            act[:, pos, head] = clean[:, pos, head]
            return act
        return [(f"blocks.{layer}.attn.{hook}", s)]
    return f


def _pattern_patch(index):
    layer, head = index[:2]
    rest = tuple(index[2:])  # (), (dest,), (dest, src)

    def s(act, clean):
        act[(slice(None), head) + rest] = clean[(slice(None), head) + rest]
        return act
    return [(f"blocks.{layer}.attn.hook_pattern", s)]


TARGETS = {
    # name: (TL function, dims, reference patch, TL function name for the JSON)
    "resid_pre": (patching.get_act_patch_resid_pre, ["layer", "pos"], _pos_patch("hook_resid_pre"),
                  "get_act_patch_resid_pre"),
    "resid_mid": (patching.get_act_patch_resid_mid, ["layer", "pos"], _pos_patch("hook_resid_mid"),
                  "get_act_patch_resid_mid"),
    "resid_post": (_resid_post_sweep, ["layer", "pos"], _pos_patch("hook_resid_post"),
                   "generic_activation_patch(activation_name='resid_post', layer_pos_patch_setter)"),
    "attn_out": (patching.get_act_patch_attn_out, ["layer", "pos"], _pos_patch("hook_attn_out"),
                 "get_act_patch_attn_out"),
    "mlp_out": (patching.get_act_patch_mlp_out, ["layer", "pos"], _pos_patch("hook_mlp_out"),
                "get_act_patch_mlp_out"),
    "z": (patching.get_act_patch_attn_head_out_all_pos, ["layer", "head"], _head_patch("hook_z"),
          "get_act_patch_attn_head_out_all_pos"),
    "q": (patching.get_act_patch_attn_head_q_all_pos, ["layer", "head"], _head_patch("hook_q"),
          "get_act_patch_attn_head_q_all_pos"),
    "k": (patching.get_act_patch_attn_head_k_all_pos, ["layer", "head"], _head_patch("hook_k"),
          "get_act_patch_attn_head_k_all_pos"),
    "v": (patching.get_act_patch_attn_head_v_all_pos, ["layer", "head"], _head_patch("hook_v"),
          "get_act_patch_attn_head_v_all_pos"),
    "z_by_pos": (patching.get_act_patch_attn_head_out_by_pos, ["layer", "pos", "head"], _pos_head_patch("hook_z"),
                 "get_act_patch_attn_head_out_by_pos"),
    "q_by_pos": (patching.get_act_patch_attn_head_q_by_pos, ["layer", "pos", "head"], _pos_head_patch("hook_q"),
                 "get_act_patch_attn_head_q_by_pos"),
    "k_by_pos": (patching.get_act_patch_attn_head_k_by_pos, ["layer", "pos", "head"], _pos_head_patch("hook_k"),
                 "get_act_patch_attn_head_k_by_pos"),
    "v_by_pos": (patching.get_act_patch_attn_head_v_by_pos, ["layer", "pos", "head"], _pos_head_patch("hook_v"),
                 "get_act_patch_attn_head_v_by_pos"),
    "pattern": (patching.get_act_patch_attn_head_pattern_all_pos, ["layer", "head"], _pattern_patch,
                "get_act_patch_attn_head_pattern_all_pos"),
    "pattern_by_dest": (patching.get_act_patch_attn_head_pattern_by_pos, ["layer", "head", "dest_pos"],
                        _pattern_patch, "get_act_patch_attn_head_pattern_by_pos"),
    "pattern_dest_src": (patching.get_act_patch_attn_head_pattern_dest_src_pos,
                         ["layer", "head", "dest_pos", "src_pos"], _pattern_patch,
                         "get_act_patch_attn_head_pattern_dest_src_pos"),
}

# The *_every helpers: stacked sweeps, first axis = patch type.
EVERY = {
    "every_block": (patching.get_act_patch_block_every, ["patch_type", "layer", "pos"],
                    ["resid_pre", "attn_out", "mlp_out"], "get_act_patch_block_every"),
    "every_head": (patching.get_act_patch_attn_head_all_pos_every, ["patch_type", "layer", "head"],
                   ["z", "q", "k", "v", "pattern"], "get_act_patch_attn_head_all_pos_every"),
}

# Targets swept in the noise direction too, and the extra metrics (logit, prob) on one target.
NOISE_TARGETS = ["resid_pre", "z", "mlp_post"]
EXTRA_METRIC_TARGETS = ["resid_pre"]


# --------------------------------------------------------------------------------------------------

def neuron_sweep(bridge, run_tokens, source_cache, metric, n_layer, d_mlp):
    """[layer, neuron]: each neuron of blocks.L.mlp.hook_post replaced at every position by its value
    in source_cache, one run_with_hooks per neuron (the loop a TransformerLens user writes)."""
    out = torch.zeros(n_layer, d_mlp)
    for layer in range(n_layer):
        name = f"blocks.{layer}.mlp.hook_post"
        source = source_cache[name]
        for n in range(d_mlp):
            def hook(act, hook, n=n, source=source):
                act[:, :, n] = source[:, :, n]
                return act
            out[layer, n] = metric(bridge.run_with_hooks(run_tokens, fwd_hooks=[(name, hook)]))
    return out


def neuron_patch(index):
    layer, n = index

    def s(act, clean):
        act[:, :, n] = clean[:, :, n]
        return act
    return [(f"blocks.{layer}.mlp.hook_post", s)]


def every_patch(kinds, index):
    """Reference patch of entry (patch_type, layer, x) of a *_every result."""
    kind = kinds[index[0]]
    rest = index[1:]
    if kind in ("resid_pre", "attn_out", "mlp_out"):
        return _pos_patch(f"hook_{kind}")(rest)
    if kind == "pattern":
        return _pattern_patch(rest)
    return _head_patch(f"hook_{kind}")(rest)


def reference_check(ref, run_tokens, source_cache, metric, values, patch_fn, ck, label):
    """Recompute every entry of `values` with the reference forward and the hook patched by hand."""
    got = torch.zeros_like(values)
    for index in itertools.product(*[range(n) for n in values.shape]):
        hooks = {}
        for name, setter in patch_fn(index):
            hooks[name] = (lambda act, name=name, setter=setter: setter(act, source_cache[name]))
        got[index] = metric(ref.forward(run_tokens, hooks=hooks))
    ck.close(f"tl_vs_reference/{label}", values, got, REF_TOL)


def normalise(raw, clean, corrupted):
    return ((raw.double() - corrupted) / (clean - corrupted)).float()


@torch.no_grad()
def generate(fm: tr.FixtureModel):
    t0 = time.time()
    hf = tr.load_hf(fm.folder)
    bridge = tr.load_bridge(fm.folder)
    ref = tr.RefGPT2(hf)
    cfg = hf.config
    d_mlp = cfg.n_inner or 4 * cfg.n_embd
    clean, corrupted, answers, foils = tr.tensors_of(fm.items)
    ck = tr.Checks(fm.name)
    tr.check_bridge_matches_hf(bridge, hf, [clean, corrupted], ck)
    ck.close("reference_logits_vs_hf", ref.forward(clean), hf(clean).logits, 1e-5)

    metrics = tr.make_metrics(answers, foils)
    clean_logits, clean_cache = bridge.run_with_cache(clean)
    corrupted_logits, corrupted_cache = bridge.run_with_cache(corrupted)
    ref_clean_cache, ref_corrupted_cache = {}, {}
    ref.forward(clean, cache=ref_clean_cache)
    ref.forward(corrupted, cache=ref_corrupted_cache)
    for name, expected in ref_clean_cache.items():
        ck.close("bridge_cache_vs_reference", clean_cache[name].expand_as(expected), expected, 1e-4)

    baselines = {m: {"clean": float(f(clean_logits)), "corrupted": float(f(corrupted_logits))}
                 for m, f in metrics.items()}
    ld = baselines["logit_diff"]
    if abs(ld["clean"] - ld["corrupted"]) < 0.5:
        raise AssertionError(f"{fm.name}: clean and corrupted logit differences too close: {ld}")
    per_item = {"clean": tr.logit_diff_per_item(clean_logits, answers, foils).tolist(),
                "corrupted": tr.logit_diff_per_item(corrupted_logits, answers, foils).tolist()}

    tensors: dict[str, torch.Tensor] = {}
    targets_json: dict[str, dict] = {}

    def store(direction, metric_name, target, raw, dims, function, patch_fn, run_tokens, ref_cache,
              patch_types=None):
        base = baselines[metric_name]
        key = f"{fm.name}/{direction}/{metric_name}/{target}"
        raw = raw.float().contiguous()
        reference_check(ref, run_tokens, ref_cache, metrics[metric_name], raw, patch_fn, ck, key)
        tensors[f"{key}/raw"] = raw
        tensors[f"{key}/normalised"] = normalise(raw, base["clean"], base["corrupted"]).contiguous()
        entry = {"dims": dims, "shape": list(raw.shape), "function": function}
        if patch_types:
            entry["patch_types"] = patch_types
        targets_json.setdefault(f"{direction}/{metric_name}", {})[target] = entry

    # Denoise: run the corrupted tokens, patch in the clean cache (TransformerLens's convention).
    for target, (fn, dims, patch_fn, fname) in TARGETS.items():
        raw = fn(bridge, corrupted, clean_cache, metrics["logit_diff"])
        store("denoise", "logit_diff", target, raw, dims, fname, patch_fn, corrupted, ref_clean_cache)
    for target, (fn, dims, kinds, fname) in EVERY.items():
        raw = fn(bridge, corrupted, clean_cache, metrics["logit_diff"])
        store("denoise", "logit_diff", target, raw, dims, fname,
              lambda index, kinds=kinds: every_patch(kinds, index), corrupted, ref_clean_cache, patch_types=kinds)
    raw = neuron_sweep(bridge, corrupted, clean_cache, metrics["logit_diff"], cfg.n_layer, d_mlp)
    store("denoise", "logit_diff", "mlp_post", raw, ["layer", "neuron"],
          "run_with_hooks loop on blocks.L.mlp.hook_post", neuron_patch, corrupted, ref_clean_cache)

    # The *_every stacks must equal the individual sweeps.
    for target, (_, _, kinds, _) in EVERY.items():
        stacked = tensors[f"{fm.name}/denoise/logit_diff/{target}/raw"]
        for i, kind in enumerate(kinds):
            single = tensors[f"{fm.name}/denoise/logit_diff/{kind}/raw"]
            ck.close(f"every_equals_single/{target}/{kind}", stacked[i], single, 0.0)

    # Extra metrics (logit, prob) via TransformerLens's mapping-of-metrics form (one sweep, all three).
    for target in EXTRA_METRIC_TARGETS:
        fn, dims, patch_fn, fname = TARGETS[target]
        result = fn(bridge, corrupted, clean_cache, dict(metrics), baseline=True)
        for m, name in enumerate(result.metric_names):
            ck.close(f"mapping_baseline/{name}", result.baseline[m], torch.tensor(baselines[name]["corrupted"]), 1e-6)
            if name == "logit_diff":
                ck.close("mapping_equals_single/logit_diff", result.values[m],
                         tensors[f"{fm.name}/denoise/logit_diff/{target}/raw"], 0.0)
                continue
            store("denoise", name, target, result.values[m], dims, fname + " with a {name: metric} mapping",
                  patch_fn, corrupted, ref_clean_cache)

    # Noise: run the clean tokens, patch in the corrupted cache (same functions, arguments swapped).
    for target in NOISE_TARGETS:
        if target == "mlp_post":
            raw = neuron_sweep(bridge, clean, corrupted_cache, metrics["logit_diff"], cfg.n_layer, d_mlp)
            store("noise", "logit_diff", target, raw, ["layer", "neuron"],
                  "run_with_hooks loop on blocks.L.mlp.hook_post", neuron_patch, clean, ref_corrupted_cache)
            continue
        fn, dims, patch_fn, fname = TARGETS[target]
        raw = fn(bridge, clean, corrupted_cache, metrics["logit_diff"])
        store("noise", "logit_diff", target, raw, dims, fname, patch_fn, clean, ref_corrupted_cache)

    diff_positions = [p for p in range(clean.shape[1]) if not torch.equal(clean[:, p], corrupted[:, p])]
    # Patching an activation that is the same in both runs changes nothing: layer 0, positions where
    # no item differs, gives exactly the unpatched metric (corrupted for denoise, clean for noise).
    same = [p for p in range(clean.shape[1]) if p not in diff_positions]
    for direction, base in (("denoise", ld["corrupted"]), ("noise", ld["clean"])):
        raw0 = tensors[f"{fm.name}/{direction}/logit_diff/resid_pre/raw"][0, same]
        ck.close(f"unchanged_positions_give_baseline/{direction}", raw0, torch.full_like(raw0, base), 1e-6)

    print(f"{fm.name}: {len(tensors)} tensors, {time.time() - t0:.1f} s", file=sys.stderr)
    model_json = {
        "checkpoint": f"models/{fm.name}",
        "config": {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "d_model": cfg.n_embd, "d_mlp": d_mlp,
                   "vocab_size": cfg.vocab_size, "bos": cfg.vocab_size - 1},
        "items": [it.as_json() for it in fm.items],
        "n_items": len(fm.items),
        "seq_len": int(clean.shape[1]),
        "positions_that_differ": diff_positions,
        "metrics": baselines,
        "logit_diff_per_item": per_item,
        "targets": targets_json,
        "checks_max_abs_diff": ck.summary(),
    }
    return tensors, model_json


def main() -> int:
    torch.set_num_threads(1)  # bit-reproducible reruns
    torch.manual_seed(0)  # nothing random is drawn; set anyway
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    models = {}
    for fm in tr.MODELS:
        tensors, model_json = generate(fm)
        save_file(tensors, OUT_DIR / f"{fm.name}.safetensors", metadata={"format": "pt"})
        models[fm.name] = model_json
    cases = {
        "description": "TransformerLens activation-patching references; see README.md",
        "metric_definitions": {
            "logit_diff": "mean over items of logits[item, last, answer] - logits[item, last, corrupted_answer]",
            "logit": "mean over items of logits[item, last, answer]",
            "prob": "mean over items of softmax(logits[item, last, :])[answer]",
        },
        "normalised": "(raw - corrupted) / (clean - corrupted), clean/corrupted = the metric of the unpatched "
                      "clean/corrupted runs (the same two numbers for both directions), computed in float64, stored float32",
        "directions": {
            "denoise": "run the corrupted tokens, patch in the clean run's activation (TL: corrupted_tokens=corrupted, clean_cache=clean cache)",
            "noise": "run the clean tokens, patch in the corrupted run's activation (TL: corrupted_tokens=clean, clean_cache=corrupted cache)",
        },
        "tensor_names": "<model>/<direction>/<metric>/<target>/raw|normalised, float32, in <model>.safetensors",
        "models": models,
        "versions": tr.versions(),
    }
    (OUT_DIR / "cases.json").write_text(tr.dump_json(cases))
    print(f"wrote {OUT_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
