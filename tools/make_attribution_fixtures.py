#!/usr/bin/env python3
"""Generate Scalpel's direct-logit-attribution and head-detector fixtures with TransformerLens.

For `scalpel attribute` and `scalpel heads --detect` (DESIGN.md "Causal analyses"), on the fixture
models tiny-hub and odd-head (the items of tools/tl_reference.py, as the patching fixtures), with a
TransformerLens 4.x `TransformerBridge` on the raw HF weights (no fold_ln, no centring):

- attribution at the last position along the answer - corrupted-answer unembedding direction, averaged
  over items: by component (`cache.decompose_resid`), by head (`cache.stack_head_results`), by neuron
  (`cache.stack_neuron_results`), by layer (`cache.accumulated_resid(apply_ln=True)`), in DESIGN's
  convention (centred, / cached ln_final scale, x ln_final.w) and in TransformerLens's own
  (`cache.logit_attrs`: centred, / cached scale, no ln_final.w since TL expects folded weights);
- `head_detector.detect_head` scores (previous-token, duplicate-token, induction; error measure
  "mul"; with and without exclude_bos / exclude_current_token) on the dataset prompts and on seeded
  repeated random tokens.

Writes, under Tests/ScalpelTests/Fixtures/attribution/:
  cases.json              items, labels, dims, the model's logit differences, versions, checks
  <model>.safetensors     float32 tensors, names in README.md

Everything is also recomputed by hand from an independent plain-PyTorch forward (tl_reference.RefGPT2)
and the sums are checked against the actual logit difference; the script stops if a check fails.
Single-threaded, seeded, rerunnable: `python3 tools/make_attribution_fixtures.py`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tl_reference as tr  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformer_lens import head_detector  # noqa: E402

OUT_DIR = tr.FIXTURES / "attribution"
TOL = 1e-5  # relative to max(1, |expected|)

DETECTORS = ["previous_token_head", "duplicate_token_head", "induction_head"]
DETECTOR_VARIANTS = {  # name: (exclude_bos, exclude_current_token)
    "plain": (False, False),
    "exclude_bos": (True, False),
    "exclude_current": (False, True),
    "exclude_bos_current": (True, True),
}
REPEAT_SEED = 4242
REPEAT_HALF = 10  # BOS + 10 random tokens + the same 10 again = 21 tokens
REPEAT_PROMPTS = 3


def repeated_random_prompts(vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(REPEAT_PROMPTS):
        half = torch.randint(0, vocab - 1, (REPEAT_HALF,), generator=g).tolist()  # never BOS
        out.append([vocab - 1] + half + half)
    return out


# --------------------------------------------------------------------------------------------------
# Hand-made references from the plain-PyTorch cache
# --------------------------------------------------------------------------------------------------

def centred_over_scale(x, scale):
    return (x - x.mean(-1, keepdim=True)) / scale


def hand_detection_pattern(kind: str, ids: list[int]) -> torch.Tensor:
    p = len(ids)
    det = torch.zeros(p, p)
    for i in range(p):
        for j in range(i + 1):
            if kind == "previous_token_head":
                det[i, j] = float(j == i - 1)
            elif kind == "duplicate_token_head":
                det[i, j] = float(j < i and ids[j] == ids[i])
            elif kind == "induction_head":  # the key after an earlier copy of the current token
                det[i, j] = float(j >= 1 and j - 1 < i and ids[j - 1] == ids[i])
    return det


def hand_detect(ref, prompts, kind, exclude_bos, exclude_current, n_layer, n_head):
    scores = torch.zeros(len(prompts), n_layer, n_head)
    for k, ids in enumerate(prompts):
        cache = {}
        ref.forward(torch.tensor([ids]), cache=cache)
        det = hand_detection_pattern(kind, ids)
        for L in range(n_layer):
            for h in range(n_head):
                pat = cache[f"blocks.{L}.attn.hook_pattern"][0, h].clone()
                if exclude_bos:
                    pat[:, 0] = 0
                if exclude_current:
                    pat.fill_diagonal_(0)
                scores[k, L, h] = (pat * det).sum() / pat.sum()
    return scores.mean(0)


class TokenShim:
    """detect_head takes strings and calls model.to_tokens; the fixture models have no tokenizer, so
    each prompt is a key ("p0", "p1", ...) that this shim maps to its token ids (BOS included)."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.table: dict[str, torch.Tensor] = {}

    def key(self, ids: list[int]) -> str:
        k = f"p{len(self.table)}"
        self.table[k] = torch.tensor([ids])
        return k

    def __enter__(self):
        # detect_head also tokenizes a list of prompts once (the result is unused: it recurses per
        # prompt); any tensor will do there.
        self.bridge.to_tokens = lambda seq, *a, **kw: self.table[seq if isinstance(seq, str) else seq[0]]
        return self

    def __exit__(self, *exc):
        del self.bridge.to_tokens


