"""Hostile situations around the inputs: output paths, flags, signals mid-write, file-size and memory
limits, non-regular files, and --shard / merge."""
from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

from .harness import (GB, LOW_MEMORY, MB, NO_DEVICE, PROMPT, SKIP, Assets, Case, Fuzzer, copy_model,
                      make_device, make_fifo, write)

# Writers: (label, args with {out} for the output path). `build` and `init` take the plan/config.
WRITERS = {
    "build": ["build", "plan.yaml", "-o", "{out}"],
    "lens-o": ["lens", "--prompt", PROMPT, "-o", "{out}"],
    "lens-plot": ["lens", "--prompt", PROMPT, "--plot", "{out}"],
    "trace": ["trace", "--prompt", PROMPT, "--hooks", "hook_embed", "-o", "{out}"],
    "paths-o": ["paths", "--from", "digits", "--to", "number-words", "--layers", "0", "--alphas", "0:1:1", "-o", "{out}"],
    "export-hf": ["export-hf", "-o", "{out}"],
    "patch-o": ["patch", "--dataset", "months", "--target", "z", "--layers", "0", "-o", "{out}"],
    "patch-plot": ["patch", "--dataset", "months", "--target", "resid_pre", "--layers", "5", "--plot", "{out}"],
    "heads-pattern-o": ["heads", "--prompt", PROMPT, "--pattern", "5.1", "-o", "{out}"],
    "heads-pattern-html": ["heads", "--prompt", PROMPT, "--pattern", "5.1,0.3", "--html", "{out}"],
    "attribute-o": ["attribute", "--dataset", "months", "--by", "head", "-o", "{out}"],
    "attribute-plot": ["attribute", "--dataset", "months", "--plot", "{out}"],
    "heads-o": ["heads", "--detect", "previous-token", "--dataset", "digits", "-o", "{out}"],
    "heads-plot": ["heads", "--writing", "2.1", "--dataset", "digits", "--plot", "{out}"],
}
PLAN = 'name: small\nblocks: ["0-5"]\n'
# What each output flag writes, and the extensions that name a format (OutputTarget.Content).
FITTING_EXTENSIONS = {"-o": ["h5", "hdf5", "he5"], "--plot": ["svg"], "--html": ["html", "htm"]}  # first suggested
ANNOUNCING_EXTENSIONS = {"h5", "hdf5", "he5", "nc", "svg", "html", "htm", "yaml", "yml", "json", "jsonl", "csv", "tsv",
                         "txt", "md", "png", "jpg", "jpeg", "pdf", "safetensors", "bin", "pt", "pth", "npy", "npz", "mat", "pkl"}


