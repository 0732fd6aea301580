"""What every tools/bench_*_peer.py script measures the same way: the CPU's name (figures are quoted
per CPU), CPU seconds (on a shared machine wall time mostly measures the neighbours, CPU time the
work), medians over repeated runs, and the options and random checkpoint the scripts share."""
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


def cpu_model():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_seconds():
    """CPU time of this process (all its threads) and of its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(fn, runs):
    """Runs fn `runs` times: (median wall seconds, median CPU seconds, every wall time, fn's last result)."""
    times, cpu, result = [], [], None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    return statistics.median(times), statistics.median(cpu), times, result


def add_peer_arguments(parser):
    """The options the attribution and detector benchmarks share: the binary, the model, runs, threads."""
    parser.add_argument("--scalpel", required=True, help="the scalpel binary (release build)")
    parser.add_argument("--model", default="/tmp/scalpel-bench-gpt2-random")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())


def ensure_random_gpt2(scalpel, model_dir):
    """A GPT-2-small-shaped checkpoint with random weights in model_dir, made by `scalpel init` when
    the folder has none."""
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        print(f"creating a random GPT-2-small-shaped checkpoint: scalpel init --config gpt2 -o {model_dir}", file=sys.stderr)
        subprocess.run([scalpel, "init", "--config", "gpt2", "-o", model_dir], check=True)
