"""What every tools/bench_*_peer.py script measures the same way: the CPU's name (figures are quoted
per CPU), CPU seconds (on a shared machine wall time mostly measures the neighbours, CPU time the
work) and medians over repeated runs."""
import platform
import resource
import statistics
import subprocess
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