def output_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "outputs"

    def base_setup(work: Path) -> None:
        write(work / "plan.yaml", PLAN)
        write(work / "keep.txt", "a file of the user's\n")
        write(work / "folder/inside.txt", "the user's work\n")
        write(work / "old.out", "OLD RESULT\n")
        write(work / "other/real.out", "REAL\n")
        os.symlink("other/real.out", work / "link.out")
        os.symlink("folder", work / "link-folder")
        make_fifo(work / "fifo.out")
        write(work / "ro/keep.txt", "read-only folder\n")
        os.chmod(work / "ro", 0o555)

    def situation(writer, label, out, force, exits=frozenset({1}), may_change=(), mentions=None, extra_setup=None):
        args = [a.replace("{out}", out) for a in WRITERS[writer]] + (["--force"] if force else [])
        name = f"{writer}-{label}" + ("-force" if force else "")

        def setup(work: Path) -> None:
            base_setup(work)
            if extra_setup:
                extra_setup(work)
        return Case(cat, name, args, setup, mentions or (out or "output", "-o", "--plot", "output"),
                    exits=exits, may_change=may_change)

    cases = []
    is_root = os.geteuid() == 0
    for writer in WRITERS:
        for force in (False, True):
            cases += [
                situation(writer, "empty", "", force, mentions=("output", "-o", "--plot", "empty", '""')),
                situation(writer, "dot", ".", force, mentions=("folder", "directory", "output", '"."')),
                situation(writer, "dotdot", "..", force, mentions=("folder", "directory", "output", "..")),
                situation(writer, "folder", "folder", force, mentions=("folder",)),
                situation(writer, "fifo", "fifo.out", force, mentions=("fifo.out",)),
                situation(writer, "symlink-to-folder", "link-folder", force, mentions=("link-folder",)),
                situation(writer, "dev-null", "/dev/null", False, mentions=("/dev/null",)) if not force else None,
            ]
            if force and writer != "export-hf":
                # A regular file of ours (or reached through a symlink) is what --force may replace.
                cases.append(situation(writer, "existing-file", "old.out", True, exits=frozenset({0}),
                                       may_change=("old.out",)))
                cases.append(situation(writer, "symlink-to-file", "link.out", True, exits=frozenset({0, 1}),
                                       may_change=("link.out", "other/real.out"), mentions=("link.out",)))
                cases.append(situation(writer, "device", "dev.out", True, mentions=("dev.out",),
                                       extra_setup=lambda w: make_device(w / "dev.out") or write(w / SKIP, NO_DEVICE)))
            if not force:
                cases.append(situation(writer, "existing-file", "old.out", False, mentions=("old.out",)))
                cases.append(situation(writer, "symlink-to-file", "link.out", False, mentions=("link.out",)))
                cases.append(situation(writer, "not-a-folder-parent", "keep.txt/x.out", False, mentions=("keep.txt",)))
                cases.append(situation(writer, "read-only-folder", "ro/new.out", False,
                                       exits=frozenset({0, 1}) if is_root else frozenset({1}),
                                       may_change=("ro/new.out",), mentions=("ro",)))
                cases.append(situation(writer, "long-name", "n" * 300 + ".out", False, mentions=("n" * 40,)))
            if writer != "export-hf":
                # A name announcing another format than the one written: refused, its folder not made.
                fitting = FITTING_EXTENSIONS[next(flag for flag in ("--plot", "--html", "-o") if flag in WRITERS[writer])]
                rng = random.Random(f"{writer}-{force}")
                wrong = rng.choice(sorted(ANNOUNCING_EXTENSIONS - set(fitting)))
                wrong = "".join(c.upper() if rng.random() < 0.5 else c for c in wrong)
                cases.append(situation(writer, "named-for-another-format", f"new/result.{wrong}", force,
                                       mentions=(f"new/result.{wrong}", f"result.{fitting[0]}")))
    cases = [c for c in cases if c]

    def earlier_export(work: Path) -> None:
        base_setup(work)
        subprocess.run([assets.binary, "export-hf", "-o", "hf"], cwd=work, check=True, capture_output=True)

    cases += [
        # A folder Scalpel exported is the one folder --force may replace (DESIGN.md, "Output safety").
        Case(cat, "export-hf-own-folder-force", ["export-hf", "-o", "hf", "--force"], earlier_export,
             exits=frozenset({0}), may_change=("hf",)),
        Case(cat, "export-hf-own-folder", ["export-hf", "-o", "hf"], earlier_export, ("hf",)),
        Case(cat, "lens-second-output-bad", ["lens", "--prompt", PROMPT, "-o", "new.h5", "--plot", "folder"],
             base_setup, ("folder",)),
        Case(cat, "lens-second-output-bad-force", ["lens", "--prompt", PROMPT, "-o", "new.h5", "--plot", "folder", "--force"],
             base_setup, ("folder",)),
        Case(cat, "lens-second-output-exists", ["lens", "--prompt", PROMPT, "-o", "new.h5", "--plot", "old.out"],
             base_setup, ("old.out",)),
        Case(cat, "paths-second-output-bad", ["paths", "--from", "digits", "--to", "number-words", "--layers", "0",
                                              "--alphas", "0:1:1", "-o", "new.h5", "--plot", ""], base_setup,
             ("--plot", "output", "empty", '""')),
        Case(cat, "lens-same-path-twice", ["lens", "--prompt", PROMPT, "-o", "same.out", "--plot", "same.out"],
             base_setup, ("same.out",)),
        Case(cat, "build-plan-name-dotdot", ["build", "bad-name.yaml"],
             lambda w: (base_setup(w), write(w / "bad-name.yaml", 'name: ../../../escaped\nblocks: ["0-5"]\n')),
             ("name", "escaped")),
        Case(cat, "race-same-new-path", ["trace", "--prompts", "many.txt", "--hooks", "blocks.*.hook_resid_post",
                                         "-o", "race.h5"],
             lambda w: (base_setup(w), write(w / "many.txt", many_prompts(40))), ("race.h5",),
             exits=frozenset({0, 1}), may_change=("race.h5",), concurrent=2),
        Case(cat, "init-bad-tokenizer", ["init", "--config", "distilgpt2", "-o", "ckpt", "--tokenizer", "nowhere"],
             base_setup, ("nowhere",), file_size=16 * MB, timeout=60),
        Case(cat, "init-dot-force", ["init", "--config", "distilgpt2", "-o", ".", "--force"], base_setup,
             ("folder", "directory", "output", '"."'), file_size=16 * MB, timeout=60),
        Case(cat, "init-dotdot-force", ["init", "--config", "distilgpt2", "-o", "..", "--force"], base_setup,
             ("folder", "directory", "output", ".."), file_size=16 * MB, timeout=60),
        Case(cat, "init-folder-force", ["init", "--config", "distilgpt2", "-o", "folder", "--force"], base_setup,
             ("folder",), file_size=16 * MB, timeout=60),
    ]
    return cases, None