@torch.no_grad()
def generate(fm: tr.FixtureModel, model_index: int):
    t0 = time.time()
    hf = tr.load_hf(fm.folder)
    bridge = tr.load_bridge(fm.folder)
    ref = tr.RefGPT2(hf)
    cfg = hf.config
    n_layer, n_head, d_mlp = cfg.n_layer, cfg.n_head, cfg.n_inner or 4 * cfg.n_embd
    clean, corrupted, answers, foils = tr.tensors_of(fm.items)
    ck = tr.Checks(fm.name)
    tr.check_bridge_matches_hf(bridge, hf, [clean, corrupted], ck)

    logits, cache = bridge.run_with_cache(clean)
    actual = tr.logit_diff_per_item(logits, answers, foils)  # [item]
    ck.close("actual_vs_hf", actual, tr.logit_diff_per_item(hf(clean).logits, answers, foils), 1e-5)

    W_U = bridge.W_U  # [d_model, vocab] (tied: wte.T)
    ck.close("W_U_is_wte_T", W_U, hf.transformer.wte.weight.T, 0.0)
    w_f, b_f = hf.transformer.ln_f.weight, hf.transformer.ln_f.bias
    tl_dir = (W_U[:, answers] - W_U[:, foils]).T  # [item, d]: TransformerLens's logit_attrs direction
    design_dir = tl_dir * w_f                     # DESIGN: x ln_final.w
    bias_term = (tl_dir * b_f).sum(-1)            # [item]: ln_final.b . direction (not attributed)

    T: dict[str, torch.Tensor] = {}
    info: dict = {}
    key = fm.name

    def put(name, x):
        T[f"{key}/{name}"] = x.float().contiguous()

    # ---- by component (decompose_resid) -------------------------------------------------------
    stack, comp_labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)  # [comp, item, d]
    tl_comp = cache.logit_attrs(stack, answers, foils, pos_slice=-1)  # [comp, item]
    scaled = cache.apply_ln_to_stack(stack, -1, pos_slice=-1)  # centred / cached ln_final scale
    design_comp = (scaled * design_dir).sum(-1)  # [comp, item]
    ck.close("component/tl_equals_scaled_dot_W_U_dir", tl_comp, (scaled * tl_dir).sum(-1), 1e-5)
    ck.close("component/sum_plus_ln_bias_equals_actual", design_comp.sum(0) + bias_term, actual, TOL)
    recomputed_tl = cache.apply_ln_to_stack(stack, -1, pos_slice=-1, recompute_ln=True)  # ln_final(x_i) incl. w, b
    recomputed = (recomputed_tl * tl_dir).sum(-1) - bias_term  # DESIGN reading: own stats, x w, no b
    put("component/values", design_comp.mean(1))
    put("component/per_item", design_comp)
    put("component/tl", tl_comp.mean(1))
    put("component/recomputed", recomputed.mean(1))
    # One token's direction (DESIGN: "or one token's"): the answer alone.
    answer_dir = W_U[:, answers].T * w_f
    answer_comp = (scaled * answer_dir).sum(-1)
    answer_logit = logits[torch.arange(len(answers)), -1, answers]
    ck.close("component_answer/sum_plus_ln_bias_equals_logit",
             answer_comp.sum(0) + (W_U[:, answers].T * b_f).sum(-1), answer_logit, TOL)
    put("component_answer/values", answer_comp.mean(1))

    # ---- by head (stack_head_results: z @ W_O per head, no b_O) --------------------------------
    heads, head_labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)  # [L*H, item, d]
    tl_head = cache.logit_attrs(heads, answers, foils, pos_slice=-1).reshape(n_layer, n_head, -1)
    design_head = (cache.apply_ln_to_stack(heads, -1, pos_slice=-1) * design_dir).sum(-1).reshape(n_layer, n_head, -1)
    put("head/values", design_head.mean(-1))
    put("head/tl", tl_head.mean(-1))

    # ---- by neuron (stack_neuron_results with apply_ln and a projection) -----------------------
    neuron_design = cache.stack_neuron_results(layer=-1, pos_slice=-1, apply_ln=True,
                                               project_output_onto=design_dir.T)  # [L*d_mlp, item, item]
    neuron_tl = cache.stack_neuron_results(layer=-1, pos_slice=-1, apply_ln=True, project_output_onto=tl_dir.T)
    diag = torch.arange(len(answers))
    neuron_design = neuron_design[:, diag, diag].reshape(n_layer, d_mlp, -1)  # item i on its own direction
    neuron_tl = neuron_tl[:, diag, diag].reshape(n_layer, d_mlp, -1)
    put("neuron/values", neuron_design.mean(-1))
    put("neuron/tl", neuron_tl.mean(-1))

    # ---- by layer (accumulated residual, apply_ln=True) ----------------------------------------
    acc, acc_labels = cache.accumulated_resid(layer=-1, apply_ln=True, pos_slice=-1, return_labels=True)
    acc_mid, acc_mid_labels = cache.accumulated_resid(layer=-1, incl_mid=True, apply_ln=True, pos_slice=-1,
                                                      return_labels=True)
    layer_vals = (acc * tl_dir).sum(-1)  # ln_final recomputed per row (w and b included) . (W_U[a] - W_U[b])
    layer_mid_vals = (acc_mid * tl_dir).sum(-1)
    ck.close("layer/final_equals_actual", layer_vals[-1], actual, TOL)
    put("layer/values", layer_vals.mean(1))
    put("layer_mid/values", layer_mid_vals.mean(1))
    put("actual", actual)

    # ---- independent recomputation from the plain-PyTorch forward ------------------------------
    rc = {}
    ref.forward(clean, cache=rc)
    s_f = rc["ln_final.hook_scale"][:, -1]  # [item, 1]
    comps = [rc["hook_embed"], rc["hook_pos_embed"]]
    for L in range(n_layer):
        comps += [rc[f"blocks.{L}.hook_attn_out"], rc[f"blocks.{L}.hook_mlp_out"]]
    hand_comp = torch.stack([(centred_over_scale(c[:, -1], s_f) * design_dir).sum(-1) for c in comps])
    ck.close("hand/component", design_comp, hand_comp, TOL)
    sd = ref.sd
    hand_head = torch.zeros(n_layer, n_head, len(answers))
    hand_neuron = torch.zeros(n_layer, d_mlp, len(answers))
    for L in range(n_layer):
        z = rc[f"blocks.{L}.attn.hook_z"][:, -1]  # [item, head, d_head]
        W_O = sd[f"h.{L}.attn.c_proj.weight"].reshape(n_head, ref.d_head, -1)
        for h in range(n_head):
            hand_head[L, h] = (centred_over_scale(z[:, h] @ W_O[h], s_f) * design_dir).sum(-1)
        b_O_term = (centred_over_scale(sd[f"h.{L}.attn.c_proj.bias"].expand_as(design_dir), s_f) * design_dir).sum(-1)
        ck.close("hand/heads_plus_b_O_equal_attn_out", hand_head[L].sum(0) + b_O_term, hand_comp[2 + 2 * L], TOL)
        post = rc[f"blocks.{L}.mlp.hook_post"][:, -1]  # [item, d_mlp]
        W_out = sd[f"h.{L}.mlp.c_proj.weight"]  # [d_mlp, d]
        W_out_c = W_out - W_out.mean(-1, keepdim=True)
        # neuron n: post[n] / scale * ((W_out[n] - mean W_out[n]) . direction)
        hand_neuron[L] = ((post / s_f) * (design_dir @ W_out_c.T)).T
        b_out_term = (centred_over_scale(sd[f"h.{L}.mlp.c_proj.bias"].expand_as(design_dir), s_f) * design_dir).sum(-1)
        ck.close("hand/neurons_plus_b_out_equal_mlp_out", hand_neuron[L].sum(0) + b_out_term, hand_comp[3 + 2 * L], TOL)
    ck.close("hand/head", design_head, hand_head, TOL)
    ck.close("hand/neuron", neuron_design, hand_neuron, TOL)
    # accumulated: row l = ln_f(resid) . dir, recomputed statistics
    rows = [rc[f"blocks.{L}.hook_resid_pre"][:, -1] for L in range(n_layer)] + [rc[f"blocks.{n_layer - 1}.hook_resid_post"][:, -1]]
    hand_layer = torch.stack([(torch.nn.functional.layer_norm(r, (ref.d,), w_f, b_f, ref.eps) * tl_dir).sum(-1) for r in rows])
    ck.close("hand/layer", layer_vals, hand_layer, TOL)

    info["attribution"] = {
        "component_labels": comp_labels,
        "head_labels": head_labels,
        "layer_labels": acc_labels,
        "layer_mid_labels": acc_mid_labels,
        "actual_logit_diff": float(actual.mean()),
        "actual_logit_diff_per_item": actual.tolist(),
        "ln_final_bias_term": float(bias_term.mean()),
        "ln_final_bias_term_per_item": bias_term.tolist(),
        "actual_answer_logit": float(answer_logit.mean()),
        "ln_final_bias_term_answer": float((W_U[:, answers].T * b_f).sum(-1).mean()),
    }

    # ---- head detectors --------------------------------------------------------------------------
    prompt_sets = {
        "dataset": [it.clean for it in fm.items] + [it.corrupted for it in fm.items],
        "repeated_random": repeated_random_prompts(cfg.vocab_size, REPEAT_SEED + model_index),
    }
    with TokenShim(bridge) as shim:
        keys = {name: [shim.key(p) for p in prompts] for name, prompts in prompt_sets.items()}
        for det in DETECTORS:
            for variant, (ex_bos, ex_cur) in DETECTOR_VARIANTS.items():
                for set_name, prompts in prompt_sets.items():
                    scores = head_detector.detect_head(bridge, keys[set_name], det, exclude_bos=ex_bos,
                                                       exclude_current_token=ex_cur, error_measure="mul")
                    hand = hand_detect(ref, prompts, det, ex_bos, ex_cur, n_layer, n_head)
                    ck.close(f"hand/detect/{det}", scores, hand, 1e-5)
                    put(f"heads/{det}/{variant}/{set_name}", scores)
                    # single prompt path (no list): the first prompt alone
                    if variant == "plain":
                        single = head_detector.detect_head(bridge, keys[set_name][0], det, error_measure="mul")
                        ck.close(f"hand/detect_single/{det}",
                                 single, hand_detect(ref, prompts[:1], det, False, False, n_layer, n_head), 1e-5)
                        put(f"heads/{det}/{variant}/{set_name}_first", single)
    info["detector_prompts"] = prompt_sets
    info["checks_max_abs_diff"] = ck.summary()
    info["items"] = [it.as_json() for it in fm.items]
    info["checkpoint"] = f"models/{fm.name}"
    info["config"] = {"n_layer": n_layer, "n_head": n_head, "d_model": cfg.n_embd, "d_mlp": d_mlp,
                      "vocab_size": cfg.vocab_size, "bos": cfg.vocab_size - 1}
    print(f"{fm.name}: {len(T)} tensors, {time.time() - t0:.1f} s", file=sys.stderr)
    return T, info


def main() -> int:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    models = {}
    for i, fm in enumerate(tr.MODELS):
        tensors, info = generate(fm, i)
        save_file(tensors, OUT_DIR / f"{fm.name}.safetensors", metadata={"format": "pt"})
        models[fm.name] = info
    cases = {
        "description": "TransformerLens direct logit attribution and head detector references; see README.md",
        "models": models,
        "repeated_random": {"seed": f"{REPEAT_SEED} + model index (tiny-hub 0, odd-head 1)",
                            "generator": "torch.Generator().manual_seed(seed); torch.randint(0, vocab - 1, (10,)) per prompt, 3 prompts",
                            "layout": "[BOS] + r + r"},
        "versions": tr.versions(),
    }
    (OUT_DIR / "cases.json").write_text(tr.dump_json(cases))
    print(f"wrote {OUT_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
