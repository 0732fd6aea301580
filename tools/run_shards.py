#!/usr/bin/env python3
"""A local stand-in for a cluster job array (docs/cluster.md): runs one Scalpel sweep as N shards,
N processes on this machine, merges their partial files, and compares the result with the same
sweep run unsharded.

    python3 tools/run_shards.py -n 3 -- patch --dataset months --target z --layers 0-1

The command is given without -o and --shard; the script adds them. In WORKDIR (default a new
temporary folder) it writes single/result.h5 (one unsharded run), parts/part{K}.h5 (shard K of N)
and merged/result.h5 (`scalpel merge`), each run from its own folder with the same relative -o, so
that the merged file's command_line is the unsharded one. Exit status 0 when the merged file's
contents equal the unsharded file's: every group, dataset (values, dtype, shape) and attribute.

--kill K first starts shard K with SCALPEL_TEST_HOLD_OUTPUT (the finished temporary file is held
before it is put in place), sends it SIGTERM as soon as its temporary file appears, and checks that
it exits 1 leaving no part file and no temporary file, and that merging without it fails (exit 1,
naming the missing shard, writing nothing); the shard is then rerun and the merge completes.

`classify` is finished by itself, not by `scalpel merge` (its parts are its head patching; the rest
of the pipeline needs the model): `scalpel classify … --patch-result part1.h5 … partN.h5 -o
result.h5`. Its file may differ from the unsharded one only in `command_line`, and with
`--format json` its printed JSON must equal the unsharded run's.
"""
import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_scalpel():
    built = os.path.join(ROOT, ".build", "debug", "scalpel")
    return shutil.which("scalpel") or built