def many_prompts(count: int) -> str:
    return "".join(" ".join(str(j) for j in range(i % 50, i % 50 + 20)) + "\n" for i in range(count))


def flag_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "flags"

    def flag(name, args, mentions, exits=frozenset({1}), **kw):
        return Case(cat, name, args, None, mentions, exits=exits, **kw)

    bench = ["bench", "--tokens", "4", "--batch", "2", "--runs", "1", "--batch-runs", "1"]
    paths = ["paths", "--from", "digits", "--to", "number-words", "--layers", "0"]
    trace = ["trace", "--prompt", PROMPT, "-o", "t.h5"]
    lens = ["lens", "--prompt", PROMPT]

    def stars(count):
        return "*" * count + "x"

    cases = [
        flag("bench-runs-0", bench + ["--runs", "0"], ("--runs",)),
        flag("bench-batch-0", bench + ["--batch", "0"], ("--batch",)),
        flag("bench-batch-runs-0", bench + ["--batch-runs", "0"], ("--batch-runs",)),
        flag("bench-runs-negative", bench + ["--runs", "-3"], ("--runs", "-3")),
        flag("bench-batch-negative", bench + ["--batch", "-2"], ("--batch", "-2")),
        flag("bench-tokens-0", bench + ["--tokens", "0"], ("--tokens",)),
        flag("bench-tokens-negative", bench + ["--tokens", "-1"], ("--tokens", "-1")),
        flag("bench-tokens-past-context", bench + ["--tokens", "100000"], ("--tokens", "128", "n_positions")),
        flag("bench-batch-huge", bench + ["--batch", str(1 << 40)], ("--batch",)),
        flag("bench-matmul-rows-0", bench + ["--matmul-rows", "0"], ("--matmul-rows",)),
        flag("run-top-k-0", ["run", "--prompt", PROMPT, "--top-k", "0"], ("--top-k",)),
        flag("run-top-k-negative", ["run", "--prompt", PROMPT, "--top-k", "-5"], ("--top-k", "-5")),
        flag("run-top-k-huge", ["run", "--prompt", PROMPT, "--top-k", str(1 << 62)], ("--top-k",), exits=frozenset({0, 1})),
        flag("run-answer-empty", ["run", "--prompt", PROMPT, "--answer", ""], ("--answer", "answer")),
        flag("run-prompt-empty-no-bos", ["run", "--prompt", "", "--no-bos"], ("prompt", "empty", "token")),
        flag("alphas-inf", paths + ["--alphas", "0:inf:1"], ("--alphas", "inf")),
        flag("alphas-nan", paths + ["--alphas", "nan:1:0.5"], ("--alphas", "nan")),
        flag("alphas-huge-grid", paths + ["--alphas", "0:1e12:1e-12"], ("--alphas",)),
        flag("alphas-zero-step", paths + ["--alphas", "0:1:0"], ("--alphas",)),
        flag("alphas-negative-step", paths + ["--alphas", "0:1:-0.5"], ("--alphas",)),
        flag("alphas-reversed", paths + ["--alphas", "1:0:0.5"], ("--alphas",), exits=frozenset({0, 1})),
        flag("alphas-garbage", paths + ["--alphas", "a:b:c"], ("--alphas", "a:b:c")),
        flag("alphas-two-fields", paths + ["--alphas", "0:1"], ("--alphas", "0:1")),
        flag("paths-layers-99", ["paths", "--from", "digits", "--to", "number-words", "--layers", "99"], ("--layers", "99")),
        flag("paths-layers-negative", ["paths", "--from", "digits", "--to", "number-words", "--layers", "-1"], ("--layers", "-1")),
        flag("paths-p-nan", ["paths", "add-vector", "blocks.3.hook_mlp_out", "--vector-prompt", "a b", "--prompt", "c d",
                             "--expect", " e", "--layer", "3", "--p", "nan"], ("--p", "nan")),
        flag("paths-layer-99", ["paths", "add-vector", "blocks.3.hook_mlp_out", "--vector-prompt", "a b", "--prompt", "c d",
                                "--expect", " e", "--layer", "99"], ("--layer", "99")),
        flag("hooks-empty", trace + ["--hooks", ""], ("--hooks",)),
        flag("hooks-commas", trace + ["--hooks", ",,,"], ("--hooks",)),
        flag("hooks-8-stars", trace + ["--hooks", stars(8)], ("--hooks", stars(8))),
        flag("hooks-12-stars", trace + ["--hooks", stars(12)], ("--hooks", stars(12))),
        flag("hooks-30-stars", trace + ["--hooks", "blocks." + stars(30)], ("--hooks", stars(30))),
        flag("hooks-unknown", trace + ["--hooks", "blocks.99.hook_resid_post"], ("blocks.99.hook_resid_post",)),
        flag("trace-batch-size-0", trace + ["--hooks", "hook_embed", "--batch-size", "0"], ("--batch-size",)),
        flag("trace-batch-size-negative", trace + ["--hooks", "hook_embed", "--batch-size", "-4"], ("--batch-size", "-4")),
        flag("blocks-empty", ["run", "--prompt", PROMPT, "--blocks", ""], ("--blocks",)),
        flag("blocks-comma", ["run", "--prompt", PROMPT, "--blocks", ","], ("--blocks",)),
        flag("blocks-99", ["run", "--prompt", PROMPT, "--blocks", "0-99"], ("99",)),
        flag("blocks-negative", ["run", "--prompt", PROMPT, "--blocks", "-1"], ("--blocks", "-1")),
        flag("blocks-huge-number", ["run", "--prompt", PROMPT, "--blocks", "0-" + "9" * 30], ("--blocks", "9" * 30)),
        flag("positions-minus-1", lens + ["--positions", "-1"], ("--positions",), exits=frozenset({0})),
        flag("positions-list-negative", lens + ["--positions", "0,-1"], ("--positions",), exits=frozenset({0})),
        flag("positions-999", lens + ["--positions", "999"], ("--positions", "999", "position")),
        flag("positions-minus-999", lens + ["--positions=-999"], ("--positions", "-999", "position")),
        flag("positions-empty", lens + ["--positions", ""], ("--positions",)),
        flag("positions-huge", lens + ["--positions", "9" * 30], ("--positions",)),
        flag("lens-top-k-0", lens + ["--top-k", "0"], ("--top-k",)),
        flag("lens-top-k-negative", lens + ["--top-k", "-1"], ("--top-k", "-1")),
        flag("init-config-unknown", ["init", "--config", "nosuch", "-o", "ckpt"], ("--config", "nosuch")),
        flag("init-seed-negative", ["init", "--config", "distilgpt2", "--seed", "-1", "-o", "ckpt"], ("--seed", "-1")),
        flag("format-unsupported", ["datasets", "--format", "csv"], ("--format", "csv")),
        flag("dataset-unknown", ["run", "--dataset", "nosuch"], ("nosuch",)),
        flag("model-empty", ["run", "--model", "", "--prompt", PROMPT], ("--model", "model", '""')),
    ]
    numbers = ["0", "-1", "-0", "1e3", "nan", "inf", "-inf", str(1 << 63), str(-(1 << 63)), "0x10", "", " 1", "1.5"]
    numeric_flags = [(bench, "--runs"), (bench, "--batch"), (bench, "--tokens"), (bench, "--batch-runs"),
                     (["run", "--prompt", PROMPT], "--top-k"), (lens, "--top-k"), (lens, "--positions"),
                     (trace + ["--hooks", "hook_embed"], "--batch-size"), (paths, "--alphas")]

    def fuzz(rng: random.Random, n: int) -> Case:
        base, name = rng.choice(numeric_flags)
        value = rng.choice(numbers) if name != "--alphas" else ":".join(rng.choice(numbers) for _ in range(3))
        return flag(f"fuzz{n}{name}={value}", base + [f"{name}={value}"], (name,), exits=frozenset({0, 1}),
                    may_change=("t.h5",))

    return cases, fuzz


