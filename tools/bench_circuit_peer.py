#!/usr/bin/env python3
"""Benchmark circuit scoring with random baselines: `scalpel circuit` vs the equivalent PyTorch-hook loop.

    python3 tools/bench_circuit_peer.py [--model DIR] [--runs 3] [--threads 2] [--baselines 100]
                                        [--scalpel .build/release/scalpel] [--circuit FILE]

Model: a GPT-2-small-shaped checkpoint with random weights made by `scalpel init --config gpt2 -o DIR`
(when DIR has no model.safetensors). Dataset: the built-in `digits` family, 20 prompts ("1 2 3 4" ->
" 5" ... "20 21 22 23" -> " 24"; 5 tokens with BOS), scored and used as means (per-position means).
Circuit: circuits/study/split-means/top10-pos.yaml (10 heads kept at every position; --circuit
circuits/study/same-means/top10-pos.yaml keeps them at `end` only, Table 2b); 100 random circuits of
10 heads (kept where the circuit's are) as baselines.

  Scalpel:  scalpel circuit CIRCUIT --model DIR --dataset digits --baselines N --seed 0 --format json
            (wall clock of the whole process: loading the model, means, full model, 1 + N circuits)
  PyTorch:  the same computation as ARENA's IOI code does it, in this process (model already loaded,
            not timed): one run capturing hook_z (the input of attn.c_proj) for the means, one
            unablated run, then per circuit (1 + N) a keep-mask and a forward pass of the 20 prompts
            with a torch.where hook on every layer's z; float32, torch.no_grad, --threads threads.

Runs are interleaved (Scalpel, PyTorch, Scalpel, …) so both see the same load. Prints medians of
--runs (wall clock and CPU time), the ratio Scalpel / PyTorch (lower is better for Scalpel), the CPU (lscpu)
and checks that both give the circuit's score within 1e-3 (random weights: the numbers are small).
"""

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import time

from bench_common import cpu_model, ensure_random_gpt2

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIRCUIT = os.path.join(ROOT, "circuits", "study", "split-means", "top10-pos.yaml")


def circuit_heads(path):
    """The circuit's heads and where they are kept: "all" or "end", the same for every head."""
    heads, kept = [], set()
    for line in open(path):
        line = line.strip()
        if line.startswith('"') and ":" in line:
            key, value = line.split(":", 1)
            layer, head = map(int, key.strip('"').split("."))
            value = value.split("#")[0].strip()
            if value not in ("all", "[end]"):
                raise SystemExit("the benchmark circuit keeps every head at all positions or at [end]")
            kept.add("all" if value == "all" else "end")
            heads.append((layer, head))
    if len(kept) != 1:
        raise SystemExit("the benchmark circuit keeps all its heads at the same positions")
    return heads, kept.pop()


