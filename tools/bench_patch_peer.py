#!/usr/bin/env python3
"""Benchmark activation patching: TransformerLens (the peer) and, when it has the subcommand, `scalpel patch`.

    python3 tools/bench_patch_peer.py [--model DIR] [--runs 3] [--threads 2] [--scalpel .build/release/scalpel]

On a GPT-2-small-shaped checkpoint with random weights (12 layers, 12 heads, d_model 768, vocab 50257,
n_positions 1024; created with `transformers` under --model when missing, with GPT-2's vocab.json and
merges.txt copied from --tokenizer so that Scalpel can read the prompts), and a dataset of 20 digit
prompts of one length ("1 2 3 4 5 6 7 8" -> " 9", corrupted "1 2 3 4 5 6 7 7" -> " 8"; 9 tokens with
BOS), written as a JSON dataset file Scalpel reads (`--dataset FILE`), it times (median of --runs):

  TransformerLens 4.x (TransformerBridge on raw weights, CPU, float32, torch.no_grad):
    z          patching.get_act_patch_attn_head_out_all_pos   (12 x 12 = 144 patched runs of 20 prompts)
    resid_pre  patching.get_act_patch_resid_pre               (12 layers x 9 positions = 108 runs)
    mlp_post   run_with_hooks over --neurons neurons of blocks.9.mlp.hook_post, extrapolated to 3072
  Scalpel (only with --scalpel BINARY and if `scalpel patch` exists; skipped with a note otherwise):
    scalpel patch --model DIR --dataset FILE --target z|resid_pre|mlp_post [--layers 9] --format json

and prints medians, peak resident memory (TransformerLens: this process; Scalpel: each run under
/usr/bin/time -f %M), the ratios Scalpel / TransformerLens (lower is better for Scalpel), and the
largest |Scalpel raw - TransformerLens raw| per target (the same model, dataset and metric, so they
should agree to ~1e-5). `--only resid_pre,mlp_post` runs a subset; `--neurons` sets how many neurons
TransformerLens patches before extrapolating. On a busy 2-CPU machine one TransformerLens patched
forward (20 x 9 tokens, GPT-2 small, full vocabulary) took 2-5 s, so `--runs 1` alone is ~20 minutes. Metric: mean logit difference (answer - corrupted answer) at the last position;
direction: denoise (clean activations patched into the corrupted run). The clean cache is computed
once and its time is reported apart (it is not part of the sweep times). Progress goes to stderr.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

from bench_common import cpu_model, measure

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_PROMPTS = 20
SEQ = 8  # numbers per prompt; + BOS = 9 tokens
GPT2_SMALL = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)


def ensure_model(model_dir, tokenizer_dir):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        print(f"creating a random GPT-2-small-shaped checkpoint in {model_dir}", file=sys.stderr)
        torch.manual_seed(0)
        config = GPT2Config(**GPT2_SMALL, activation_function="gelu_new", bos_token_id=50256, eos_token_id=50256)
        model = GPT2LMHeadModel(config).eval()
        os.makedirs(model_dir, exist_ok=True)
        model.save_pretrained(model_dir)
    for name in ("vocab.json", "merges.txt"):
        if not os.path.exists(os.path.join(model_dir, name)):
            shutil.copyfile(os.path.join(tokenizer_dir, name), os.path.join(model_dir, name))


def make_dataset(path, tokenizer):
    """20 items; every prompt 8 single-token numbers (9 tokens with BOS). Returns token-id tensors."""
    items, clean, corrupted, answers, foils = [], [], [], [], []
    for s in range(1, N_PROMPTS + 1):
        nums = list(range(s, s + SEQ))
        prompt = " ".join(map(str, nums))
        corrupted_prompt = " ".join(map(str, nums[:-1] + [nums[-2]]))
        answer, foil = f" {s + SEQ}", f" {nums[-1]}"
        ids, cids = tokenizer.encode(prompt), tokenizer.encode(corrupted_prompt)
        a, f = tokenizer.encode(answer), tokenizer.encode(foil)
        if len(ids) != SEQ or len(cids) != SEQ or len(a) != 1 or len(f) != 1:
            raise SystemExit(f"item {s}: expected {SEQ} single-token numbers, got {ids} / {cids} / {a} / {f}")
        items.append({"prompt": prompt, "answer": answer, "corrupted_prompt": corrupted_prompt,
                      "corrupted_answer": foil})
        clean.append([tokenizer.eos_token_id] + ids)
        corrupted.append([tokenizer.eos_token_id] + cids)
        answers.append(a[0])
        foils.append(f[0])
    family = {"name": "bench-digits",
              "description": f"{N_PROMPTS} digit sequences of {SEQ} numbers; corrupted: last number repeats the one before",
              "items": items}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(family, fh, indent=2)
        fh.write("\n")
    return clean, corrupted, answers, foils


def peak_rss_mb(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def bench_tl(model_dir, clean_ids, corrupted_ids, answers, foils, runs, neurons, neuron_layer, only):
    import torch
    from transformer_lens import patching
    from transformer_lens.model_bridge import TransformerBridge

    start = time.perf_counter()
    bridge = TransformerBridge.boot_transformers(model_dir, device="cpu", dtype=torch.float32)
    bridge.eval()
    load = time.perf_counter() - start
    clean, corrupted = torch.tensor(clean_ids), torch.tensor(corrupted_ids)
    a, f = torch.tensor(answers), torch.tensor(foils)
    rows = torch.arange(len(answers))

    def metric(logits):
        last = logits[:, -1, :]
        return (last[rows, a] - last[rows, f]).mean()

    out = {"load_seconds": load}
    with torch.no_grad():
        start = time.perf_counter()
        _, clean_cache = bridge.run_with_cache(clean)
        out["clean_cache_seconds"] = time.perf_counter() - start
        out["clean_metric"] = float(metric(bridge(clean)))
        out["corrupted_metric"] = float(metric(bridge(corrupted)))

        results = {}

        def z():
            results["z"] = patching.get_act_patch_attn_head_out_all_pos(bridge, corrupted, clean_cache, metric)

        def resid_pre():
            results["resid_pre"] = patching.get_act_patch_resid_pre(bridge, corrupted, clean_cache, metric)

        name = f"blocks.{neuron_layer}.mlp.hook_post"
        source = clean_cache[name]

        def mlp_post():
            vals = torch.zeros(neurons)
            for n in range(neurons):
                def hook(act, hook, n=n):
                    act[:, :, n] = source[:, :, n]
                    return act
                vals[n] = metric(bridge.run_with_hooks(corrupted, fwd_hooks=[(name, hook)]))
            results["mlp_post"] = vals

        d_mlp = bridge.cfg.d_mlp
        for key, fn, n_runs_per_sweep in (("z", z, 144), ("resid_pre", resid_pre, 12 * len(clean_ids[0])),
                                          ("mlp_post", mlp_post, neurons)):
            if key not in only:
                continue
            print(f"TransformerLens {key}: {runs} x {n_runs_per_sweep} patched forwards ...", file=sys.stderr, flush=True)
            med, _, times, _ = measure(fn, runs)
            entry = {"median_seconds": med, "runs_seconds": times, "patched_forwards": n_runs_per_sweep,
                     "seconds_per_forward": med / n_runs_per_sweep}
            if key == "mlp_post":
                entry["neurons_timed"] = neurons
                entry["extrapolated_seconds"] = med * d_mlp / neurons
                entry["extrapolated_to_neurons"] = d_mlp
            out[key] = entry
        out["values"] = {k: v.flatten().tolist() for k, v in results.items()}
    out["peak_rss_mb"] = peak_rss_mb()
    out["threads"] = torch.get_num_threads()
    return out


def scalpel_has_patch(binary):
    listing = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    if not any(line.strip().startswith("patch ") or line.strip() == "patch" for line in listing.splitlines()):
        return False
    usage = subprocess.run([binary, "patch", "--help"], capture_output=True, text=True)
    return usage.returncode == 0 and "scalpel patch" in usage.stdout


def bench_scalpel(binary, model_dir, dataset, runs, neuron_layer, only):
    """Times each `scalpel patch` run; peak RSS per run from /usr/bin/time -f %M when available (a
    child's own ru_maxrss, read by this big Python process, would include this process's RSS
    inherited at fork), and keeps the last run's JSON to compare with TransformerLens."""
    out = {}
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    rss_file = os.path.join(os.path.dirname(os.path.abspath(dataset)), "scalpel-rss.txt")
    for target in ("z", "resid_pre", "mlp_post"):
        if target not in only:
            continue
        cmd = [binary, "patch", "--model", model_dir, "--dataset", dataset, "--target", target, "--format", "json"]
        if target == "mlp_post":
            cmd[-2:-2] = ["--layers", str(neuron_layer)]
        full = ([gnu_time, "-f", "%M", "-o", rss_file] if gnu_time else []) + cmd
        last = {}

        def run():
            proc = subprocess.run(full, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[:500]}")
            last["stdout"] = proc.stdout
            if gnu_time:
                with open(rss_file) as fh:
                    kib = int(fh.read().strip().splitlines()[-1])
                last["rss_mb"] = max(last.get("rss_mb", 0), kib / 1024)

        try:
            run()  # warm (page cache)
            med, _, times, _ = measure(run, runs)
            result = json.loads(last["stdout"])
            out[target] = {"median_seconds": med, "runs_seconds": times, "command": " ".join(cmd),
                           "peak_rss_mb": last.get("rss_mb"), "raw": result.get("raw"), "shape": result.get("shape"),
                           "clean": result.get("clean"), "corrupted": result.get("corrupted")}
        except (RuntimeError, ValueError, KeyError) as e:
            out[target] = {"error": str(e)}
    if os.path.exists(rss_file):
        os.remove(rss_file)
    return out