def signal_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "signals"
    cases = []

    def setup(work: Path) -> None:
        write(work / "many.txt", many_prompts(16))
        write(work / "plan.yaml", PLAN)
        write(work / "old.h5", "OLD RESULT\n")
        write(work / "keep.txt", "keep\n")
        copy_model(assets.bundled, work / "model")

    writers = {
        "trace": ["trace", "--prompts", "many.txt", "--hooks", "blocks.*", "-o", "{out}"],
        "build": ["build", "plan.yaml", "-o", "{out}"],
        "export-hf": ["export-hf", "-o", "{out}"],
        "lens": ["lens", "--prompts", "many.txt", "--positions", "all", "-o", "{out}"],
    }
    for writer, args in writers.items():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            for target, force in (("new.h5", False), ("old.h5", True)):
                if writer == "export-hf" and force:
                    continue
                label = f"{writer}-{sig.name}-{'existing-force' if force else 'new'}"
                argv = [a.replace("{out}", target) for a in args] + (["--force"] if force else [])
                cases.append(Case(cat, label, argv, setup, ("interrupt", "signal", sig.name, target),
                                  interrupt=sig, timeout=60))
    return cases, None


def file_size_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "file-size"

    def setup(work: Path) -> None:
        write(work / "plan.yaml", PLAN)
        write(work / "old.h5", "OLD RESULT\n")
        write(work / "many.txt", many_prompts(4))

    writers = {
        "build": ["build", "plan.yaml", "-o", "{out}"],
        "trace": ["trace", "--prompts", "many.txt", "--hooks", "blocks.*", "-o", "{out}"],
        "lens": ["lens", "--prompts", "many.txt", "--positions", "all", "-o", "{out}"],
        "lens-plot": ["lens", "--prompts", "many.txt", "--positions", "all", "-o", "{out}", "--plot", "p.svg"],
        "paths": ["paths", "--from", "digits", "--to", "number-words", "--layers", "0", "--alphas", "0:1:1", "-o", "{out}"],
        "export-hf": ["export-hf", "-o", "{out}"],
    }
    cases = []
    for writer, args in writers.items():
        for limit in (4096, 256 * 1024):
            for target, force in (("new.h5", False), ("old.h5", True)):
                if writer == "export-hf" and force:
                    continue
                argv = [a.replace("{out}", target) for a in args] + (["--force"] if force else [])
                # Under 4 KB every output is cut short; under 256 KB small ones (a lens file) fit and may be written.
                fits = limit > 4096
                cases.append(Case(cat, f"{writer}-{limit // 1024}k-{target}", argv, setup,
                                  ("too large", "file size", "size limit", target), file_size=limit,
                                  exits=frozenset({0, 1}) if fits else frozenset({1}),
                                  may_change=(target, "p.svg") if fits else ()))
    return cases, None


