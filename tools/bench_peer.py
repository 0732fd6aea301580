#!/usr/bin/env python3
"""Benchmark Scalpel against Hugging Face PyTorch on the same checkpoint, in the same run.

    python3 tools/bench_peer.py [--model outputs/bench/gpt2-random]

Creates a random GPT-2-small-shaped checkpoint with `scalpel init` when the folder does not exist,
builds Scalpel in release mode if needed, runs `scalpel bench --format json`, then measures
`transformers.GPT2LMHeadModel` (float32, CPU, torch.no_grad, all cores) on the same shapes, and
prints medians and the ratios Scalpel / PyTorch (lower is better for Scalpel).
"""
import argparse
import json
import os
import subprocess
import sys
import time

from bench_common import measure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALPEL = os.path.join(ROOT, ".build", "release", "scalpel")


def scalpel(*args):
    return subprocess.run([SCALPEL, *args], check=True, capture_output=True, text=True).stdout


def ensure_built_and_model(model_dir):
    if not os.path.exists(SCALPEL):
        subprocess.run(["swift", "build", "-c", "release", "--product", "scalpel"], cwd=ROOT, check=True)
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        print(f"creating a random gpt2-shaped checkpoint in {model_dir}", file=sys.stderr)
        scalpel("init", "--config", "gpt2", "--seed", "0", "-o", model_dir)


def bench_pytorch(model_dir, tokens, batch, runs, batch_runs):
    import torch
    from transformers import GPT2LMHeadModel

    torch.manual_seed(1234)
    start = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    load = time.perf_counter() - start
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab - 1, (batch, tokens))
    single = ids[:1]
    with torch.no_grad():
        model(single)
        single_median = measure(lambda: model(single), runs)[0]
        model(ids)
        batch_median = measure(lambda: model(ids), batch_runs)[0]
    return {"load_seconds": load, "single_prompt_median_seconds": single_median,
            "batch_median_seconds": batch_median, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "model": model}


def bench_pytorch_lens(model, model_dir, prompts, runs):
    """The usual PyTorch logit-lens loop: each prompt alone with output_hidden_states, then ln_f and
    lm_head on every layer's last position (embeddings + every block's output: n_layer + 1 rows)."""
    import torch
    from transformers import GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast.from_pretrained(model_dir)
    ids = [torch.tensor([[tokenizer.eos_token_id or 50256] + tokenizer.encode(p)]) for p in prompts]

    def loop():
        with torch.no_grad():
            for x in ids:
                hidden = model(x, output_hidden_states=True).hidden_states
                last = torch.stack([h[0, -1] for h in hidden])
                torch.softmax(model.lm_head(model.transformer.ln_f(last)), dim=-1)

    loop()
    return measure(loop, runs)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "outputs", "bench", "gpt2-random"))
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch-runs", type=int, default=7)
    args = parser.parse_args()

    ensure_built_and_model(args.model)
    ours = json.loads(scalpel("bench", "--model", args.model, "--tokens", str(args.tokens), "--batch", str(args.batch),
                              "--runs", str(args.runs), "--batch-runs", str(args.batch_runs), "--format", "json"))
    peer = bench_pytorch(args.model, args.tokens, args.batch, args.runs, args.batch_runs)

    rows = [("load (ready to run)", "load_seconds", 0.2, None),
            (f"1 prompt x {args.tokens} tokens", "single_prompt_median_seconds", None, 0.4),
            (f"{args.batch} x {args.tokens} tokens", "batch_median_seconds", None, 0.85)]
    print(f"checkpoint: {args.model}  (PyTorch {peer['torch']}, {peer['threads']} threads; "
          f"Scalpel's OpenBLAS kernels: {ours['openblas_core']})")
    print(f"{'measure':28} {'Scalpel':>11} {'PyTorch':>11} {'ratio':>7}  target")
    for label, key, absolute, ratio_target in rows:
        ratio = ours[key] / peer[key]
        target = f"< {absolute} s" if absolute else f"ratio <= {ratio_target}"
        print(f"{label:28} {ours[key] * 1000:9.2f}ms {peer[key] * 1000:9.2f}ms {ratio:7.3f}  {target}")
    if ours.get("lens_median_seconds"):
        lens = bench_pytorch_lens(peer["model"], args.model, ours["lens_prompts"], args.batch_runs)
        ratio = ours["lens_median_seconds"] / lens
        print(f"{'logit lens, 64 prompts':28} {ours['lens_median_seconds'] * 1000:9.2f}ms {lens * 1000:9.2f}ms {ratio:7.3f}  ratio <= 0.2")
    print(f"Scalpel peak resident memory: {ours['peak_resident_mb']:.0f} MB")


if __name__ == "__main__":
    main()