def run(cmd, cwd, env=None, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return proc


def compare_h5(a_path, b_path):
    """Differences between two HDF5 files' contents (empty when equal)."""
    import h5py
    import numpy as np

    def attr_value(f, value):
        if isinstance(value, h5py.Reference):
            return f[value].name if value else None
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":
            return [attr_value(f, v) for v in value.ravel()]
        if isinstance(value, np.ndarray) and value.dtype.names:  # REFERENCE_LIST: (reference, index) pairs
            return [tuple(attr_value(f, x) for x in row) for row in value.tolist()]
        if isinstance(value, (tuple, list)):
            return [attr_value(f, v) for v in value]
        if isinstance(value, np.ndarray):
            return (value.dtype.str, value.shape, value.tobytes())
        if isinstance(value, bytes):
            return value.decode()
        return value

    def describe(f):
        out = {}
        def visit(name, obj):
            attrs = {k: attr_value(f, obj.attrs[k]) for k in obj.attrs.keys()}
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                if obj.dtype.kind == "O":
                    data = [x.decode() if isinstance(x, bytes) else x for x in np.asarray(data).ravel()]
                    out[name] = ("dataset", str(obj.dtype), obj.shape, data, attrs)
                else:
                    out[name] = ("dataset", obj.dtype.str, obj.shape, np.asarray(data).tobytes(), attrs)
            else:
                out[name] = ("group", attrs)
        out["/"] = ("group", {k: attr_value(f, f.attrs[k]) for k in f.attrs.keys()})
        f.visititems(visit)
        return out

    with h5py.File(a_path, "r") as fa, h5py.File(b_path, "r") as fb:
        a, b = describe(fa), describe(fb)
    problems = [f"only in {a_path}: {k}" for k in sorted(set(a) - set(b))]
    problems += [f"only in {b_path}: {k}" for k in sorted(set(b) - set(a))]
    for k in sorted(set(a) & set(b)):
        if a[k] != b[k]:
            if a[k][0] == "dataset" and b[k][0] == "dataset" and a[k][:4] == b[k][:4]:
                keys = [n for n in set(a[k][4]) | set(b[k][4]) if a[k][4].get(n) != b[k][4].get(n)]
                problems.append(f"{k}: attributes differ: {sorted(keys)}")
            elif a[k][0] == "group" and b[k][0] == "group":
                keys = [n for n in set(a[k][1]) | set(b[k][1]) if a[k][1].get(n) != b[k][1].get(n)]
                problems.append(f"{k}: attributes differ: {sorted(keys)}")
            else:
                problems.append(f"{k}: values, dtype or shape differ")
    return problems


def check_partial(path, k, n):
    """One shard's file alone reads as a valid partial file."""
    import h5py
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        assert attrs["format"] == "scalpel-partial", attrs["format"]
        assert attrs["final_format"].startswith("scalpel-") and attrs["final_format"] != "scalpel-partial", attrs["final_format"]
        assert attrs["shard"] == f"{k}/{n}" and int(attrs["shard_index"]) == k and int(attrs["shard_count"]) == n
        assert attrs["model_sha256"] and attrs["run_parameters"] and "--shard" not in attrs["run_parameters"]
        assert "shard/indices" in f and "shard/payload" in f
        if attrs["final_format"] != "scalpel-paths":  # a path search reads families, not prompts
            assert "prompts/tokens" in f


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--shards", type=int, required=True, help="N, the number of shards")
    parser.add_argument("--workdir", help="folder for the files (default: a new temporary folder, removed on success)")
    parser.add_argument("--scalpel", default=find_scalpel(), help="the scalpel binary (default: on PATH, else .build/debug/scalpel)")
    parser.add_argument("--kill", type=int, metavar="K", help="interrupt shard K once while it writes, then rerun it")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the sweep command without -o and --shard")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the sweep command after --, e.g. -- patch --dataset months --target z --layers 0-1")
    n = args.shards
    scalpel = os.path.abspath(args.scalpel)
    workdir = args.workdir or tempfile.mkdtemp(prefix="scalpel-shards-")
    single, parts, merged = (os.path.join(workdir, d) for d in ("single", "parts", "merged"))
    for d in (single, parts, merged):
        os.makedirs(d, exist_ok=True)

    single_out = run([scalpel, *command, "-o", "result.h5"], cwd=single).stdout

    def shard_cmd(k):
        return [scalpel, *command, "-o", f"part{k}.h5", "--shard", f"{k}/{n}"]

    if args.kill:
        k = args.kill
        env = dict(os.environ, SCALPEL_TEST_HOLD_OUTPUT="30")
        proc = subprocess.Popen(shard_cmd(k), cwd=parts, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while not glob.glob(os.path.join(parts, f".part{k}.h5.partial-*")):
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"shard {k} ended (or hung) before its temporary file appeared")
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, f"interrupted shard exited {proc.returncode}: {err}"
        left = os.listdir(parts)
        assert left == [], f"an interrupted shard left {left}"
        print(f"shard {k}/{n} interrupted while writing: exit 1, nothing left ({err.strip().splitlines()[-1]})")

    procs = {k: subprocess.Popen(shard_cmd(k), cwd=parts, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for k in range(1, n + 1) if k != args.kill}
    for k, proc in procs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"shard {k}/{n} failed ({proc.returncode}): {err}")
    part_paths = [os.path.join("..", "parts", f"part{k}.h5") for k in range(1, n + 1)]
    finishes_itself = command[0] == "classify"

    def finish(paths, check=True):
        """`scalpel merge` of the parts, or for classify the run that finishes the pipeline from them."""
        if finishes_itself:
            return run([scalpel, *command, "--patch-result", *paths, "-o", "result.h5"], cwd=merged, check=check)
        return run([scalpel, "merge", *paths, "-o", "result.h5"], cwd=merged, check=check)

    if args.kill:
        present = [p for k, p in enumerate(part_paths, 1) if k != args.kill]
        failed = finish(present, check=False)
        assert failed.returncode == 1, f"merge without shard {args.kill} exited {failed.returncode}"
        assert f"{args.kill}/{n}" in failed.stderr, failed.stderr
        assert not os.listdir(merged), os.listdir(merged)
        print(f"merge without it: exit 1, {failed.stderr.strip()}")
        run(shard_cmd(args.kill), cwd=parts)

    for k in range(1, n + 1):
        check_partial(os.path.join(parts, f"part{k}.h5"), k, n)
    start = time.time()
    finished_out = finish(part_paths).stdout
    seconds = time.time() - start
    problems = compare_h5(os.path.join(single, "result.h5"), os.path.join(merged, "result.h5"))
    if finishes_itself:  # its command line names the parts
        problems = [p for p in problems if p != "/: attributes differ: ['command_line']"]
        if finished_out != single_out:
            problems.append("the printed output differs from the unsharded run's")
    if problems:
        print("\n".join(problems[:20]))
        sys.exit(f"merged file differs from the unsharded one ({len(problems)} differences); files in {workdir}")
    print(f"{n} shards of `{' '.join(command)}`: merged in {seconds:.2f} s, contents equal to the unsharded run")
    if not args.workdir:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