def setup_torch(model_dir, tokens, answers, foils, kept, where, baselines, threads):
    """The PyTorch loop, ready to time (model loaded), with the torch version and thread count."""
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(threads)
    model = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    n_layer, n_head, d_head = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head
    toks = torch.tensor(tokens)
    rows = torch.arange(len(tokens))
    answers_t, foils_t = torch.tensor(answers), torch.tensor(foils)
    rng = random.Random(0)
    all_heads = [(l, h) for l in range(n_layer) for h in range(n_head)]
    circuits = [kept] + [rng.sample(all_heads, len(kept)) for _ in range(baselines)]

    def metric(logits):
        last = logits[:, -1, :]
        return float((last[rows, answers_t] - last[rows, foils_t]).mean())

    def loop():
        captured = {}
        handles = []
        for layer, block in enumerate(model.transformer.h):
            def cap(module, args, layer=layer):
                captured[layer] = args[0].reshape(args[0].shape[0], args[0].shape[1], n_head, d_head)
            handles.append(block.attn.c_proj.register_forward_pre_hook(cap))
        with torch.no_grad():
            model(toks)
        for h in handles:
            h.remove()
        means = [captured[l].mean(dim=0) for l in range(n_layer)]  # per position: [seq, head, d_head]
        with torch.no_grad():
            full = metric(model(toks).logits)
        scores = []
        for circuit in circuits:
            seq = toks.shape[1]
            masks = [torch.zeros(seq, n_head, dtype=torch.bool) for _ in range(n_layer)]
            for l, h in circuit:
                if where == "all":
                    masks[l][:, h] = True
                else:
                    masks[l][-1, h] = True
            handles = []
            for layer, block in enumerate(model.transformer.h):
                def mask_z(module, args, layer=layer):
                    x = args[0]
                    z = x.reshape(x.shape[0], x.shape[1], n_head, d_head)
                    z = torch.where(masks[layer].unsqueeze(0).unsqueeze(-1), z, means[layer].unsqueeze(0))
                    return (z.reshape(x.shape),)
                handles.append(block.attn.c_proj.register_forward_pre_hook(mask_z))
            with torch.no_grad():
                scores.append(metric(model(toks).logits))
            for h in handles:
                h.remove()
        return full, scores

    return loop, torch.__version__, torch.get_num_threads()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="/tmp/scalpel-bench-gpt2-init")
    parser.add_argument("--scalpel", default=os.path.join(ROOT, ".build/release/scalpel"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baselines", type=int, default=100)
    parser.add_argument("--circuit", default=CIRCUIT)
    args = parser.parse_args()

    ensure_random_gpt2(args.scalpel, args.model)

    # The digits family ("1 2 3 4" -> " 5" ... "20 21 22 23" -> " 24"; corrupted answer: the last number),
    # tokenized with GPT-2's tokenizer (Scalpel's bundled copy), BOS 50256 prepended as Scalpel does.
    from transformers import GPT2TokenizerFast
    folder = os.path.join(ROOT, "Sources", "Scalpel", "Resources", "gpt2-tokenizer")
    tokenizer = GPT2TokenizerFast(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
    tokens, answers, foils = [], [], []
    for s in range(1, 21):
        ids = tokenizer.encode(" ".join(str(s + i) for i in range(4)))
        answer, foil = tokenizer.encode(f" {s + 4}"), tokenizer.encode(f" {s + 3}")
        assert len(ids) == 4 and len(answer) == 1 and len(foil) == 1, (s, ids, answer, foil)
        tokens.append([50256] + ids)
        answers.append(answer[0])
        foils.append(foil[0])

    global LOAD_BEFORE
    LOAD_BEFORE = os.getloadavg()
    cmd = [args.scalpel, "circuit", args.circuit, "--model", args.model, "--dataset", "digits", "--baselines", str(args.baselines),
           "--seed", "0", "--format", "json"]
    env = dict(os.environ)
    kept, where = circuit_heads(args.circuit)
    loop, torch_version, threads = setup_torch(args.model, tokens, answers, foils, kept, where, args.baselines, args.threads)
    # Runs interleaved (Scalpel, PyTorch, Scalpel, …) so both see the same load; wall clock and CPU
    # time (user + sys: Scalpel's process, PyTorch's own) of each.
    s_times, s_cpu, t_times, t_cpu, s_json = [], [], [], [], None
    for _ in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        s_times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        s_cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        s_json = json.loads(out.stdout)
        start, cpu = time.perf_counter(), time.process_time()
        full, scores = loop()
        t_times.append(time.perf_counter() - start)
        t_cpu.append(time.process_time() - cpu)
    s_median, t_median = statistics.median(s_times), statistics.median(t_times)
    if abs(scores[0] - s_json["score"]) > 1e-3 or abs(full - s_json["full"]) > 1e-3:
        raise SystemExit(f"scores differ: PyTorch circuit {scores[0]} full {full}; Scalpel {s_json['score']} {s_json['full']}")

    report = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch_version, "torch_threads": threads,
        "prompts": len(tokens), "tokens_per_prompt": len(tokens[0]), "baselines": args.baselines, "circuit_heads": len(kept),
        "kept_at": where, "load_average_before_after": [LOAD_BEFORE, os.getloadavg()],
        "scalpel": {"median_seconds": s_median, "runs_seconds": s_times, "median_cpu_seconds": statistics.median(s_cpu),
                    "runs_cpu_seconds": s_cpu, "command": " ".join(cmd), "score": s_json["score"],
                    "full": s_json["full"], "baselines_mean": s_json["baselines"]["mean"]},
        "pytorch_hooks": {"median_seconds": t_median, "runs_seconds": t_times, "median_cpu_seconds": statistics.median(t_cpu),
                          "runs_cpu_seconds": t_cpu, "score": scores[0], "full": full, "baselines_mean": statistics.mean(scores[1:])},
        "ratio_scalpel_over_pytorch": s_median / t_median,
        "ratio_cpu_scalpel_over_pytorch": statistics.median(s_cpu) / statistics.median(t_cpu),
        "ratios_of_paired_runs": [a / b for a, b in zip(s_times, t_times)],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
