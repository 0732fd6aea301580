#!/usr/bin/env python3
"""Benchmark direct logit attribution: TransformerLens (the peer) against `scalpel attribute`.

    python3 tools/bench_attribution_peer.py --scalpel .build/release/scalpel [--model DIR] [--runs 3]

On a GPT-2-small-shaped checkpoint with random weights, made by `scalpel init --config gpt2 -o DIR`
when DIR has none (12 layers, 12 heads, d_model 768, d_mlp 3072, vocab 50257), and 64 digit prompts
of 9 tokens with BOS ("s s+1 … s+7" -> " s+8", foil " s+7"), written as a JSON dataset file, it
times (median of --runs):

  TransformerLens 4.x (TransformerBridge on raw weights, CPU, float32, torch.no_grad), the model
  loaded once and not timed, then per run: run_with_cache (64 prompts) + decompose_resid +
  stack_head_results + logit_attrs of both, and all neurons of layers 9 and 10 (post[-1] / scale ·
  (W_out − mean) · direction on the cache: stack_neuron_results would materialise
  [layers·d_mlp, 64, d_model], gigabytes);
  Scalpel the same way: `scalpel bench --attribution DATASET` loads the model once and times the
  attribution by component, head and the neurons of layers 9 and 10 on it (one forward pass per
  batch of 32 prompts for the three groupings);
  Scalpel as a user runs it, a whole process with the model's loading: `scalpel attribute --by
  component,head,neuron --layers 9,10`, and the three groupings as three processes, summed.

Prints medians (wall and CPU), ratios Scalpel / TransformerLens (lower is better for Scalpel), the
CPU and the load average.
"""

import argparse
import json
import os
import subprocess
import sys

from bench_common import add_peer_arguments, cpu_model, ensure_random_gpt2, measure

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

N_PROMPTS = 64
SEQ = 8
NEURON_LAYERS = (9, 10)


def make_dataset(path, tokenizer):
    items, clean, answers, foils = [], [], [], []
    for s in range(1, N_PROMPTS + 1):
        nums = list(range(s, s + SEQ))
        prompt = " ".join(map(str, nums))
        answer, foil = f" {s + SEQ}", f" {nums[-1]}"
        ids, a, f = tokenizer.encode(prompt), tokenizer.encode(answer), tokenizer.encode(foil)
        if len(ids) != SEQ or len(a) != 1 or len(f) != 1:
            raise SystemExit(f"item {s}: expected {SEQ} single-token numbers, got {ids} / {a} / {f}")
        items.append({"prompt": prompt, "answer": answer, "corrupted_answer": foil})
        clean.append([tokenizer.eos_token_id] + ids)
        answers.append(a[0])
        foils.append(f[0])
    with open(path, "w") as fh:
        json.dump({"name": "bench-attribution", "description": "64 digit sequences", "items": items}, fh)
    return clean, answers, foils


def bench_tl(model_dir, clean, answers, foils, runs):
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(model_dir, device="cpu", dtype=torch.float32)
    bridge.eval()
    tokens = torch.tensor(clean)
    a, f = torch.tensor(answers), torch.tensor(foils)
    
    def attribute():
        with torch.no_grad():
            _, cache = bridge.run_with_cache(tokens)
            stack = cache.decompose_resid(layer=-1, pos_slice=-1)
            components = cache.logit_attrs(stack, a, f, pos_slice=-1).mean(-1)
            heads = cache.stack_head_results(layer=-1, pos_slice=-1)
            head_attrs = cache.logit_attrs(heads, a, f, pos_slice=-1).mean(-1)
            # Neurons: TransformerLens's stack_neuron_results would materialise [layers·d_mlp, 64, d_model]
            # (GBs); a TransformerLens user writes the product on the cached activations instead.
            direction = (bridge.W_U[:, a] - bridge.W_U[:, f]) * bridge.ln_final.weight[:, None]  # [d, item]
            scale = cache["ln_final.hook_scale"][:, -1]  # [item, 1]
            neurons = []
            for layer in NEURON_LAYERS:
                post = cache[f"blocks.{layer}.mlp.hook_post"][:, -1]  # [item, d_mlp]
                W_out = bridge.blocks[layer].mlp.W_out  # [d_mlp, d]
                per_neuron = (W_out - W_out.mean(-1, keepdim=True)) @ direction  # [d_mlp, item]
                neurons.append((post / scale * per_neuron.T).mean(0))
            return components, head_attrs, neurons

    attribute()  # warm
    wall, cpu, times, _ = measure(attribute, runs)
    return (wall, cpu), times


