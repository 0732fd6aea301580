#!/usr/bin/env python3
"""Benchmark the head detectors: TransformerLens's `detect_head` (the peer) against `scalpel heads --detect all`.

    python3 tools/bench_heads_peer.py --scalpel .build/release/scalpel [--model DIR] [--runs 3]

On a GPT-2-small-shaped checkpoint with random weights, made by `scalpel init --config gpt2 -o DIR`
when DIR has none (12 layers × 12 heads = 144 heads, d_model 768, vocab 50257), and 32 prompts of
digits repeated once ("s s+1 … s+7 s s+1 … s+7", 17 tokens with BOS: every detector has something
to find), written as a text prompt file, it times (median of --runs):

  TransformerLens 4.x (TransformerBridge.boot_transformers on the raw weights, CPU, float32), in one
  Python process with the model loaded once (not timed): `detect_head(bridge, prompts, name)` once
  per detector for previous_token_head, duplicate_token_head and induction_head (TL runs each prompt
  through the model, per detector), and for same-family `detect_head(bridge, prompt, D)` with a
  custom detection pattern per prompt, D[i, j] = 1 for j < i when tokens i and j are in one family
  (TL takes one pattern per call, so one call per prompt), averaged;
  Scalpel: one process `scalpel heads --detect all --prompts FILE --format json` (all four detectors
  from one forward pass per batch), model loading included, a fresh process each run.

It also checks that both computed the same scores for the three TransformerLens detectors (max
absolute difference). Same-family differs by definition (Scalpel averages each query's share, TL's
`mul` divides the whole masked sum by the whole attention), so only its work is compared.
Prints medians, the ratio Scalpel / TransformerLens (lower is better for Scalpel), the CPU and
the load average.
"""

import argparse
import json
import os
import subprocess
import sys

from bench_common import add_peer_arguments, cpu_model, ensure_random_gpt2, measure

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

N_PROMPTS = 32
HALF = 8
TL_NAMES = {"previous-token": "previous_token_head", "duplicate-token": "duplicate_token_head", "induction": "induction_head"}


def prompts_text():
    return [" ".join(map(str, list(range(s, s + HALF)) * 2)) for s in range(1, N_PROMPTS + 1)]


def family(text):
    """Scalpel's families by token text (`TokenFamilies.byText`): numbers, capitalised, words, or none."""
    word = text.strip(" ")
    if not word:
        return None
    if all(c.isdigit() for c in word):
        return "numbers"
    if all(c.isalpha() for c in word):
        return "capitalised" if word[0].isupper() else "words"
    return None


def bench_tl(model_dir, prompts, runs):
    import torch
    from transformer_lens.head_detector import detect_head
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(model_dir, device="cpu", dtype=torch.float32)
    bridge.eval()
    tokenizer = bridge.tokenizer
    patterns = []
    for prompt in prompts:
        ids = bridge.to_tokens(prompt)[0].tolist()
        fams = [family(tokenizer.decode([t])) if i > 0 else None for i, t in enumerate(ids)]
        n = len(ids)
        d = torch.zeros(n, n)
        for i in range(n):
            for j in range(i):
                if fams[i] is not None and fams[i] == fams[j]:
                    d[i, j] = 1
        patterns.append(d)

    def detect():
        out = {}
        with torch.no_grad():
            for ours, name in TL_NAMES.items():
                out[ours] = detect_head(bridge, prompts, name)
            out["same-family"] = torch.stack([detect_head(bridge, p, d) for p, d in zip(prompts, patterns)]).mean(0)
        return out

    detect()  # warm
    return measure(detect, runs)


def bench_scalpel(binary, model_dir, prompt_file, runs):
    cmd = [binary, "heads", "--detect", "all", "--model", model_dir, "--prompts", prompt_file, "--format", "json"]

    def run():
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[:500]}")
        return json.loads(proc.stdout)

    run()  # warm (page cache)
    return measure(run, runs), cmd


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_peer_arguments(parser)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    ensure_random_gpt2(args.scalpel, args.model)
    prompts = prompts_text()
    prompt_file = os.path.join(os.path.dirname(os.path.abspath(args.model)), "bench-heads-prompts.txt")
    with open(prompt_file, "w") as fh:
        fh.write("\n".join(prompts) + "\n")

    load = [os.getloadavg()[0]]
    print(f"scalpel heads --detect all: {args.runs} runs ...", file=sys.stderr, flush=True)
    (sc, sc_cpu, sc_runs, scores), cmd = bench_scalpel(args.scalpel, args.model, prompt_file, args.runs)
    load.append(os.getloadavg()[0])
    print(f"TransformerLens detect_head × 4 detectors: {args.runs} runs ...", file=sys.stderr, flush=True)
    tl, tl_cpu, tl_runs, reference = bench_tl(args.model, prompts, args.runs)
    load.append(os.getloadavg()[0])

    grids = {g["detector"]: torch.tensor(g["values"], dtype=torch.float64) for g in scores["detectors"]}
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; torch threads {torch.get_num_threads()}; "
          f"{N_PROMPTS} prompts of {2 * HALF + 1} tokens with BOS; 144 heads; model {args.model}")
    for name in TL_NAMES:
        diff = (grids[name] - reference[name].double()).abs().max().item()
        print(f"  {name}: max |Scalpel − TransformerLens| = {diff:.2e}")
    print(f"TransformerLens detect_head, previous/duplicate/induction + same-family (custom pattern per prompt): "
          f"median {tl:.3f} s wall, {tl_cpu:.3f} s CPU (runs {', '.join(f'{t:.3f}' for t in tl_runs)}; model loaded once, not timed)")
    print(f"scalpel heads --detect all (one process, model loading included): median {sc:.3f} s wall, {sc_cpu:.3f} s CPU "
          f"(runs {', '.join(f'{t:.3f}' for t in sc_runs)})")
    print(f"  command: {' '.join(cmd)}")
    print(f"ratio scalpel / TransformerLens = {sc / tl:.3f} wall, {sc_cpu / tl_cpu:.3f} CPU")
    print(f"load average (1 min) before / between / after: {' / '.join(f'{x:.1f}' for x in load)} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