def non_regular_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "non-regular"
    message = ("not a regular file",)
    folder_message = ("not a regular file", "is a folder", "is a directory")

    def fifo(path):
        return lambda w: make_fifo(w / path)

    def folder(path):
        return lambda w: (w / path).mkdir(parents=True)

    def model_with_fifo(file):
        def setup(work: Path) -> None:
            copy_model(assets.bundled, work / "model", skip=(file,))
            make_fifo(work / "model" / file)
        return setup

    def case(name, args, setup, mentions=message, **kw):
        return Case(cat, name, args, setup, mentions, timeout=5, **kw)

    run = ["run", "--prompt", PROMPT]
    cases = [
        case("fifo-archive", run + ["--model", "m.h5"], fifo("m.h5")),
        case("fifo-safetensors", run + ["--model", "model"], model_with_fifo("model.safetensors")),
        case("fifo-config", run + ["--model", "model"], model_with_fifo("config.json")),
        case("fifo-vocab", run + ["--model", "model"], model_with_fifo("vocab.json")),
        case("fifo-merges", run + ["--model", "model"], model_with_fifo("merges.txt")),
        case("fifo-plan", ["inspect", "--plan", "p.yaml"], fifo("p.yaml")),
        case("fifo-plan-build", ["build", "p.yaml", "-o", "x.h5"], fifo("p.yaml")),
        case("fifo-prompts", ["lens", "--prompts", "p.txt"], fifo("p.txt")),
        case("fifo-dataset", ["run", "--dataset", "p.txt"], fifo("p.txt")),
        case("fifo-families", ["paths", "--families", "f.yaml", "--family", "x", "--direction", "next"], fifo("f.yaml")),
        case("folder-archive", run + ["--model", "m.h5"], folder("m.h5"), folder_message),
        case("folder-plan", ["inspect", "--plan", "p.yaml"], folder("p.yaml"), folder_message),
        case("folder-prompts", ["lens", "--prompts", "p.txt"], folder("p.txt"), folder_message),
        case("folder-dataset", ["run", "--dataset", "p.txt"], folder("p.txt"), folder_message),
        case("folder-config", run + ["--model", "model"],
             lambda w: (copy_model(assets.bundled, w / "model", skip=("config.json",)), (w / "model/config.json").mkdir()),
             folder_message),
        case("dev-zero-model", run + ["--model", "/dev/zero"], None, memory=1 * GB),
        case("dev-zero-plan", ["inspect", "--plan", "/dev/zero"], None, memory=1 * GB),
        case("dev-zero-prompts", ["lens", "--prompts", "/dev/zero"], None, memory=1 * GB),
        case("dev-null-plan", ["inspect", "--plan", "/dev/null"], None),
        case("dev-null-dataset", ["datasets", "/dev/null"], None, mentions=("/dev/null",)),
        case("missing-plan", ["inspect", "--plan", "nope.yaml"], None, mentions=("nope.yaml",)),
        case("base-is-fifo", ["inspect", "--plan", "p.yaml"],
             lambda w: (write(w / "p.yaml", 'base: ./m.h5\nblocks: ["0-1"]\n'), make_fifo(w / "m.h5")),
             mentions=("not a regular file",)),
    ]
    return cases, None