def bench_scalpel(binary, model_dir, dataset, runs):
    layers = ",".join(map(str, NEURON_LAYERS))
    out = {}
    for name, extra in (("component,head,neuron", ["--by", "component,head,neuron", "--layers", layers]),
                        ("component", []), ("head", ["--by", "head"]), ("neuron", ["--by", "neuron", "--layers", layers])):
        cmd = [binary, "attribute", "--model", model_dir, "--dataset", dataset, "--format", "json"] + extra

        def run():
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[:500]}")

        run()  # warm (page cache)
        out[name] = measure(run, runs)[:2]
    return out


def bench_scalpel_loaded(binary, model_dir, dataset, runs):
    """`scalpel bench --attribution`: the median over `runs` on the model loaded once (seconds)."""
    cmd = [binary, "bench", "--model", model_dir, "--attribution", dataset, "--batch-runs", str(runs),
           "--runs", "1", "--batch", "1", "--tokens", "1", "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[:500]}")
    return json.loads(proc.stdout)["attribution_median_seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_peer_arguments(parser)
    args = parser.parse_args()

    import torch
    from transformers import GPT2TokenizerFast

    torch.set_num_threads(args.threads)
    ensure_random_gpt2(args.scalpel, args.model)
    tokenizer = GPT2TokenizerFast.from_pretrained(args.model)
    dataset = os.path.join(os.path.dirname(os.path.abspath(args.model)), "bench-attribution.json")
    clean, answers, foils = make_dataset(dataset, tokenizer)

    print(f"TransformerLens: {args.runs} runs ...", file=sys.stderr, flush=True)
    tl, tl_runs = bench_tl(args.model, clean, answers, foils, args.runs)
    print(f"scalpel attribute: {args.runs} runs per grouping ...", file=sys.stderr, flush=True)
    sc = bench_scalpel(args.scalpel, args.model, dataset, args.runs)
    loaded = bench_scalpel_loaded(args.scalpel, args.model, dataset, args.runs)
    one, one_cpu = sc["component,head,neuron"]
    total = sum(w for name, (w, _) in sc.items() if "," not in name)
    total_cpu = sum(c for name, (_, c) in sc.items() if "," not in name)
    tl, tl_cpu = tl
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; torch threads {torch.get_num_threads()}; {N_PROMPTS} prompts of {SEQ + 1} tokens")
    print(f"TransformerLens run_with_cache + decompose_resid + stack_head_results + logit_attrs + neurons of L9,10: "
          f"median {tl:.3f} s (runs {', '.join(f'{t:.3f}' for t in tl_runs)}; model loaded once, not timed)")
    print(f"  CPU time (all threads) median {tl_cpu:.3f} s")
    print(f"scalpel bench --attribution (the same work, model loaded once, not timed): median {loaded:.3f} s; "
          f"ratio scalpel / TransformerLens = {loaded / tl:.2f} wall")
    for name, (seconds, cpu) in sc.items():
        print(f"scalpel attribute --by {name}: median {seconds:.3f} s wall, {cpu:.3f} s CPU (a whole process, model loading included)")
    print(f"scalpel, the three as separate processes: {total:.3f} s wall, {total_cpu:.3f} s CPU; "
          f"ratio scalpel / TransformerLens = {total / tl:.2f} wall, {total_cpu / tl_cpu:.2f} CPU")
    print(f"scalpel, one run of the three groupings: {one:.3f} s wall, {one_cpu:.3f} s CPU; "
          f"ratio scalpel / TransformerLens = {one / tl:.2f} wall, {one_cpu / tl_cpu:.2f} CPU")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
