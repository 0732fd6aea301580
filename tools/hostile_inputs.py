#!/usr/bin/env python3
"""Hostile-input suite for the `scalpel` binary (issue 10: "Nothing lost, nothing crashes").

Builds damaged inputs (checkpoints, configs, tokenizer files, plans, archives, prompt files, output
situations, flags, signals, file-size and memory limits, non-regular files) in a scratch folder and
runs the binary on each under a time and memory limit. A case fails on: death by signal, a hang, an
exit status it does not allow (2 on bad input; 0 on bad input is a silent wrong result), a leftover
temporary file or any unexpected new file, a changed or deleted pre-existing file (data loss), or an
error message that names none of the file, field or value involved.

    python3 tools/hostile_inputs.py                   # CI size, fixed seed
    python3 tools/hostile_inputs.py --large           # a few thousand cases
    python3 tools/hostile_inputs.py --list --only plans
    python3 tools/hostile_inputs.py --only outputs --keep

Standard library only; h5py and numpy are used for the archive cases when importable.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `hostile` package beside this file, from any folder

from hostile.categories import CATEGORIES, all_cases  # noqa: E402
from hostile.harness import (CI_CASES, DATA_LOSS, LARGE_CASES, OTHER, REPO, Assets, Case, Failure, h5py,  # noqa: E402
                             run_case, shell_quote, summary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(REPO / ".build/debug/scalpel"), help="the scalpel binary to test")
    parser.add_argument("--seed", type=int, default=10, help="seed of the fuzzed cases (default 10)")
    parser.add_argument("--cases", type=int, default=None, help=f"case budget (default {CI_CASES}; fixed cases always run)")
    parser.add_argument("--large", action="store_true", help=f"a larger run ({LARGE_CASES} cases)")
    parser.add_argument("--only", action="append", choices=list(CATEGORIES), help="run one category (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder with every case's folder (else all is removed)")
    parser.add_argument("--scratch", help="scratch folder (default: a new temporary folder)")
    options = parser.parse_args()

    binary = str(Path(options.binary).resolve())
    if not options.list and not os.access(binary, os.X_OK):
        print(f"hostile_inputs: no binary at {binary}; build it with `swift build --product scalpel`", file=sys.stderr)
        return 2
    root = Path(options.scratch or tempfile.mkdtemp(prefix="scalpel-hostile-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        assets = Assets(root / "assets", binary)
        budget = options.cases or (LARGE_CASES if options.large else CI_CASES)
        cases = all_cases(assets, budget, options.seed, set(options.only) if options.only else None)
        if options.list:
            for case in cases:
                print(f"{case.id}\texits {sorted(case.exits)}\tscalpel {' '.join(shell_quote(a) for a in case.args)}")
            return 0
        return run_all(cases, binary, root, assets, options.jobs, options.keep)
    finally:
        if options.keep:
            print(f"scratch folder kept: {root} (a case runs in cases/CATEGORY_NAME/work)")
        else:
            make_writable(root)
            shutil.rmtree(root, ignore_errors=True)


def run_all(cases: list[Case], binary: str, root: Path, assets: Assets, jobs: int, keep: bool) -> int:
    if h5py is None:
        print("note: h5py/numpy not importable: the archive-damage cases are skipped")
    if h5py is not None and any(c.category == "archives" for c in cases):
        _ = assets.archive  # made now, so that the check of the shared inputs below sees it before and after
    assets_before = assets.fingerprint()
    started = time.monotonic()
    failures: list[Failure] = []
    notes: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_case, case, binary, root): case for case in cases}
        for future in concurrent.futures.as_completed(futures):
            case = futures[future]
            try:
                found, note, elapsed = future.result()
            except Exception as error:  # a bug in a case's set-up, not in Scalpel
                found, note, elapsed = [Failure(case, OTHER, f"set-up error: {error!r}")], None, 0.0
            seconds[case.category] = seconds.get(case.category, 0.0) + elapsed
            for failure in found:
                print(failure.line(), flush=True)
            failures += found
            if note:
                notes.setdefault(note, []).append(case.id)
            if not keep:  # a case's folder can be large (a trace, an init checkpoint)
                shutil.rmtree(root / "cases" / re.sub(r"[^\w.-]", "_", case.id)[:150], ignore_errors=True)
    assets_after = assets.fingerprint()
    if assets_after != assets_before:
        changed = sorted(p for p in set(assets_before) | set(assets_after) if assets_before.get(p) != assets_after.get(p))
        shared = Case("shared-inputs", "assets", [], None)
        failures.append(Failure(shared, DATA_LOSS, f"shared inputs changed (a case wrote through a hard link?): {changed[:4]}"))
        cases = cases + [shared]
        print(failures[-1].line())
    for note, ids in notes.items():
        print(f"note: {note}: {len(ids)} case(s): {', '.join(sorted(ids)[:6])}{' …' if len(ids) > 6 else ''}")
    print(f"\nHostile-input suite: {len(cases)} cases in {time.monotonic() - started:.0f} s "
          f"(columns: cases failing in each way; s: seconds of runs, summed over {jobs} jobs)")
    print(summary(cases, failures, seconds))
    return 1 if failures else 0


def make_writable(root: Path) -> None:
    for directory, subdirs, _ in os.walk(root):
        for name in subdirs:
            path = Path(directory, name)
            if not path.is_symlink():
                os.chmod(path, 0o755)


if __name__ == "__main__":
    sys.exit(main())