def memory_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    """Every command under a 600 MB address-space limit: runs, or exits 1 saying memory ran out."""
    cat = "low-memory"
    commands = {
        "inspect": ["inspect"],
        "tokenize": ["tokenize", PROMPT],
        "run": ["run", "--prompt", PROMPT],
        "run-dataset": ["run", "--dataset", "digits"],
        "lens": ["lens", "--prompt", PROMPT, "-o", "l.h5"],
        "trace": ["trace", "--dataset", "digits", "--hooks", "blocks.*", "-o", "t.h5"],
        "build": ["build", "plan.yaml", "-o", "b.h5"],
        "paths": ["paths", "--from", "digits", "--to", "number-words", "--layers", "0", "--alphas", "0:1:1"],
        "export-hf": ["export-hf", "-o", "hf"],
        "bench": ["bench", "--tokens", "4", "--batch", "2", "--runs", "1", "--batch-runs", "1"],
    }
    cases = [Case(cat, name, args, lambda w: write(w / "plan.yaml", PLAN), ("memory",), exits=frozenset({0, 1}),
                  memory=LOW_MEMORY, timeout=20, may_change=("l.h5", "t.h5", "b.h5", "hf"))
             for name, args in commands.items()]
    return cases, None


def shard_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    """--shard K/N out of range or not numbers; merges of parts that are not one run (cheap: two layers)."""
    cat = "shard"
    patch = ["patch", "--model", str(assets.bundled), "--dataset", "months", "--target", "z", "--layers", "0-1"]

    def parts(*specs: tuple[str, list[str]]):
        def setup(work: Path) -> None:
            for name, extra in specs:
                subprocess.run([assets.binary, *patch, *extra, "-o", name], cwd=work, check=True, capture_output=True)
        return setup

    cases = [Case(cat, f"shard-{bad}", patch + ["--shard", bad, "-o", "p.h5"], mentions=(bad, "K/N"))
             for bad in ["0/3", "4/3", "1/0", "x/3", "1/y", "3", "1/2/3", "-1/3", "", "99999999999999999999/3"]]
    cases += [
        Case(cat, "trace-shard-0", ["trace", "--model", str(assets.bundled), "--dataset", "months", "--hooks", "hook_embed",
                                    "--shard", "0/2", "-o", "t.h5"], mentions=("0/2",)),
        Case(cat, "lens-shard-no-output", ["lens", "--model", str(assets.bundled), "--dataset", "months", "--shard", "1/2"], mentions=("-o",)),
        Case(cat, "merge-missing", ["merge", "p1.h5", "-o", "m.h5"], parts(("p1.h5", ["--shard", "1/2"])), mentions=("missing shard 2/2",)),
        Case(cat, "merge-repeated", ["merge", "p1.h5", "p1.h5", "p2.h5", "-o", "m.h5"],
             parts(("p1.h5", ["--shard", "1/2"]), ("p2.h5", ["--shard", "2/2"])), mentions=("more than once",)),
        Case(cat, "merge-other-n", ["merge", "p1.h5", "q2.h5", "-o", "m.h5"],
             parts(("p1.h5", ["--shard", "1/2"]), ("q2.h5", ["--shard", "2/3"])), mentions=("number of shards",)),
        Case(cat, "merge-other-run", ["merge", "p1.h5", "r2.h5", "-o", "m.h5"],
             parts(("p1.h5", ["--shard", "1/2"]), ("r2.h5", ["--metric", "prob", "--shard", "2/2"])), mentions=("run parameters",)),
        Case(cat, "merge-not-partial", ["merge", "p1.h5", "w.h5", "-o", "m.h5"],
             parts(("p1.h5", ["--shard", "1/2"]), ("w.h5", [])), mentions=("not a partial file",)),
        Case(cat, "merge-not-hdf5", ["merge", "p1.h5", "x.h5", "-o", "m.h5"],
             lambda w: (parts(("p1.h5", ["--shard", "1/2"]))(w), write(w / "x.h5", "not hdf5")), mentions=("x.h5",)),
        Case(cat, "merge-nothing", ["merge", "-o", "m.h5"], mentions=("partial files",)),
    ]
    # attribute and paths: the shared --shard checks, and merges of their parts with other runs' parts.
    attribute = ["attribute", "--model", str(assets.bundled), "--dataset", "months", "--by", "neuron", "--layers", "1"]
    paths = ["paths", "--model", str(assets.bundled), "--from", "digits", "--to", "number-words", "--layers", "0,5", "--alphas", "0:1:1"]
    cases += [Case(cat, f"{command[0]}-shard-{bad}", command + ["--shard", bad, "-o", "a.h5"], mentions=(bad, "K/N"))
              for command in (attribute, paths) for bad in ["0/3", "4/3", "1/0", "x/3", "1/2/3"]]

    def run_parts(*specs: tuple[str, list[str]]):
        def setup(work: Path) -> None:
            for name, args in specs:
                subprocess.run([assets.binary, *args, "-o", name], cwd=work, check=True, capture_output=True)
        return setup

    cases += [
        Case(cat, "paths-shard-no-output", paths + ["--shard", "1/2"], mentions=("-o",)),
        Case(cat, "merge-attribute-with-patch", ["merge", "a1.h5", "p2.h5", "-o", "m.h5"],
             run_parts(("a1.h5", attribute + ["--shard", "1/2"]), ("p2.h5", patch + ["--shard", "2/2"])), mentions=("kind of sweep",)),
        Case(cat, "merge-attribute-other-grouping", ["merge", "a1.h5", "a2.h5", "-o", "m.h5"],
             run_parts(("a1.h5", attribute + ["--shard", "1/2"]), ("a2.h5", attribute + ["--layers", "2", "--shard", "2/2"])),
             mentions=("run parameters",)),
        Case(cat, "merge-paths-other-alphas", ["merge", "q1.h5", "q2.h5", "-o", "m.h5"],
             run_parts(("q1.h5", paths + ["--shard", "1/2"]), ("q2.h5", paths[:-1] + ["0:2:1", "--shard", "2/2"])),
             mentions=("run parameters",)),
        Case(cat, "merge-paths-missing", ["merge", "q1.h5", "-o", "m.h5"], run_parts(("q1.h5", paths + ["--shard", "1/3"])),
             mentions=("missing shard", "2/3")),
    ]
    return cases, None