def compare(tl, ours):
    """max |Scalpel raw - TransformerLens raw| per target (mlp_post: the neurons TL timed)."""
    diffs = {}
    for target, peer in tl.get("values", {}).items():
        mine = (ours or {}).get(target, {}).get("raw")
        if mine is None:
            continue
        mine = [float("nan") if x is None else x for x in mine]
        if target == "mlp_post" and len(mine) != len(peer):
            mine = mine[:len(peer)]  # layer 9 alone: the first neurons
        if len(mine) != len(peer):
            diffs[target] = f"sizes differ: Scalpel {len(mine)}, TransformerLens {len(peer)}"
            continue
        diffs[target] = max(abs(a - b) for a, b in zip(mine, peer))
    return diffs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "outputs", "bench", "gpt2-small-random-hf"))
    parser.add_argument("--tokenizer", default="/work/shared/gpt2", help="folder with GPT-2's vocab.json and merges.txt")
    parser.add_argument("--dataset", default=None, help="where to write the dataset file (default: next to --model)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (and OPENBLAS_NUM_THREADS for Scalpel)")
    parser.add_argument("--neurons", type=int, default=100)
    parser.add_argument("--neuron-layer", type=int, default=9)
    parser.add_argument("--scalpel", default=None, help="a scalpel binary; `scalpel patch` is timed if it exists")
    parser.add_argument("--only", default="z,resid_pre,mlp_post", help="comma-separated subset of z,resid_pre,mlp_post")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    only = [t for t in args.only.split(",") if t]

    import torch
    import transformer_lens  # noqa: F401
    from transformers import GPT2TokenizerFast

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ensure_model(args.model, args.tokenizer)
    tokenizer = GPT2TokenizerFast.from_pretrained(args.tokenizer)
    dataset = args.dataset or os.path.join(os.path.dirname(os.path.abspath(args.model)), "patch-digits.json")
    clean, corrupted, answers, foils = make_dataset(dataset, tokenizer)

    import importlib.metadata as md
    report = {"cpu": cpu_model(), "torch": torch.__version__, "transformer_lens": md.version("transformer-lens"),
              "model": args.model, "dataset": dataset, "prompts": len(clean), "tokens_per_prompt": len(clean[0]),
              "runs": args.runs}
    report["load_average_before"] = os.getloadavg()
    report["cpus"] = os.cpu_count()
    report["transformer_lens_results"] = tl = bench_tl(args.model, clean, corrupted, answers, foils, args.runs,
                                                       args.neurons, args.neuron_layer, only)

    ours = None
    note = None
    if args.scalpel is None:
        note = "no --scalpel binary given: Scalpel not timed"
    elif not os.path.exists(args.scalpel):
        note = f"{args.scalpel} does not exist: Scalpel not timed"
    elif not scalpel_has_patch(args.scalpel):
        note = f"{args.scalpel} has no `patch` subcommand yet: Scalpel not timed"
    else:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
        ours = bench_scalpel(args.scalpel, args.model, dataset, args.runs, args.neuron_layer, only)
    report["scalpel_results"] = ours
    report["note"] = note

    print(f"CPU: {report['cpu']}; torch {report['torch']} ({tl['threads']} threads), TransformerLens "
          f"{report['transformer_lens']}; {len(clean)} prompts x {len(clean[0])} tokens; median of {args.runs}")
    print(f"TransformerLens: boot {tl['load_seconds']:.2f} s, clean run_with_cache {tl['clean_cache_seconds'] * 1000:.1f} ms, "
          f"logit diff clean {tl['clean_metric']:.4f} corrupted {tl['corrupted_metric']:.4f}")
    # (label, TL result key, TL field, Scalpel target compared or None). Scalpel patches all neurons
    # of the layer, so it is compared with the extrapolated TransformerLens time.
    rows = [("z (layer x head, 144 runs)", "z", "median_seconds", "z"),
            (f"resid_pre (layer x pos, {tl['resid_pre']['patched_forwards']} runs)", "resid_pre", "median_seconds",
             "resid_pre"),
            (f"mlp_post L{args.neuron_layer}, {args.neurons} neurons", "mlp_post", "median_seconds", None),
            (f"mlp_post L{args.neuron_layer}, all {tl['mlp_post']['extrapolated_to_neurons']} (extrapolated)", "mlp_post",
             "extrapolated_seconds", "mlp_post")]
    print(f"{'sweep':44} {'TransformerLens':>16} {'Scalpel':>12} {'ratio':>7}")
    for label, key, field, target in rows:
        if key not in tl:
            continue
        peer = tl[key][field]
        mine, ratio = "", ""
        entry = (ours or {}).get(target, {}) if target else {}
        if "median_seconds" in entry:
            mine = f"{entry['median_seconds']:10.3f} s"
            ratio = f"{entry['median_seconds'] / peer:7.3f}"
        elif "error" in entry:
            mine = "error"
        print(f"{label:44} {peer:14.3f} s {mine:>12} {ratio:>7}")
    print("TransformerLens seconds per patched forward (20 prompts x 9 tokens): "
          + ", ".join(f"{k} {tl[k]['seconds_per_forward']:.3f}" for k in ("z", "resid_pre", "mlp_post") if k in tl))
    print(f"TransformerLens peak resident memory: {tl['peak_rss_mb']:.0f} MB")
    report["load_average_after"] = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {tuple(round(x, 2) for x in report['load_average_before'])}, "
          f"after {tuple(round(x, 2) for x in report['load_average_after'])}; {report['cpus']} CPUs")
    if ours:
        for key in ("z", "resid_pre", "mlp_post"):
            entry = ours.get(key, {})
            if "error" in entry:
                print(f"scalpel {key}: {entry['error']}")
            elif entry:
                rss = entry.get("peak_rss_mb")
                print(f"scalpel patch --target {key}: peak resident memory "
                      + (f"{rss:.0f} MB" if rss else "unknown (no /usr/bin/time)"))
        report["max_abs_diff_scalpel_vs_transformer_lens"] = diffs = compare(tl, ours)
        for key, d in diffs.items():
            print(f"max |Scalpel raw - TransformerLens raw| {key}: {d if isinstance(d, str) else f'{d:.3g}'}")
    if note:
        print(f"note: {note}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")


if __name__ == "__main__":
    main()
