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
import dataclasses
import functools
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

try:
    import h5py
    import numpy as np
except ImportError:  # the archive cases skip with a note
    h5py = None
    np = None

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "Sources/Scalpel/Resources/bundled-model"
TINY_HUB = REPO / "Tests/ScalpelTests/Fixtures/models/tiny-hub"

GB = 1 << 30
MB = 1 << 20
DEFAULT_MEMORY = 4 * GB
LOW_MEMORY = 600 * MB
DEFAULT_TIMEOUT = 15.0
CI_CASES = 1000  # the fixed cases (771) and fuzzed ones shared among the categories
LARGE_CASES = 3000

# Scalpel's temporaries are `.NAME.partial-PID-RANDOM` (AtomicOutput); any leftover is a failure.
TEMPORARY = re.compile(r"^\..*\.partial-")
SENTINEL = "SENTINEL-do-not-delete.txt"
SKIP = "SKIP-this-case.txt"  # a set-up that cannot be made here writes its reason to this file
NO_DEVICE = "cannot create a device node here (no CAP_MKNOD)"

# Failure kinds, in the order of the summary table.
CRASH, HANG, DATA_LOSS, PARTIAL, SILENT, EXIT2, UNCLEAR, REFUSED, OTHER = (
    "crash", "hang", "data loss", "partial file", "silent wrong", "exit 2", "unclear message", "refused valid", "other")
KINDS = [CRASH, HANG, DATA_LOSS, PARTIAL, SILENT, EXIT2, UNCLEAR, REFUSED, OTHER]

PROMPT = "1 2 3 4"


# ---------------------------------------------------------------------------------------------
# Cases


@dataclasses.dataclass
class Case:
    category: str
    name: str
    args: list[str]
    """Arguments after the binary; run in the case's work folder."""
    setup: Optional[Callable[[Path], None]] = None
    """Builds the inputs in the work folder (before the snapshot of existing files)."""
    mentions: tuple[str, ...] = ()
    """The message must contain at least one of these (case-insensitive) when the status is 1."""
    exits: frozenset[int] = frozenset({1})
    """Allowed exit statuses; 0 only where the input is legitimately acceptable."""
    may_change: tuple[str, ...] = ()
    """Paths (relative to the work folder) that may be created or replaced, e.g. by --force."""
    warn_on_success: bool = False
    """Even on exit 0, stderr must carry one of `mentions` (a warning, e.g. NaN weights)."""
    check: Optional[Callable[["Outcome"], Optional[str]]] = None
    """Extra check of a successful run's results; returns what is wrong (a silent wrong result)."""
    timeout: float = DEFAULT_TIMEOUT
    memory: int = DEFAULT_MEMORY
    file_size: Optional[int] = None
    interrupt: Optional[int] = None
    """A signal sent once a temporary file appears (mid-write)."""
    concurrent: int = 1
    """Run this many copies at once (a race on one new output): exactly one may succeed."""
    needs_h5py: bool = False
    still_running_ok: bool = False
    """Reaching the time limit is not a hang: the case checks that the run stays within its memory limit."""

    @property
    def id(self) -> str:
        return f"{self.category}/{self.name}"


@dataclasses.dataclass
class Outcome:
    case: Case
    work: Path
    binary: str
    codes: list[Optional[int]]  # None: timed out
    stdout: str
    stderr: str
    interrupted: Optional[bool] = None

    def scalpel(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
        """Runs the binary again in the work folder (to read back what a case wrote)."""
        return subprocess.run([self.binary, *args], cwd=self.work, capture_output=True, text=True,
                              errors="replace", timeout=timeout)


# ---------------------------------------------------------------------------------------------
# File helpers


def write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def copy_model(source: Path, folder: Path, skip: tuple[str, ...] = ()) -> None:
    """Copies a checkpoint folder; the weights are hard-linked (read-only use; assets are verified at the end)."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in skip or not item.is_file():
            continue
        if item.suffix == ".safetensors":
            os.link(item, folder / item.name)
        else:
            shutil.copyfile(item, folder / item.name)


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def read_safetensors(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def write_safetensors(path: Path, header: dict, data: bytes, declared_length: Optional[int] = None) -> None:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    length = len(text) if declared_length is None else declared_length
    if path.exists() or path.is_symlink():
        path.unlink()  # never write through a hard link to an asset
    write(path, struct.pack("<Q", length) + text + data)


def floats(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def random_checkpoint(folder: Path, rng: random.Random, *, n_layer=1, n_embd=8, n_head=2, vocab=4,
                      positions=8, tokenizer=True) -> None:
    """A tiny GPT-2 checkpoint of any shape, written here (the bundled model has one fixed shape)."""
    d, inner = n_embd, 4 * n_embd
    shapes = {"wte.weight": [vocab, d], "wpe.weight": [positions, d], "ln_f.weight": [d], "ln_f.bias": [d]}
    for i in range(n_layer):
        shapes |= {f"h.{i}.ln_1.weight": [d], f"h.{i}.ln_1.bias": [d], f"h.{i}.ln_2.weight": [d],
                   f"h.{i}.ln_2.bias": [d], f"h.{i}.attn.c_attn.weight": [d, 3 * d],
                   f"h.{i}.attn.c_attn.bias": [3 * d], f"h.{i}.attn.c_proj.weight": [d, d],
                   f"h.{i}.attn.c_proj.bias": [d], f"h.{i}.mlp.c_fc.weight": [d, inner],
                   f"h.{i}.mlp.c_fc.bias": [inner], f"h.{i}.mlp.c_proj.weight": [inner, d],
                   f"h.{i}.mlp.c_proj.bias": [d]}
    header, data = {}, bytearray()
    for name, shape in shapes.items():
        count = 1
        for n in shape:
            count *= n
        begin = len(data)
        data += floats([rng.gauss(0, 0.02) for _ in range(count)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [begin, len(data)]}
    write_safetensors(folder / "model.safetensors", header, bytes(data))
    config = json.loads((BUNDLED / "config.json").read_text())
    config |= {"n_layer": n_layer, "n_embd": d, "n_head": n_head, "vocab_size": vocab, "n_positions": positions,
               "bos_token_id": vocab - 1, "eos_token_id": vocab - 1}
    write(folder / "config.json", json.dumps(config))
    if tokenizer:
        letters = "abcdefghijklmnopqrstuvwxyz"
        vocab_map = {letters[i % 26] * (1 + i // 26): i for i in range(vocab - 1)} | {"<|endoftext|>": vocab - 1}
        write(folder / "vocab.json", json.dumps(vocab_map))
        write(folder / "merges.txt", "#version: 0.2\n")


def make_fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def make_device(path: Path) -> bool:
    """A character device (like /dev/null) inside the scratch folder; needs CAP_MKNOD."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return True
    except OSError:
        return False


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def alias_bomb(levels: int = 9) -> str:
    """Billion laughs: each level refers to the previous one nine times."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def names(*items: Path | str) -> tuple[str, ...]:
    return tuple(Path(i).name if isinstance(i, Path) else i for i in items)


# ---------------------------------------------------------------------------------------------
# Checks used by several cases


def expect_json_items(count: int) -> Callable[[Outcome], Optional[str]]:
    """`datasets FILE --format json` must list `count` prompts (CR, LF and CRLF alike)."""
    def check(outcome: Outcome) -> Optional[str]:
        found = len(re.findall(r'"prompt"\s*:', outcome.stdout))
        return None if found == count else f"expected {count} prompts, found {found}"
    return check


def expect_same_stdout(baseline: Callable[[], str]) -> Callable[[Outcome], Optional[str]]:
    """The same results as on the undamaged input (JSON compared as values: key order may vary)."""
    def parsed(text: str):
        try:
            return json.loads(text)
        except ValueError:
            return text

    def check(outcome: Outcome) -> Optional[str]:
        if parsed(outcome.stdout) == parsed(baseline()):
            return None
        return f"output differs from the undamaged input's: {' '.join(outcome.stdout.split())[:160]}"
    return check


def expect_readable_output(path: str) -> Callable[[Outcome], Optional[str]]:
    """An archive that was written must load back."""
    def check(outcome: Outcome) -> Optional[str]:
        result = outcome.scalpel("run", "--model", path, "--prompt", PROMPT)
        return None if result.returncode == 0 else f"{path} was written but cannot be read back: {result.stderr.strip()[:200]}"
    return check


# ---------------------------------------------------------------------------------------------
# Categories. Each returns (fixed cases, a fuzzer making one more case from a random generator or None).

Fuzzer = Optional[Callable[[random.Random, int], Case]]


class Assets:
    """Inputs shared by many cases, made once per run (the archive with the binary itself)."""

    def __init__(self, root: Path, binary: str):
        self.root = root
        self.binary = binary
        self.bundled = root / "bundled"
        copy_model(BUNDLED, self.bundled)
        self.tiny = root / "tiny"
        copy_model(TINY_HUB, self.tiny)
        self.heads8 = root / "heads8"  # the bundled weights read as 8 heads of 16: same width, other head count
        copy_model(BUNDLED, self.heads8)
        edit_json(self.heads8 / "config.json", lambda c: c.update(n_head=8))
        self._baselines: dict[tuple, str] = {}

    @functools.cached_property
    def archive(self) -> Path:
        """An archive built by the binary itself, with ablated heads and neurons (made on first use)."""
        archive, plan = self.root / "archive.h5", self.root / "archive-plan.yaml"
        write(plan, ARCHIVE_PLAN)
        subprocess.run([self.binary, "build", str(plan), "-o", str(archive)], check=True, capture_output=True)
        return archive

    def baseline(self, *args: str) -> Callable[[], str]:
        """Stdout of the binary on undamaged inputs, computed on first use."""
        def get() -> str:
            if args not in self._baselines:
                result = subprocess.run([self.binary, *args], cwd=self.root, capture_output=True, text=True)
                self._baselines[args] = result.stdout
            return self._baselines[args]
        return get

    def fingerprint(self) -> dict[str, str]:
        return snapshot(self.root)


ARCHIVE_PLAN = """name: hostile-base
blocks: ["0-5"]
edits:
  - ablate_heads: ["1.1", "2.0"]
    mode: zero
  - ablate_neurons: ["3.7", "4.100"]
    mode: mean
    dataset: digits
"""


def checkpoint_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "checkpoints"
    st = "model/model.safetensors"
    run = ["run", "--model", "model", "--prompt", PROMPT]
    header, data = read_safetensors(assets.bundled / "model.safetensors")

    def damaged(change: Callable[[dict, bytearray], Optional[tuple[dict, bytes, Optional[int]]]]):
        def setup(work: Path) -> None:
            copy_model(assets.bundled, work / "model")
            h, d = json.loads(json.dumps(header)), bytearray(data)
            result = change(h, d)  # edits in place, or returns (header, data, declared header length)
            h, d, declared = result if isinstance(result, tuple) else (h, d, None)
            write_safetensors(work / st, h, bytes(d), declared)
        return setup

    def raw(content: Callable[[bytes], bytes]):
        def setup(work: Path) -> None:
            copy_model(assets.bundled, work / "model", skip=("model.safetensors",))
            write(work / st, content((assets.bundled / "model.safetensors").read_bytes()))
        return setup

    def case(name, setup, mentions=("model.safetensors",), **kw):
        return Case(cat, name, run, setup, mentions, **kw)

    # The bundled file uses save_pretrained's `transformer.` prefix; hub files have none.
    prefix = "transformer." if "transformer.wte.weight" in header else ""
    other_prefix = "" if prefix else "transformer."
    wte = prefix + "wte.weight"
    first = prefix + "h.0.attn.c_attn.weight"
    # Messages may name a tensor with or without the prefix: expect the name without it.
    short_wte, short_first = "wte.weight", "h.0.attn.c_attn.weight"

    def set_entry(name, **fields):
        return lambda h, d: h[name].update(fields)

    def drop(name):
        """Removes a tensor and its bytes (a hole in the data region would be a different error)."""
        def change(h, d):
            begin, end = h.pop(name)["data_offsets"]
            for entry in h.values():
                if isinstance(entry, dict) and "data_offsets" in entry and entry["data_offsets"][0] >= end:
                    entry["data_offsets"] = [o - (end - begin) for o in entry["data_offsets"]]
            return h, bytes(d[:begin] + d[end:]), None
        return change

    def nan_in(name, value):
        def change(h, d):
            begin = h[name]["data_offsets"][0]
            d[begin:begin + 4] = floats([value])
        return change

    def both_prefixes(h, d):
        h[other_prefix + "wte.weight"] = dict(h[wte])

    def overlap(h, d):
        h[prefix + "wpe.weight"]["data_offsets"] = list(h[wte]["data_offsets"])[:1] + [h[wte]["data_offsets"][0] + 4 * 128 * 128]

    cases = [
        case("empty-file", raw(lambda b: b"")),
        case("four-bytes", raw(lambda b: b[:4])),
        case("header-length-only", raw(lambda b: b[:8])),
        case("truncated-in-header", raw(lambda b: b[:100])),
        case("truncated-in-data", raw(lambda b: b[:len(b) // 2])),
        case("truncated-last-byte", raw(lambda b: b[:-1])),
        case("header-length-2^63", damaged(lambda h, d: (h, d, 1 << 63))),
        case("header-length-2^64-1", damaged(lambda h, d: (h, d, (1 << 64) - 1))),
        case("header-length-past-end", damaged(lambda h, d: (h, d, 10 * len(data)))),
        case("header-length-short", damaged(lambda h, d: (h, d, 17))),
        case("header-not-json", raw(lambda b: struct.pack("<Q", 8) + b"{{{{{{{{" + b[16:])),
        case("header-not-utf8", raw(lambda b: struct.pack("<Q", 8) + b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8" + b[16:])),
        case("header-is-list", damaged(lambda h, d: ([1, 2], d, None))),
        # Deep nesting inside the header: the metadata object is replaced by a 400-deep list.
        case("header-deep-nesting", damaged(lambda h, d: (h | {"__metadata__": json.loads(nested(400))}, d, None))),
        case("metadata-not-strings", damaged(lambda h, d: h.update({"__metadata__": {"format": 7}}))),
        case("dtype-I32", damaged(set_entry(wte, dtype="I32")), mentions=names(st, short_wte, "I32")),
        case("dtype-F8", damaged(set_entry(wte, dtype="F8_E4M3")), mentions=names(st, short_wte, "F8_E4M3")),
        case("dtype-garbage", damaged(set_entry(first, dtype="float32!")), mentions=names(st, short_first, "float32!")),
        case("dtype-F16-shape-mismatch", damaged(set_entry(wte, dtype="F16")), mentions=names(st, short_wte)),
        case("shape-swapped", damaged(set_entry(wte, shape=[128, 1557])), mentions=names(st, short_wte)),
        case("shape-negative", damaged(set_entry(wte, shape=[-1557, -128])), mentions=names(st, short_wte)),
        case("shape-huge", damaged(set_entry(wte, shape=[1 << 40, 1 << 40])), mentions=names(st, short_wte)),
        case("shape-string", damaged(set_entry(wte, shape="1557x128")), mentions=names(st, short_wte)),
        case("offsets-overlap", damaged(overlap), mentions=names(st, "wpe.weight", short_wte)),
        case("offsets-reversed", damaged(set_entry(wte, data_offsets=[100, 0])), mentions=names(st, short_wte)),
        case("offsets-past-end", damaged(set_entry(wte, data_offsets=[0, 1 << 50])), mentions=names(st, short_wte)),
        case("offsets-negative", damaged(set_entry(wte, data_offsets=[-8, 10])), mentions=names(st, short_wte)),
        case("offsets-float", damaged(set_entry(wte, data_offsets=[0.5, 4.5])), mentions=names(st, short_wte)),
        case("missing-tensor", damaged(drop(prefix + "h.3.mlp.c_fc.weight")), mentions=("h.3.mlp.c_fc.weight",)),
        case("missing-wte", damaged(drop(wte)), mentions=(short_wte,)),
        case("both-X-and-transformer.X", damaged(both_prefixes), mentions=("transformer.wte.weight",)),
        case("duplicate-key", raw(lambda b: dup_key_safetensors(b, wte)), mentions=names(st, short_wte)),
        case("nan-weight", damaged(nan_in(first, float("nan"))), mentions=(short_first, "nan", "non-finite"),
             exits=frozenset({0, 1}), warn_on_success=True),
        case("inf-weight", damaged(nan_in(wte, float("inf"))), mentions=(short_wte, "inf", "non-finite"),
             exits=frozenset({0, 1}), warn_on_success=True),
        Case(cat, "nan-weight-json", run + ["--format", "json"], damaged(nan_in(wte, float("nan"))),
             mentions=(short_wte, "nan", "non-finite"), exits=frozenset({0, 1}), warn_on_success=True),
        case("sparse-64GB-declared", sparse_checkpoint(assets), mentions=names(st, "wte.weight")),
        case("vocab-size-1", lambda w: random_checkpoint(w / "model", random.Random(1), vocab=1),
             mentions=("vocab_size", "vocab"), exits=frozenset({0, 1})),
        case("folder-as-safetensors", lambda w: (copy_model(assets.bundled, w / "model", skip=("model.safetensors",)),
                                                 (w / st).mkdir()), mentions=("not a regular file", "is a folder", "is a directory")),
        case("no-weights", lambda w: copy_model(assets.bundled, w / "model", skip=("model.safetensors",)),
             mentions=("model.safetensors",)),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        kind = rng.choice(["header-bytes", "truncate", "data-bits", "dtype", "shape", "offsets"])
        names_ = sorted(header)
        target = rng.choice([k for k in names_ if k != "__metadata__"])
        if kind == "header-bytes":
            flips = [(rng.randrange(8, 8 + 2000), rng.randrange(256)) for _ in range(rng.randint(1, 4))]
            setup = raw(lambda b: bytes_patched(b, flips))
            return case(f"fuzz{n}-header-bytes", setup, exits=frozenset({0, 1}))
        if kind == "truncate":
            cut = rng.randrange(0, len(data))
            return case(f"fuzz{n}-truncate-{cut}", raw(lambda b: b[:cut]))
        if kind == "data-bits":
            flips = [(rng.randrange(len(data) // 2, len(data)), 1 << rng.randrange(8)) for _ in range(8)]
            return case(f"fuzz{n}-data-bits", raw(lambda b: bytes_xored(b, flips)), exits=frozenset({0, 1}))
        if kind == "dtype":
            dtype = rng.choice(["F64", "F16", "BF16", "I64", "I8", "U8", "BOOL", "U16", "", "f32"])
            return case(f"fuzz{n}-dtype-{dtype or 'empty'}", damaged(set_entry(target, dtype=dtype)),
                        mentions=names(st, target.removeprefix("transformer.")))
        if kind == "shape":
            shape = [rng.choice([0, 1, 3, 128, 1557, 1 << 31, -1]) for _ in range(rng.randint(0, 3))]
            unchanged = shape == header[target]["shape"]
            return case(f"fuzz{n}-shape", damaged(set_entry(target, shape=shape)), mentions=names(st, target.removeprefix("transformer.")),
                        exits=frozenset({0, 1}) if unchanged else frozenset({1}))
        begin = rng.choice([0, 1, 4, 1 << 20, len(data), 1 << 62])
        end = begin + rng.choice([0, 4, 4096, 1 << 33, -4])
        return case(f"fuzz{n}-offsets", damaged(set_entry(target, data_offsets=[begin, end])), mentions=names(st, target.removeprefix("transformer.")))

    return cases, fuzz


def bytes_patched(b: bytes, patches: list[tuple[int, int]]) -> bytes:
    out = bytearray(b)
    for at, value in patches:
        if at < len(out):
            out[at] = value
    return bytes(out)


def bytes_xored(b: bytes, patches: list[tuple[int, int]]) -> bytes:
    out = bytearray(b)
    for at, mask in patches:
        if at < len(out):
            out[at] ^= mask
    return bytes(out)


def dup_key_safetensors(b: bytes, key: str) -> bytes:
    """The same tensor name twice in the header JSON (json.dumps cannot write that)."""
    (length,) = struct.unpack("<Q", b[:8])
    text = b[8:8 + length].decode().rstrip()
    entry = json.dumps({key: json.loads(text)[key]})[1:-1]
    text = "{" + entry + ", " + text[1:]
    text += " " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + b[8 + length:]


def sparse_checkpoint(assets: Assets) -> Callable[[Path], None]:
    """A header declaring a 2^36-element embedding over a sparse file: huge size, no disk used."""
    def setup(work: Path) -> None:
        copy_model(assets.bundled, work / "model", skip=("model.safetensors",))
        count = 1 << 34  # 64 GB declared, a few bytes on disk
        header = {"transformer.wte.weight": {"dtype": "F32", "shape": [count // 128, 128], "data_offsets": [0, 4 * count]}}
        path = work / "model/model.safetensors"
        write_safetensors(path, header, b"")
        os.truncate(path, path.stat().st_size + 4 * count)
    return setup


def config_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "configs"
    run = ["run", "--model", "model", "--prompt", PROMPT]

    def with_config(change: Callable[[dict], None] | str):
        def setup(work: Path) -> None:
            copy_model(assets.bundled, work / "model")
            if isinstance(change, (str, bytes)):
                write(work / "model/config.json", change)
            else:
                edit_json(work / "model/config.json", change)
        return setup

    def field(name, value, mentions=None, **kw):
        return Case(cat, f"{name}={json.dumps(value)[:24]}", run, with_config(lambda c: c.update({name: value})),
                    mentions or ("config.json", name), **kw)

    text = (BUNDLED / "config.json").read_text()
    cases = [
        field("n_layer", "6"), field("n_layer", True), field("n_layer", 6.5), field("n_layer", -1),
        field("n_layer", 0), field("n_layer", 1 << 62), field("n_layer", 1e300), field("n_layer", None),
        field("n_head", 0), field("n_head", 3), field("n_head", -4), field("n_head", True), field("n_head", 1 << 40),
        field("n_embd", 1 << 40), field("n_embd", 0), field("n_embd", "128"),
        field("vocab_size", 1), field("vocab_size", 0), field("vocab_size", 1 << 62), field("vocab_size", 1558),
        field("n_positions", 0), field("n_positions", 1 << 40), field("n_positions", -128),
        field("layer_norm_epsilon", "1e-5"), field("layer_norm_epsilon", -1.0), field("layer_norm_epsilon", 0),
        field("layer_norm_epsilon", None), field("layer_norm_epsilon", True), field("layer_norm_epsilon", [1e-5]),
        field("n_inner", -5), field("n_inner", "x"), field("n_inner", 1 << 40),
        field("activation_function", "relu"), field("activation_function", 7),
        field("bos_token_id", 1 << 40), field("bos_token_id", -1), field("bos_token_id", "x"),
        Case(cat, "eps-1e309", run, with_config(text.replace("1e-05", "1e309")), ("config.json", "layer_norm_epsilon")),
        Case(cat, "eps-NaN", run, with_config(text.replace("1e-05", "NaN")), ("config.json", "layer_norm_epsilon")),
        Case(cat, "duplicate-key", run, with_config(text.replace('"n_layer": 6', '"n_layer": 6, "n_layer": 2')),
             ("config.json", "n_layer")),
        Case(cat, "deep-nesting", run, with_config(text.rstrip()[:-1] + ', "x": ' + nested(100_000) + "}"), ("config.json",)),
        Case(cat, "not-json", run, with_config("n_layer = 6"), ("config.json",)),
        Case(cat, "list", run, with_config("[1, 2, 3]"), ("config.json",)),
        Case(cat, "empty", run, with_config(""), ("config.json",)),
        Case(cat, "not-utf8", run, with_config(b'{"n_layer": "\xff"}'), ("config.json",)),
        Case(cat, "missing-n_layer", run, with_config(lambda c: c.pop("n_layer")), ("config.json", "n_layer"),
             exits=frozenset({0, 1})),
        Case(cat, "crlf", run, with_config(text.replace("\n", "\r\n")), exits=frozenset({0}),
             check=expect_same_stdout(assets.baseline("run", "--model", "bundled", "--prompt", PROMPT))),
        Case(cat, "vocab-1-model-inspect", ["inspect", "--model", "model"],
             lambda w: random_checkpoint(w / "model", random.Random(2), vocab=1), ("vocab_size",), exits=frozenset({0, 1})),
        Case(cat, "vocab-1-model-lens", ["lens", "--model", "model", "--prompt", ""],
             lambda w: random_checkpoint(w / "model", random.Random(2), vocab=1), ("vocab_size", "prompt"),
             exits=frozenset({0, 1})),
        Case(cat, "one-position-model", ["run", "--model", "model", "--prompt", "ab"],
             lambda w: random_checkpoint(w / "model", random.Random(3), positions=1, vocab=30),
             ("n_positions", "position", "token"), exits=frozenset({1})),
    ]
    values = [True, False, None, -1, 0, 1, 3, 2.5, "x", [], {}, 1 << 31, 1 << 63, -(1 << 63), 1e-300, 1e300]
    fields = ["n_layer", "n_head", "n_embd", "vocab_size", "n_positions", "layer_norm_epsilon", "n_inner",
              "bos_token_id", "eos_token_id", "n_ctx"]

    def fuzz(rng: random.Random, n: int) -> Case:
        name, value = rng.choice(fields), rng.choice(values)
        return Case(cat, f"fuzz{n}-{name}={json.dumps(value)[:20]}", run,
                    with_config(lambda c: c.update({name: value})), ("config.json", name), exits=frozenset({0, 1}))

    return cases, fuzz


def tokenizer_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "tokenizer"
    tokenize = ["tokenize", "1 2 3 4 January February 10 11", "--model", "model", "--format", "json"]
    baseline = assets.baseline("tokenize", "1 2 3 4 January February 10 11", "--model", "bundled", "--format", "json")
    vocab = json.loads((BUNDLED / "vocab.json").read_text())
    merges = (BUNDLED / "merges.txt").read_text()

    def with_file(name: str, content: str | bytes | Callable[[], str | bytes]):
        def setup(work: Path) -> None:
            copy_model(assets.bundled, work / "model")
            write(work / "model" / name, content() if callable(content) else content)
        return setup

    def vocab_with(change: Callable[[dict], dict]) -> str:
        return json.dumps(change(dict(vocab)))

    def case(name, file, content, mentions=None, **kw):
        return Case(cat, name, tokenize, with_file(file, content), mentions or (file,), **kw)

    cases = [
        case("vocab-huge-id", "vocab.json", vocab_with(lambda v: v | {"1": 1 << 62})),
        case("vocab-id-2^31", "vocab.json", vocab_with(lambda v: v | {"1": 1 << 31})),
        case("vocab-id-1e30", "vocab.json", json.dumps(vocab)[:-1] + ', "zz": 1000000000000000000000000000000}'),
        case("vocab-negative-id", "vocab.json", vocab_with(lambda v: v | {"1": -3})),
        case("vocab-id-past-model", "vocab.json", vocab_with(lambda v: v | {"zz": 1557}), exits=frozenset({1})),
        case("vocab-duplicate-ids", "vocab.json", vocab_with(lambda v: v | {"zz": 5}), exits=frozenset({0, 1})),
        case("vocab-empty", "vocab.json", "{}"),
        case("vocab-list", "vocab.json", "[1, 2]"),
        case("vocab-string-ids", "vocab.json", vocab_with(lambda v: {k: str(i) for k, i in v.items()})),
        case("vocab-garbage", "vocab.json", bytes(random.Random(4).randrange(256) for _ in range(4000))),
        case("vocab-deep-nesting", "vocab.json", '{"a": ' + nested(100_000) + "}"),
        case("vocab-duplicate-key", "vocab.json", json.dumps(vocab)[:-1] + ', "1": 99}', exits=frozenset({0, 1})),
        case("vocab-empty-file", "vocab.json", ""),
        case("merges-crlf", "merges.txt", merges.replace("\n", "\r\n"), exits=frozenset({0}),
             check=expect_same_stdout(baseline)),
        case("merges-cr-only", "merges.txt", merges.replace("\n", "\r"), exits=frozenset({0}),
             check=expect_same_stdout(baseline)),
        case("merges-no-version", "merges.txt", merges.split("\n", 1)[1], exits=frozenset({0}),
             check=expect_same_stdout(baseline)),
        case("merges-three-fields", "merges.txt", merges + "a b c\n", mentions=("merges.txt",)),
        case("merges-unknown-symbols", "merges.txt", merges + "\u2603 \u2604\n", exits=frozenset({0, 1})),
        case("merges-garbage", "merges.txt", bytes(random.Random(5).randrange(256) for _ in range(4000))),
        case("merges-one-huge-line", "merges.txt", "#version: 0.2\n" + "a" * (4 * MB) + " b\n", exits=frozenset({0, 1})),
        Case(cat, "no-vocab", ["run", "--model", "model", "--prompt", PROMPT],
             lambda w: copy_model(assets.bundled, w / "model", skip=("vocab.json",)), ("vocab.json", "tokenizer")),
        Case(cat, "no-merges", ["run", "--model", "model", "--prompt", PROMPT],
             lambda w: copy_model(assets.bundled, w / "model", skip=("merges.txt",)), ("merges.txt", "tokenizer")),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        if rng.random() < 0.5:
            text = json.dumps(vocab)
            flips = [(rng.randrange(len(text)), rng.choice(b'"{}[],:0123456789-\\ x')) for _ in range(rng.randint(1, 3))]
            return case(f"fuzz{n}-vocab-bytes", "vocab.json", bytes_patched(text.encode(), flips), exits=frozenset({0, 1}))
        lines = merges.split("\n")
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(lines))
            lines[at] = rng.choice(["", " ", "a", "a b c", "\t\t", "\u00ff \u00fe", lines[at] + "\r", "#x"])
        return case(f"fuzz{n}-merges-lines", "merges.txt", "\n".join(lines), exits=frozenset({0, 1}))

    return cases, fuzz


def plan_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "plans"

    def plan_setup(text):
        def setup(work: Path) -> None:
            write(work / "plan.yaml", text)
            write(work / "bad.txt", "a\tb\tc\n")  # a malformed dataset file for mean ablation
            copy_model(assets.heads8, work / "heads8")
        return setup

    def plan(name, text, args=None, mentions=("plan.yaml",), **kw):
        return Case(cat, name, args or ["inspect", "--plan", "plan.yaml"], plan_setup(text), mentions, **kw)

    def build(name, text, mentions=("plan.yaml",), **kw):
        return plan(name, text, ["build", "plan.yaml", "-o", "out.h5"], mentions, **kw)

    stitched = 'blocks: ["0-2", "other:3", "4-5"]\nmodels: {other: heads8}\n'
    cases = [
        plan("deep-list-5000", "blocks: " + nested(5000)),
        plan("deep-map-5000", "blocks: " + "{a: " * 5000 + "1" + "}" * 5000),
        plan("deep-block-seq-5000", "blocks:\n" + "".join("  " * i + "- \n" for i in range(1, 2000))),
        plan("alias-bomb", alias_bomb() + 'blocks: *a9\n'),
        plan("alias-bomb-unused", alias_bomb() + 'blocks: ["0-5"]\n'),
        plan("alias-undefined", 'blocks: *nothing\n'),
        plan("unknown-key", 'blokcs: ["0-5"]\nblocks: ["0-5"]\n', mentions=("blokcs",)),
        plan("duplicate-key", 'blocks: ["0-5"]\nblocks: ["0-1"]\n', mentions=("blocks", "duplicate")),
        plan("duplicate-edit-key", 'blocks: ["0-5"]\nedits:\n  - {ablate_heads: ["1.1"], ablate_heads: ["1.2"]}\n',
             mentions=("ablate_heads", "duplicate")),
        plan("blocks-int", "blocks: 5\n", mentions=("blocks",)),
        plan("blocks-string", 'blocks: "0-5"\n', mentions=("blocks",)),
        # A model with no blocks is valid (an edited model may have none): it loads and runs.
        plan("blocks-empty", "blocks: []\n", exits=frozenset({0})),
        plan("blocks-null", "blocks:\n", mentions=("blocks",)),
        plan("blocks-map-entry", 'blocks: [{a: 1}]\n', mentions=("blocks",)),
        plan("blocks-float", 'blocks: [1.5]\n', mentions=("blocks", "1.5")),
        plan("name-list", 'name: [1]\nblocks: ["0-5"]\n', mentions=("name",)),
        plan("name-bool", 'name: true\nblocks: ["0-5"]\n', mentions=("name",)),
        plan("edits-map", 'blocks: ["0-5"]\nedits: {}\n', mentions=("edits",)),
        plan("edit-heads-string", 'blocks: ["0-5"]\nedits:\n  - ablate_heads: "1.1"\n', mentions=("ablate_heads",)),
        plan("edit-mode-int", 'blocks: ["0-5"]\nedits:\n  - {ablate_heads: ["1.1"], mode: 7}\n', mentions=("mode",)),
        plan("edit-unknown-key", 'blocks: ["0-5"]\nedits:\n  - {ablate_heads: ["1.1"], layer: 2}\n', mentions=("layer",)),
        plan("checks-wrong-type", 'blocks: ["0-5"]\nchecks: [1, 2]\n', mentions=("checks",)),
        plan("checks-answer-int", 'blocks: ["0-5"]\nchecks: [{prompt: "1 2", answer: 3}]\n', mentions=("answer",)),
        plan("block-out-of-range", 'blocks: ["0-7"]\n', mentions=("7", "6 layers", "blocks")),
        plan("block-99", 'blocks: ["99"]\n', mentions=("99",)),
        plan("block-huge", 'blocks: ["99999999999999999999999"]\n', mentions=("99999999999999999999999", "blocks")),
        plan("block-reversed", 'blocks: ["5-2"]\n', mentions=("5-2",)),
        plan("block-negative", 'blocks: ["-1"]\n', mentions=("-1", "blocks")),
        plan("head-out-of-range", 'blocks: ["0-5"]\nedits:\n  - ablate_heads: ["1.4"]\n', mentions=("1.4",)),
        plan("head-huge", 'blocks: ["0-5"]\nedits:\n  - ablate_heads: ["1.2147483648"]\n', mentions=("1.2147483648",)),
        plan("head-layer-out-of-range", 'blocks: ["0-5"]\nedits:\n  - ablate_heads: ["9.0"]\n', mentions=("9.0",)),
        plan("neuron-out-of-range", 'blocks: ["0-5"]\nedits:\n  - ablate_neurons: ["3.512"]\n', mentions=("3.512",)),
        plan("neuron-negative", 'blocks: ["0-5"]\nedits:\n  - ablate_neurons: ["3.-1"]\n', mentions=("3.-1",)),
        plan("head-of-dropped-block", 'blocks: ["0-2"]\nedits:\n  - ablate_heads: ["4.1"]\n', mentions=("4.1", "edits[0]")),
        plan("keep-heads-empty", 'blocks: ["0-5"]\nedits:\n  - keep_heads: []\n', mentions=("keep_heads",),
             exits=frozenset({0, 1})),
        plan("mean-unknown-dataset", 'blocks: ["0-5"]\nedits:\n  - {ablate_heads: ["1.1"], mode: mean, dataset: nosuch}\n',
             mentions=("nosuch",)),
        plan("mean-dataset-file-bad", 'blocks: ["0-5"]\nedits:\n  - {ablate_heads: ["1.1"], mode: mean, dataset: bad.txt}\n',
             mentions=("bad.txt",)),
        plan("base-missing", 'base: ./no/such/model\nblocks: ["0-5"]\n', mentions=("no/such/model",)),
        plan("base-wrong-type", 'base: [1]\nblocks: ["0-5"]\n', mentions=("base",)),
        plan("models-missing-path", 'blocks: ["0-2", "x:3"]\nmodels: {x: ./nowhere}\n', mentions=("nowhere",)),
        plan("empty-file", "", mentions=("plan.yaml",)),
        plan("list-root", "- 1\n- 2\n"),
        plan("not-utf8", b'blocks: ["0-5"]\nname: "\xff\xfe"\n'),
        plan("tabs", 'blocks:\n\t- "0-5"\n'),
        plan("crlf", 'name: crlf\r\nblocks: ["0-5"]\r\n', exits=frozenset({0})),
        plan("stitch-other-head-count", stitched, mentions=("head", "heads8", "other"), exits=frozenset({0, 1})),
        Case(cat, "stitch-other-head-count-run", ["run", "--plan", "plan.yaml", "--prompt", PROMPT],
             plan_setup(stitched), ("head", "heads8", "other"), exits=frozenset({0, 1})),
        build("stitch-other-head-count-build", stitched, mentions=("head", "heads8", "other"),
              exits=frozenset({0, 1}), may_change=("out.h5",), check=expect_readable_output("out.h5")),
        Case(cat, "stitch-other-head-count-export", ["export-hf", "--plan", "plan.yaml", "-o", "hf"],
             plan_setup(stitched), ("head", "n_head", "heads8")),
        plan("keep-heads-mixed", stitched + 'edits:\n  - keep_heads: ["0.1"]\n', ["run", "--plan", "plan.yaml",
             "--prompt", PROMPT], mentions=("head", "keep_heads"), exits=frozenset({0, 1})),
        build("name-dotdot", 'name: ../../x\nblocks: ["0-5"]\n', mentions=("name", "../../x")),
        build("name-escape-case", 'name: ../../../escaped\nblocks: ["0-5"]\n', mentions=("name", "escaped")),
        build("name-slash", 'name: a/b\nblocks: ["0-5"]\n', mentions=("name", "a/b")),
        build("name-empty", 'name: ""\nblocks: ["0-5"]\n', mentions=("name",)),
        build("name-newline", 'name: "a\\nb"\nblocks: ["0-5"]\n', mentions=("name",)),
    ]
    for case in cases:
        if case.name.startswith("name-"):
            case.args = ["build", "plan.yaml"]  # the plan's name makes the default output path

    blocks = ["0-5", "0", "5", "2.attn", "3.mlp", "4.mlp.noln", "0-2", "other:1", "9", "1-", "-", "a", "5.attn.mlp", ""]
    units = ["1.1", "0.0", "5.3", "1.4", "6.0", "-1.1", "1", "1.1.1", "x.y", "", "1.99999999999999999999"]

    def fuzz(rng: random.Random, n: int) -> Case:
        text = "blocks: [" + ", ".join(json.dumps(rng.choice(blocks)) for _ in range(rng.randint(0, 4))) + "]\n"
        if rng.random() < 0.5:
            text += "models: {other: heads8}\n"
        if rng.random() < 0.6:
            kind = rng.choice(["ablate_heads", "keep_heads", "ablate_neurons"])
            chosen = [rng.choice(units) for _ in range(rng.randint(0, 3))]
            text += f"edits:\n  - {{{kind}: {json.dumps(chosen)}, mode: {rng.choice(['zero', 'mean', 'x'])}, dataset: digits}}\n"
        return plan(f"fuzz{n}", text, mentions=("plan.yaml",), exits=frozenset({0, 1}))

    return cases, fuzz


def archive_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "archives"
    run = ["run", "--model", "a.h5", "--prompt", PROMPT]
    baseline = assets.baseline("run", "--model", "archive.h5", "--prompt", PROMPT)

    def damaged(change: Callable[["h5py.File", Path], None]):
        def setup(work: Path) -> None:
            shutil.copyfile(assets.archive, work / "a.h5")
            with h5py.File(work / "a.h5", "r+") as f:
                change(f, work)
        return setup

    def case(name, change, mentions=("a.h5",), **kw):
        return Case(cat, name, run, damaged(change), mentions, needs_h5py=True, **kw)

    def replace(path, values, dtype="int32"):
        def change(f, work):
            del f[path]
            f.create_dataset(path, data=np.array(values, dtype=dtype))
        return change

    def delete(path):
        return lambda f, work: f.__delitem__(path)

    def set_attr(path, name, value):
        return lambda f, work: f[path].attrs.__setitem__(name, value)

    def del_attr(path, name):
        return lambda f, work: f[path].attrs.__delitem__(name)

    def flip_bits(path):
        def change(f, work):
            data = f[path][...]
            raw = data.view(np.uint32)
            raw.flat[::37] ^= np.uint32(1 << 3)
            f[path][...] = raw.view(np.float32)
        return change

    def huge_rows(path, columns):
        def change(f, work):
            del f[path]
            f.create_dataset(path, shape=(1 << 36, columns), dtype="float32", chunks=(1, columns))
        return change

    def external(path):
        def change(f, work):
            with h5py.File(work / "other.h5", "w") as other:
                other.create_dataset("x", data=f[path][...])
            del f[path]
            f[path] = h5py.ExternalLink("other.h5", "/x")
        return change

    def empty_strings(path):
        def change(f, work):
            del f[path]
            f.create_dataset(path, shape=(0,), dtype=h5py.string_dtype())
        return change

    def config_edit(**fields):
        def change(f, work):
            config = json.loads(f.attrs["config"])
            config.update(fields)
            f.attrs["config"] = json.dumps(config)
        return change

    def nan_weight(f, work):
        data = f["blocks/0/mlp/W_in"][...]
        data[0, 0] = np.nan
        f["blocks/0/mlp/W_in"][...] = data

    same = expect_same_stdout(baseline)
    cases = [
        case("ablated-heads-99", replace("blocks/1/attn/ablated_heads", [99]), mentions=("ablated_heads", "99")),
        case("ablated-heads-negative", replace("blocks/1/attn/ablated_heads", [-1]), mentions=("ablated_heads", "-1")),
        case("ablated-heads-int32-max", replace("blocks/1/attn/ablated_heads", [2**31 - 1]), mentions=("ablated_heads",)),
        case("ablated-heads-too-many", replace("blocks/1/attn/ablated_heads", [0, 1, 2]), mentions=("ablated_heads", "ablation_values")),
        case("ablated-heads-float", replace("blocks/1/attn/ablated_heads", [1.5], "float32"), mentions=("ablated_heads",)),
        case("ablated-neurons-99999", replace("blocks/3/mlp/ablated_neurons", [99999]), mentions=("ablated_neurons", "99999")),
        case("ablated-neurons-negative", replace("blocks/3/mlp/ablated_neurons", [-5]), mentions=("ablated_neurons", "-5")),
        case("ablated-heads-deleted", delete("blocks/1/attn/ablated_heads"), mentions=("ablated_heads", "ablation_values", "checksum")),
        case("ablation-values-deleted", delete("blocks/1/attn/ablation_values"), mentions=("ablation_values",)),
        case("weight-deleted", delete("blocks/0/attn/W_Q"), mentions=("W_Q",)),
        case("ln-final-deleted", delete("ln_final/w"), mentions=("ln_final",)),
        case("block-deleted", delete("blocks/2"), mentions=("blocks",)),
        case("parts-foo", set_attr("blocks/0", "parts", "foo"), mentions=("parts", "foo")),
        case("parts-empty", set_attr("blocks/0", "parts", ""), mentions=("parts",)),
        case("parts-deleted", del_attr("blocks/0", "parts"), mentions=("parts",)),
        case("parts-int", set_attr("blocks/0", "parts", 7), mentions=("parts",)),
        case("source-garbage", set_attr("blocks/0", "source", "???"), mentions=("source",)),
        case("format-version-999", set_attr("/", "format_version", 999), mentions=("format_version", "999", "version")),
        case("format-missing", del_attr("/", "format"), mentions=("format", "archive")),
        case("config-not-json", set_attr("/", "config", "{"), mentions=("config",)),
        case("config-n-head-8", config_edit(n_head=8), mentions=("n_head", "head", "W_Q")),
        case("config-vocab-1", config_edit(vocab_size=1), mentions=("vocab_size", "W_E")),
        case("bit-flips-W_in", flip_bits("blocks/2/mlp/W_in"), mentions=("checksum", "W_in", "blocks/2")),
        case("bit-flips-W_E", flip_bits("embed/W_E"), mentions=("checksum", "W_E")),
        case("nan-weight", nan_weight, mentions=("W_in", "nan", "non-finite", "checksum"), exits=frozenset({0, 1}),
             warn_on_success=True),
        case("W_E-2^36-rows", huge_rows("embed/W_E", 128), mentions=("W_E",)),
        case("vocab-2^36-rows", huge_rows("tokenizer/vocab", 1), mentions=("tokenizer", "vocab")),
        case("external-link-weight", external("blocks/0/mlp/W_out"), mentions=("external", "W_out")),
        case("soft-link-loop", lambda f, w: (f.__delitem__("ln_final/b"), f.__setitem__("ln_final/b", h5py.SoftLink("/ln_final/b"))),
             mentions=("ln_final",)),
        case("tokenizer-vocab-empty", empty_strings("tokenizer/vocab"), mentions=("tokenizer", "vocab")),
        case("tokenizer-merges-empty", empty_strings("tokenizer/merges"), mentions=("tokenizer", "merges")),
        case("tokenizer-vocab-garbage", lambda f, w: f["tokenizer/vocab"].__setitem__(0, "{not json"),
             mentions=("tokenizer", "vocab")),
        case("tokenizer-vocab-huge-id", lambda f, w: f["tokenizer/vocab"].__setitem__(0, '{"a": 4611686018427387904}'),
             mentions=("tokenizer", "vocab")),
        Case(cat, "truncated-half", run, lambda w: write(w / "a.h5", assets.archive.read_bytes()[:assets.archive.stat().st_size // 2]),
             ("a.h5",)),
        Case(cat, "garbage", run, lambda w: write(w / "a.h5", bytes(random.Random(6).randrange(256) for _ in range(10000))), ("a.h5",)),
        Case(cat, "empty-file", run, lambda w: write(w / "a.h5", b""), ("a.h5",)),
        Case(cat, "undamaged", run, lambda w: shutil.copyfile(assets.archive, w / "a.h5"), exits=frozenset({0}), check=same),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        where = [(rng.random(), 1 << rng.randrange(8)) for _ in range(rng.randint(1, 16))]

        def setup(work: Path) -> None:
            raw = assets.archive.read_bytes()
            write(work / "a.h5", bytes_xored(raw, [(int(at * len(raw)), mask) for at, mask in where]))
        # Bit flips in weights must be caught (checksum); flips in unused bytes may be harmless, but
        # then the results must be those of the undamaged archive.
        return Case(cat, f"fuzz{n}-bit-flips", run, setup, ("a.h5", "checksum"), exits=frozenset({0, 1}),
                    check=same)

    return cases, fuzz


def prompt_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    cat = "prompts"

    def with_file(name: str, content):
        return lambda work: write(work / name, content() if callable(content) else content)

    def listing(name, file, content, count=None, **kw):
        """`datasets FILE --format json`: how the file is read, without a model."""
        kw.setdefault("mentions", (file,))
        if count is not None:
            kw |= {"exits": frozenset({0}), "check": expect_json_items(count)}
        return Case(cat, name, ["datasets", file, "--format", "json"], with_file(file, content), **kw)

    def run(name, file, content, args=None, **kw):
        kw.setdefault("mentions", (file,))
        return Case(cat, name, args or ["run", "--dataset", file], with_file(file, content), **kw)

    three = ["1 2 3 4\t 5", "5 6 7 8\t 9", "2 3 4 5\t 6"]
    lines100k = "\n".join(f"{i} {i + 1} {i + 2}" for i in range(100_000)) + "\n"
    deep = "items: " + nested(5000)
    cases = [
        listing("txt-lf", "p.txt", "\n".join(three) + "\n", count=3),
        listing("txt-crlf", "p.txt", "\r\n".join(three) + "\r\n", count=3),
        listing("txt-cr", "p.txt", "\r".join(three) + "\r", count=3),
        listing("txt-mixed-endings", "p.txt", three[0] + "\r\n" + three[1] + "\r" + three[2] + "\n", count=3),
        listing("jsonl-crlf", "p.jsonl", "\r\n".join(json.dumps({"prompt": p.split("\t")[0]}) for p in three), count=3),
        listing("yaml-crlf", "p.yaml", "name: p\r\nitems:\r\n  - {prompt: a}\r\n  - {prompt: b}\r\n  - {prompt: c}\r\n", count=3),
        listing("txt-binary", "p.txt", bytes(random.Random(7).randrange(256) for _ in range(5000))),
        listing("txt-nul", "p.txt", "1 2\x00 3\n"),
        listing("txt-three-tabs", "p.txt", "a\tb\tc\n", mentions=("p.txt",)),
        listing("txt-only-comments", "p.txt", "# nothing\n"),
        listing("txt-empty", "p.txt", ""),
        listing("yaml-deep-5000", "p.yaml", deep),
        listing("yaml-deep-map-5000", "p.yaml", "name: " + "{a: " * 5000 + "1" + "}" * 5000),
        listing("yaml-alias-bomb", "p.yaml", alias_bomb() + "name: p\nitems: *a9\n"),
        listing("yaml-alias-bomb-unused", "p.yaml", alias_bomb() + "name: p\nitems: [{prompt: a}]\n"),
        listing("yaml-unknown-key", "p.yaml", "name: p\nitemz: []\nitems: [{prompt: a}]\n", mentions=("itemz",)),
        listing("yaml-item-unknown-key", "p.yaml", "name: p\nitems: [{prompt: a, anwser: b}]\n", mentions=("anwser",)),
        listing("yaml-duplicate-key", "p.yaml", "name: p\nname: q\nitems: [{prompt: a}]\n", mentions=("name", "duplicate")),
        listing("yaml-prompt-int", "p.yaml", "name: p\nitems: [{prompt: 5}]\n", mentions=("prompt",), exits=frozenset({0, 1})),
        listing("yaml-prompt-list", "p.yaml", "name: p\nitems: [{prompt: [1]}]\n", mentions=("prompt",)),
        listing("json-prompt-null", "p.json", '{"name": "p", "items": [{"prompt": null}]}', mentions=("prompt",)),
        listing("jsonl-wrong-type", "p.jsonl", '{"prompt": 5}\n', mentions=("p.jsonl",)),
        listing("jsonl-deep", "p.jsonl", '{"prompt": "a", "x": ' + nested(100_000) + "}\n"),
        listing("lines-100k", "p.txt", lines100k, count=100_000, timeout=30),
        run("huge-line", "p.txt", "1 " * (2 * MB) + "\n", mentions=("p.txt", "position", "token", "long")),
        run("longer-than-context", "p.txt", " ".join(str(i) for i in range(200)) + "\n",
            mentions=("p.txt", "position", "token", "long", "128")),
        # Minutes of work even when streamed: what counts is that memory stays bounded while it runs.
        run("lines-100k-run-memory", "p.txt", lines100k, exits=frozenset({0}), timeout=20, memory=1 * GB,
            still_running_ok=True),
        run("crlf-run", "p.txt", "\r\n".join(three) + "\r\n", exits=frozenset({0}),
            check=lambda o: None if o.stdout.count("\n") >= 4 and o.stdout.count(" 9") >= 1 else "CRLF prompts not read as 3"),
        Case(cat, "families-int64-max", ["paths", "--families", "f.yaml", "--direction", "next", "--family", "big"],
             with_file("f.yaml", "- {name: big, items: [a, b, c], values: [9223372036854775807, 1, 2]}\n"),
             ("f.yaml", "values", "9223372036854775807"), exits=frozenset({0, 1})),
        Case(cat, "families-int64-max-next", ["paths", "--families", "f.yaml", "--direction", "next", "--family", "big"],
             with_file("f.yaml", "- {name: big, items: [a, b], values: [9223372036854775806, 9223372036854775807]}\n"),
             ("f.yaml", "values", "9223372036854775807")),
        Case(cat, "families-deep", ["paths", "--families", "f.yaml", "--family", "x", "--direction", "next"],
             with_file("f.yaml", nested(5000)), ("f.yaml",)),
        Case(cat, "families-values-short", ["paths", "--families", "f.yaml", "--family", "x", "--direction", "next"],
             with_file("f.yaml", "- {name: x, items: [a, b, c], values: [1]}\n"), ("f.yaml", "values")),
        Case(cat, "families-duplicate-key", ["paths", "--families", "f.yaml", "--family", "x", "--direction", "next"],
             with_file("f.yaml", "- {name: x, name: y, items: [a, b, c]}\n"), ("f.yaml", "name", "duplicate")),
        Case(cat, "lens-prompts-crlf", ["lens", "--prompts", "p.txt", "--format", "json"],
             with_file("p.txt", "\r\n".join(three) + "\r\n"), exits=frozenset({0}),
             check=lambda o: None if o.stdout.count('"prompt"') in (3, 0) and "\\r" not in o.stdout else "CRLF lens prompts carry \\r"),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        pieces = ["1 2 3", "\t", "\r", "\n", "\r\n", "#", "\x00", "\u00e9", "\t 5", "", " ", "\ufeff", "\x1b[2J"]
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        ext = rng.choice(["txt", "jsonl", "yaml", "json"])
        return listing(f"fuzz{n}-{ext}", f"p.{ext}", text, exits=frozenset({0, 1}))

    return cases, fuzz


def patch_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    """`scalpel patch` on hostile datasets and flags: exit 1 naming the item, field or value."""
    cat = "patch"

    def patch(name, args, mentions, content=None, exits=frozenset({1}), **kw):
        setup = (lambda work: write(work / "d.yaml", content)) if content is not None else None
        return Case(cat, name, ["patch", *args], setup, mentions, exits=exits, **kw)

    item = '{prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3 3", corrupted_answer: " 4"}'
    d = ["--dataset", "d.yaml"]
    cases = [
        patch("no-corrupted", d + ["--target", "z"], ("corrupted_prompt",), 'name: d\nitems: [{prompt: "1 2 3 4", answer: " 5"}]\n'),
        patch("no-foil", d + ["--target", "z"], ("corrupted_answer",),
              'name: d\nitems: [{prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3 3"}]\n'),
        patch("lengths-differ", d + ["--target", "z"], ("item 1", "tokens"),
              'name: d\nitems: [{prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3", corrupted_answer: " 4"}]\n'),
        patch("items-differ-by-position", d + ["--target", "resid_pre"], ("item 2", "length"),
              f'name: d\nitems: [{item}, {{prompt: "1 2 3 4 5", answer: " 6", corrupted_prompt: "1 2 3 4 4", corrupted_answer: " 5"}}]\n'),
        patch("multi-token-answer", d + ["--target", "z"], ("answer", "tokens"),
              'name: d\nitems: [{prompt: "1 2 3 4", answer: " 5 6 7", corrupted_prompt: "1 2 3 3", corrupted_answer: " 4"}]\n'),
        patch("empty-items", d + ["--target", "z"], ("d.yaml", "items", "no items"), "name: d\nitems: []\n"),
        patch("same-clean-corrupted", d + ["--target", "z"], ("mean nothing",),
              'name: d\nitems: [{prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3 4", corrupted_answer: " 5"}]\n',
              exits=frozenset({0}), warn_on_success=True),
        patch("unknown-target", ["--dataset", "digits", "--target", "blocks.9.attn.hook_z"], ("--target", "resid_pre")),
        patch("empty-target", ["--dataset", "digits", "--target", ""], ("--target",)),
        patch("layer-out-of-range", ["--dataset", "digits", "--target", "mlp_post", "--layers", "6"], ("Layer 6", "6 blocks")),
        patch("layer-negative", ["--dataset", "digits", "--target", "z", "--layers", "-1"], ("--layers",)),
        patch("layer-range-huge", ["--dataset", "digits", "--target", "z", "--layers", "0-99999999999"], ("--layers",)),
        patch("layer-int-overflow", ["--dataset", "digits", "--target", "z", "--layers", "99999999999999999999999"], ("--layers",)),
        patch("layer-range-backwards", ["--dataset", "digits", "--target", "z", "--layers", "3-1"], ("--layers", "3-1")),
        patch("layers-empty-entry", ["--dataset", "digits", "--target", "z", "--layers", "1,,2"], ("--layers",)),
        patch("top-0", ["--dataset", "digits", "--target", "z", "--top", "0"], ("--top",)),
        patch("top-huge", ["--dataset", "digits", "--target", "z", "--top", str(1 << 62)], ("--top",)),
        patch("grids-differ", ["--dataset", "digits", "--target", "z,resid_pre"], ("different grids",)),
        patch("metric-unknown", ["--dataset", "digits", "--target", "z", "--metric", "loss"], ("--metric", "loss")),
        patch("prompt-only", ["--prompt", "1 2 3 4", "--target", "z"], ("corrupted_prompt",)),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        targets = ["z", "q", "k", "v", "pattern", "resid_pre", "mlp_post", "every-head", "every-block", "v,pattern",
                   "z,", ",", "zz", "mlp_post,z", "resid_pre,resid_mid"]
        layers = ["0", "5", "0-5", "6", "-1", "1-", "a", "", "0,0,0", "2-2", "99999", " 1"]
        args = ["--dataset", rng.choice(["digits", "months", "d.yaml"]), "--target", rng.choice(targets)]
        if "mlp_post" in args[3]:  # every neuron of every layer takes minutes in a debug build: one layer
            args += ["--layers", rng.choice(["5", "6", "a", "-1", "5,5"])]
        elif rng.random() < 0.5:
            args += ["--layers", rng.choice(layers)]
        if rng.random() < 0.3:
            args.append("--by-pos")
        if rng.random() < 0.3:
            args += ["--direction", rng.choice(["noise", "denoise", "both"])]
        pieces = ['"1 2 3 4"', '"1 2 3 3"', '" 5"', '" 4"', '""', "null", "5", "[]", '"\\x00"', '"1 2"']
        fields = ["prompt", "answer", "corrupted_prompt", "corrupted_answer"]
        items = ", ".join("{" + ", ".join(f"{f}: {rng.choice(pieces)}" for f in fields if rng.random() < 0.9) + "}"
                          for _ in range(rng.randint(0, 3)))
        return patch(f"fuzz{n}", args, ("error", "--", "item", "d.yaml", "layer", "target"), f"name: d\nitems: [{items}]\n",
                     exits=frozenset({0, 1}), timeout=60)

    return cases, fuzz


def attribute_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    """`scalpel attribute` on hostile datasets and flags: exit 1 naming the item, field or value."""
    cat = "attribute"

    def attribute(name, args, mentions, content=None, exits=frozenset({1}), **kw):
        setup = (lambda work: write(work / "d.yaml", content)) if content is not None else None
        return Case(cat, name, ["attribute", *args], setup, mentions, exits=exits, **kw)

    d = ["--dataset", "d.yaml"]
    cases = [
        attribute("no-answer", d, ("no answer", "--token"), 'name: d\nitems: [{prompt: "1 2 3 4"}]\n'),
        attribute("no-foil", d, ("corrupted_answer", "--token"), 'name: d\nitems: [{prompt: "1 2 3 4", answer: " 5"}]\n'),
        attribute("no-foil-with-token", d + ["--token", " 5"], (), 'name: d\nitems: [{prompt: "1 2 3 4"}]\n',
                  exits=frozenset({0})),
        attribute("multi-token-token", ["--dataset", "digits", "--token", " 5 6 7"], ("answer", "tokens")),
        attribute("empty-items", d, ("d.yaml", "items", "no items"), "name: d\nitems: []\n"),
        attribute("unknown-by", ["--dataset", "digits", "--by", "heads"], ("--by", "heads")),
        attribute("neuron-without-layers", ["--dataset", "digits", "--by", "neuron"], ("--layers",)),
        attribute("neuron-layer-out-of-range", ["--dataset", "digits", "--by", "neuron", "--layers", "6"], ("Layer 6", "6 blocks")),
        attribute("layers-without-neuron", ["--dataset", "digits", "--by", "head", "--layers", "1"], ("--by neuron",)),
        attribute("layer-range-huge", ["--dataset", "digits", "--by", "neuron", "--layers", "0-99999999999"], ("--layers",)),
        attribute("layer-cached", ["--dataset", "digits", "--by", "layer", "--ln", "cached"], ("--ln cached",)),
        attribute("mid-without-layer", ["--dataset", "digits", "--mid"], ("--mid",)),
        attribute("top-0", ["--dataset", "digits", "--by", "head", "--top", "0"], ("--top",)),
        attribute("by-repeated", ["--dataset", "digits", "--by", "component,head,component"], ("component", "twice")),
        attribute("by-empty-name", ["--dataset", "digits", "--by", "component,,head"], ("--by", "not a grouping")),
        attribute("by-trailing-comma", ["--dataset", "digits", "--by", "head,"], ("--by", "not a grouping")),
        attribute("by-several-plot", ["--dataset", "digits", "--by", "component,head", "--plot", "p.svg"], ("--plot", "one grouping")),
        attribute("by-several-layer-cached", ["--dataset", "digits", "--by", "component,layer", "--ln", "cached"], ("--ln cached",)),
        attribute("by-several-neuron-without-layers", ["--dataset", "digits", "--by", "head,neuron"], ("--layers",)),
        attribute("by-several-mid-without-layer", ["--dataset", "digits", "--by", "component,head", "--mid"], ("--mid",)),
        attribute("by-several-ok", ["--dataset", "digits", "--by", "layer,head,component", "--format", "csv"], (), exits=frozenset({0})),
        attribute("shard-without-output", ["--dataset", "digits", "--by", "neuron", "--layers", "1", "--shard", "1/2"], ("-o",)),
        attribute("shard-k-above-n", ["--dataset", "digits", "--shard", "4/3", "-o", "a.h5"], ("4/3", "K/N")),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        args = ["--dataset", rng.choice(["digits", "months", "d.yaml"]),
                "--by", rng.choice(["component", "head", "neuron", "layer", "x", "component,head,neuron", "head,layer", "neuron,neuron", ",", ""])]
        if "neuron" in args[3] or rng.random() < 0.2:
            args += ["--layers", rng.choice(["5", "6", "a", "-1", "5,5", "0-5", ""])]
        if rng.random() < 0.3:
            args += ["--ln", rng.choice(["cached", "recomputed", "both"])]
        if rng.random() < 0.3:
            args += ["--token", rng.choice([" 5", "", " 5 6", "x"])]
        if rng.random() < 0.2:
            # Refused shards only (a valid one would write a part): out of range, not numbers, or no -o.
            bad = rng.choice(["0/2", "3/2", "1/0", "a/b", "1/2"])
            args += ["--shard", bad] + (["-o", rng.choice(["a.h5", "a/b.h5", ""])] if bad != "1/2" else [])
        pieces = ['"1 2 3 4"', '" 5"', '" 4"', '""', "null", "5", "[]", '"\\x00"', '"1 2"']
        fields = ["prompt", "answer", "corrupted_answer"]
        items = ", ".join("{" + ", ".join(f"{f}: {rng.choice(pieces)}" for f in fields if rng.random() < 0.9) + "}"
                          for _ in range(rng.randint(0, 3)))
        return attribute(f"fuzz{n}", args, ("error", "--", "item", "d.yaml", "layer", "token"), f"name: d\nitems: [{items}]\n",
                         exits=frozenset({0, 1}), timeout=60)

    return cases, fuzz


def heads_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    """`scalpel heads` on hostile heads, detectors, prompts and flags: exit 1 naming what is wrong."""
    cat = "heads"

    def heads(name, args, mentions, content=None, exits=frozenset({1}), **kw):
        setup = (lambda work: write(work / "d.yaml", content)) if content is not None else None
        return Case(cat, name, ["heads", *args], setup, mentions, exits=exits, **kw)

    d = ["--dataset", "d.yaml"]
    cases = [
        heads("writing-layer-out-of-range", ["--writing", "6.0", "--dataset", "digits"], ("6 layers",)),
        heads("writing-head-out-of-range", ["--writing", "0.4", "--dataset", "digits"], ("4 heads",)),
        heads("writing-not-a-head", ["--writing", "9", "--dataset", "digits"], ("layer.head",)),
        heads("writing-negative-head", ["--writing", "1.-1", "--dataset", "digits"], ("layer.head",)),
        heads("writing-huge-layer", ["--writing", "99999999999999999999.0", "--dataset", "digits"], ("layer.head",)),
        heads("table-head-out-of-range", ["--copy-scores", "--dataset", "digits", "--heads", "2.1,5.9"], ("5.9", "4 heads")),
        heads("table-heads-empty-entry", ["--copy-scores", "--dataset", "digits", "--heads", "2.1,"], ("--heads",)),
        heads("copy-without-answer", ["--copy-scores", "--prompt", "1 2 3 4"], ("no answer",)),
        heads("copy-answer-multi-token", ["--copy-scores"] + d, ("answer", "token"),
              'name: d\nitems: [{prompt: "1 2 3 4", answer: " 5 6 7"}]\n'),
        heads("copy-only-bos", ["--copy-scores"] + d, ("empty", "no positions", "token"),
              'name: d\nitems: [{prompt: "", answer: " 5"}]\n'),
        heads("copy-sign-two", ["--copy-scores", "--dataset", "digits", "--sign", "2"], ("--sign",)),
        heads("induction-no-repeat", ["--detect", "induction", "--prompt", "1 2 3 4"], ("repeat",)),
        heads("duplicate-no-repeat", ["--detect", "duplicate-token", "--prompt", "1 2 3 4"], ("repeat",)),
        heads("detect-one-token", ["--detect", "previous-token", "--prompt", "1", "--no-bos"], ("at least 2",)),
        heads("same-family-none", ["--detect", "same-family", "--prompt", "1 ,"], ("family",)),
        heads("same-family-families-file-missing", ["--detect", "same-family", "--dataset", "digits", "--families", "nope.yaml"], ("nope.yaml",)),
        heads("detect-unknown", ["--detect", "copying", "--dataset", "digits"], ("copying",)),
        heads("detect-no-prompts", ["--detect", "induction"], ("--random-repeated",)),
        heads("random-repeated-zero", ["--detect", "induction", "--random-repeated", "0"], ("--random-repeated",)),
        heads("random-repeated-huge", ["--detect", "induction", "--random-repeated", str(1 << 62)], ("--random-repeated",)),
        heads("repeat-length-too-long", ["--detect", "induction", "--random-repeated", "1", "--repeat-length", "5000"],
              ("tokens", "n_positions", "--repeat-length")),
        heads("random-and-prompts", ["--detect", "induction", "--random-repeated", "2", "--dataset", "digits"], ("not both",)),
        heads("two-analyses", ["--detect", "induction", "--copy-scores", "--dataset", "digits"], ("one analysis",)),
        heads("no-analysis", ["--dataset", "digits"], ("one analysis",)),
        heads("top-0", ["--detect", "previous-token", "--dataset", "digits", "--top", "0"], ("--top",)),
        heads("writing-one-point", ["--writing", "0.0", "--prompt", "1"], ("point",)),
        # --pattern HEADS (attention pictures), --detect lists, --shard
        heads("pattern-not-a-head", ["--pattern", "9", "--prompt", "1 2 3", "--html", "x.html"], ("--pattern", "9.1,6.1")),
        heads("pattern-repeated-head", ["--pattern", "1.1,1.1", "--prompt", "1 2 3", "-o", "x.h5"], ("1.1 twice",)),
        heads("pattern-layer-out-of-range", ["--pattern", "6.0", "--prompt", "1 2 3", "--plot", "x.svg"], ("6 blocks",)),
        heads("pattern-head-out-of-range", ["--pattern", "0.4", "--prompt", "1 2 3"], ("4 heads",)),
        heads("pattern-huge-head", ["--pattern", "0.99999999999999999999", "--prompt", "1 2 3"], ("--pattern",)),
        heads("pattern-control-chars", ["--pattern", "1.1,\x1b[31m", "--prompt", "1 2 3"], ("--pattern",)),
        heads("pattern-empty", ["--pattern", "", "--prompt", "1 2 3"], ("--pattern",)),
        heads("pattern-with-heads", ["--pattern", "1.1", "--heads", "1.1", "--prompt", "1 2 3"], ("--pattern 9.1,6.1",)),
        heads("pattern-dest-out-of-range", ["--pattern", "1.1", "--prompt", "1 2 3", "--dest", "99", "--html", "x.html"], ("--dest 99",)),
        heads("pattern-dest-huge-negative", ["--pattern", "1.1", "--prompt", "1 2 3", "--dest", str(-(1 << 62))], ("--dest",)),
        heads("pattern-unequal-lengths", ["--pattern", "1.1"] + d, ("item 1 has", "item 2 has"),
              'name: d\nitems: [{prompt: "1 2 3"}, {prompt: "1 2 3 4 5"}]\n'),
        heads("pattern-empty-prompt-no-bos", ["--pattern", "1.1", "--prompt", "", "--no-bos"], ("empty", "no tokens")),
        heads("pattern-and-detect", ["--pattern", "1.1", "--detect", "induction", "--prompt", "1 2 1 2"], ("one analysis",)),
        heads("dest-without-pattern", ["--detect", "previous-token", "--prompt", "1 2 3", "--dest", "1"], ("--dest",)),
        heads("html-without-pattern", ["--copy-scores", "--dataset", "digits", "--html", "x.html"], ("--html",)),
        heads("exclude-bos-with-pattern", ["--pattern", "1.1", "--prompt", "1 2 3", "--exclude-bos"], ("--exclude-bos",)),
        heads("detect-repeated", ["--detect", "induction,induction", "--random-repeated", "2"], ("twice",)),
        heads("detect-empty-entry", ["--detect", "induction,", "--random-repeated", "2"], ("not a detector",)),
        heads("detect-all-in-list", ["--detect", "all,induction", "--random-repeated", "2"], ("not a detector",)),
        heads("detect-all-without-repeat", ["--detect", "all", "--prompt", "1 2 3 4", "-o", "x.h5"], ("repeat",)),
        heads("detect-families-without-same-family", ["--detect", "induction,previous-token", "--random-repeated", "2",
                                                      "--families", "f.yaml"], ("--families",)),
        heads("shard-zero", ["--detect", "all", "--random-repeated", "2", "--shard", "0/3", "-o", "x.h5"], ("--shard", "0/3")),
        heads("shard-k-above-n", ["--copy-scores", "--dataset", "digits", "--shard", "4/3", "-o", "x.h5"], ("4/3",)),
        heads("shard-n-zero", ["--copy-scores", "--dataset", "digits", "--shard", "1/0", "-o", "x.h5"], ("1/0",)),
        heads("shard-not-numbers", ["--detect", "induction", "--random-repeated", "2", "--shard", "a/b", "-o", "x.h5"], ("a/b",)),
        heads("shard-without-output", ["--detect", "induction", "--random-repeated", "2", "--shard", "1/2"], ("-o",)),
        heads("shard-pattern", ["--pattern", "1.1", "--prompt", "1 2 3", "--shard", "1/2", "-o", "x.h5"], ("--shard is for",)),
        heads("shard-writing", ["--writing", "2.1", "--dataset", "digits", "--shard", "1/2", "-o", "x.h5"], ("--shard is for",)),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        head = rng.choice(["0.0", "5.3", "6.0", "0.4", "-1.0", "1.1.1", "", ".", "a.b", "2.1", " 3.2"])
        pieces = ['"1 2 3 4"', '"1 2 1 2"', '" 5"', '""', "null", "5", "[]", '"\\x00"', '"1"']
        items = ", ".join("{" + ", ".join(f"{f}: {rng.choice(pieces)}" for f in ["prompt", "answer"] if rng.random() < 0.9) + "}"
                          for _ in range(rng.randint(0, 3)))
        source = rng.choice([["--dataset", "d.yaml"], ["--dataset", "digits"], ["--prompt", rng.choice(["1", "1 1", ",", "a b a b"])]])
        kind = rng.choice(["detect", "copy", "writing", "pattern"])
        if kind == "pattern":
            heads_list = ",".join(rng.choice(["0.0", "5.3", "6.0", "0.4", "1.1", "a", "", "2.2"]) for _ in range(rng.randint(1, 3)))
            args = ["--pattern", heads_list, *source]
            if rng.random() < 0.5:
                args += ["--dest", rng.choice(["0", "-1", "3", "-9", "99", "x"])]
            if rng.random() < 0.3:
                args += ["--format", rng.choice(["table", "json", "csv", "xml"])]
        elif kind == "detect":
            names = ["previous-token", "duplicate-token", "induction", "same-family", "all", "x", ""]
            args = ["--detect", ",".join(rng.choice(names) for _ in range(rng.randint(1, 3)))]
            args += source if rng.random() < 0.7 else ["--random-repeated", rng.choice(["1", "3", "0", "-2"])]
            if rng.random() < 0.3:
                args.append(rng.choice(["--exclude-bos", "--exclude-current-token", "--no-bos"]))
        elif kind == "copy":
            args = ["--copy-scores", *source] + (["--heads", head] if rng.random() < 0.5 else []) + \
                   (["--sign", rng.choice(["1", "-1", "0"])] if rng.random() < 0.3 else [])
        else:
            args = ["--writing", head, *source]
        if kind in ("detect", "copy") and rng.random() < 0.2:
            args += ["--shard", rng.choice(["1/2", "2/2", "0/2", "3/2", "1/1"]), "-o", "part.h5"]
        return heads(f"fuzz{n}", args, ("error", "--", "item", "d.yaml", "head", "layer", "prompt", "token", "repeat", "family", "point", "detector", "shard"),
                     f"name: d\nitems: [{items}]\n", exits=frozenset({0, 1}), timeout=60, may_change=("part.h5",))

    return cases, fuzz


def circuit_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    """`scalpel circuit` on hostile circuit files, datasets and flags (bundled model, 6 layers x 4 heads):
    exit 1 naming the head, position, field or count, and nothing written."""
    cat = "circuit"

    def circuit(name, text, args, mentions, data=None, exits=frozenset({1}), **kw):
        def setup(work):
            write(work / "c.yaml", text)
            if data is not None:
                write(work / "d.yaml", data)
        return Case(cat, name, ["circuit", "c.yaml", *args, "-o", "out.h5"], setup, mentions, exits=exits,
                    may_change=("out.h5",) if 0 in exits else (), **kw)

    d = ["--dataset", "digits"]
    five = ('name: d\nitems: [{prompt: "1 2 3 4 5", answer: " 6", corrupted_prompt: "1 2 3 4 4", corrupted_answer: " 5"}]\n')
    cases = [
        circuit("no-such-layer", 'heads: {"6.0": all}\n', d, ("6.0", "does not exist")),
        circuit("no-such-head", 'heads: {"1.4": all}\n', d, ("1.4", "does not exist")),
        circuit("position-outside", 'heads: {"1.0": [9]}\n', d, ("position 9", "tokens")),
        circuit("position-negative-outside", 'heads: {"1.0": [-9]}\n', d, ("-9", "tokens")),
        circuit("position-twice", 'heads: {"1.0": [end, -1]}\n', d, ("heads.1.0", "none twice")),
        circuit("position-empty-list", 'heads: {"1.0": []}\n', d, ("heads.1.0",)),
        circuit("head-not-layer-dot-head", 'heads: {"10": all}\n', d, ("layer.head",)),
        circuit("head-negative", 'heads: {"-1.0": all}\n', d, ("layer.head",)),
        circuit("head-huge", 'heads: {"99999999999999999999.0": all}\n', d, ("layer.head",)),
        circuit("unknown-field", 'heads: {}\nextra: {}\n', d, ("extra", "unknown field")),
        # MLPs (`mlps:`): layers the model lacks, positions outside the prompts, keys that are not layers.
        circuit("mlp-no-such-layer", 'heads: {}\nmlps: {"6": all}\n', d, ("MLP 6", "does not exist", "0–5")),
        circuit("mlp-huge-layer", 'heads: {}\nmlps: {"99999999999999999999": all}\n', d, ("mlps.", "layer number")),
        circuit("mlp-position-outside", 'heads: {}\nmlps: {"1": [9]}\n', d, ("MLP 1", "position 9", "tokens")),
        circuit("mlp-position-twice", 'heads: {}\nmlps: {"1": [end, -1]}\n', d, ("mlps.1", "none twice")),
        circuit("mlp-head-syntax", 'heads: {}\nmlps: {"1.0": all}\n', d, ("mlps.1.0", "layer number")),
        circuit("mlp-negative", 'heads: {}\nmlps: {"-1": all}\n', d, ("mlps.-1",)),
        circuit("mlps-list", 'heads: {}\nmlps: [1]\n', d, ("mlps", "mapping")),
        circuit("mlps-scalar", 'heads: {}\nmlps: all\n', d, ("mlps", "mapping")),
        circuit("mlps-twice", 'heads: {}\nmlps: {}\nmlps: {}\n', d, ("mlps", "duplicate")),
        circuit("mlps-empty-ok", 'heads: {"5.0": all}\nmlps: {}\n', d + ["--baselines", "3"], (), exits=frozenset({0})),
        # New flags: --batch-size, --shard, --format csv.
        circuit("batch-size-zero", 'heads: {}\n', d + ["--batch-size", "0"], ("--batch-size",)),
        circuit("batch-size-negative", 'heads: {}\n', d + ["--batch-size", "-4"], ("--batch-size",)),
        circuit("batch-size-huge", 'heads: {}\n', d + ["--batch-size", str(1 << 62)], ("--batch-size",)),
        circuit("batch-size-text", 'heads: {}\n', d + ["--batch-size", "x"], ("--batch-size",)),
        circuit("shard-zero", 'heads: {"1.0": all}\n', d + ["--baselines", "4", "--shard", "0/2"], ("0/2", "K/N")),
        circuit("shard-beyond", 'heads: {"1.0": all}\n', d + ["--baselines", "4", "--shard", "3/2"], ("3/2",)),
        circuit("shard-ok", 'heads: {"1.0": all}\n', d + ["--baselines", "4", "--batch-size", "2", "--shard", "2/2"], (), exits=frozenset({0})),
        circuit("csv-ok", 'heads: {"1.0": all}\nmlps: {"5": [end]}\n', d + ["--baselines", "2", "--format", "csv"], (), exits=frozenset({0})),
        Case(cat, "shard-without-output", ["circuit", "c.yaml", *d, "--baselines", "4", "--shard", "1/2"],
             lambda w: write(w / "c.yaml", 'heads: {"1.0": all}\n'), ("-o",)),
        circuit("heads-list", 'heads: ["1.0"]\n', d, ("heads", "mapping")),
        circuit("heads-missing", 'description: x\n', d, ("heads", "missing")),
        circuit("empty-file", '', d, ("empty",)),
        circuit("not-yaml", 'heads: {"1.0": [\n', d, ("YAML",)),
        circuit("means-length-differs", 'heads: {"1.0": all}\n', d + ["--means", "d.yaml"], ("5 tokens", "6 tokens", "--pooled-means"), data=five),
        circuit("scored-lengths-differ", 'heads: {"1.0": all}\n', ["--dataset", "d.yaml"], ("item 1", "item 2"),
                data=five[:-2] + ', {prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3 3", corrupted_answer: " 4"}]\n'),
        circuit("too-many-baselines", 'heads: {"1.0": all, "2.0": [end]}\n', d + ["--baselines", "553"], ("552", "at most")),
        circuit("baselines-of-empty", 'heads: {}\n', d + ["--baselines", "2"], ("at most 1",)),
        circuit("baselines-negative", 'heads: {}\n', d + ["--baselines", "-1"], ("--baselines",)),
        circuit("baselines-huge", 'heads: {}\n', d + ["--baselines", str(1 << 62)], ("--baselines",)),
        circuit("items-backwards", 'heads: {}\n', d + ["--items", "5-1"], ("--items",)),
        circuit("items-beyond", 'heads: {}\n', d + ["--items", "1-99"], ("--items", "20 items")),
        circuit("control-unknown", 'heads: {}\n', d + ["--controls", "nope"], ("nope",)),
        circuit("empty-circuit-ok", 'heads: {}\n', d, ("all-mean",), exits=frozenset({0}), warn_on_success=True),
    ]

    # Plans that build a circuit (`edits: [{circuit: FILE, dataset: D}]`).
    def build(name, edit, mentions, circuit_text='heads: {"1.0": all}\n'):
        def setup(work):
            write(work / "c.yaml", circuit_text)
            write(work / "plan.yaml", 'blocks: ["0-5"]\nedits:\n  - ' + edit + "\n")
        return Case(cat, name, ["build", "plan.yaml", "-o", "out.h5"], setup, mentions)
    cases += [
        build("plan-circuit-missing", "{circuit: nowhere.yaml, dataset: digits}", ("nowhere.yaml",)),
        build("plan-circuit-mode-zero", "{circuit: c.yaml, dataset: digits, mode: zero}", ("plan.yaml:3", "mode", "zero")),
        build("plan-circuit-positions", "{circuit: c.yaml, dataset: digits, positions: [end]}", ("positions", "circuit file lists")),
        build("plan-circuit-no-dataset", "{circuit: c.yaml}", ("plan.yaml:3", "dataset")),
        build("plan-circuit-means-bad", "{circuit: c.yaml, dataset: digits, means: median}", ("means", "median")),
        build("plan-circuit-no-mlp", "{circuit: c.yaml, dataset: digits}", ("MLP 7", "does not exist"), 'heads: {}\nmlps: {"7": all}\n'),
        build("plan-circuit-bad-file", "{circuit: c.yaml, dataset: digits}", ("c.yaml", "heads"), 'heads: [1]\n'),
        build("plan-circuit-list", "{circuit: [c.yaml], dataset: digits}", ("plan.yaml:3", "circuit")),
        build("plan-circuit-and-heads", '{circuit: c.yaml, ablate_heads: ["1.0"], dataset: digits}', ("exactly one of",)),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        keys = ['"0.0"', '"5.3"', '"6.0"', '"1.4"', '"a.b"', '"1"', "1.0", '""', "null", '"0.0.0"']
        values = ["all", "[end]", "[0]", "[4]", "[5]", "[-6]", "[]", "[end, end]", "none", "null", "[0, 1, 2]", "{}"]
        heads = ", ".join(f"{rng.choice(keys)}: {rng.choice(values)}" for _ in range(rng.randint(0, 4)))
        args = ["--dataset", rng.choice(["digits", "months", "d.yaml"])]
        if rng.random() < 0.4:
            args += ["--baselines", rng.choice(["0", "1", "5", "600", "-3", "x"]), "--seed", rng.choice(["0", "7", "-1"])]
        if rng.random() < 0.3:
            args.append("--pooled-means")
        if rng.random() < 0.3:
            args += ["--batch-size", rng.choice(["1", "2", "0", "-1", "x"])]
        if rng.random() < 0.2:
            args += ["--shard", rng.choice(["1/2", "2/2", "0/2", "3/2"])]
        text = f"heads: {{{heads}}}\n"
        if rng.random() < 0.4:
            mlp_keys = ['"0"', '"5"', '"6"', '"a"', '"1.0"', "1", '""', "null", '"-2"']
            text += "mlps: {" + ", ".join(f"{rng.choice(mlp_keys)}: {rng.choice(values)}" for _ in range(rng.randint(0, 3))) + "}\n"
        return circuit(f"fuzz{n}", text, args, ("error", "heads", "head", "mlps", "MLP", "position", "baselines", "batch-size", "shard",
                                                "seed", "d.yaml", "c.yaml"),
                       data='name: d\nitems: [{prompt: "1 2 3", answer: " 4", corrupted_prompt: "1 2 2", corrupted_answer: " 3"}]\n',
                       exits=frozenset({0, 1}), timeout=60)

    return cases, fuzz



def classify_cases(assets: Assets) -> tuple[list[Case], Fuzzer]:
    """`scalpel classify` on hostile flags and datasets (bundled model, 6 layers x 4 heads): exit 1 naming
    the flag, item or count, and nothing written."""
    cat = "classify"

    def classify(name, args, mentions, data=None, existing=False, exits=frozenset({1}), **kw):
        def setup(work):
            if data is not None:
                write(work / "d.yaml", data)
            if existing:
                write(work / "c.yaml", "heads: {}\n")
        return Case(cat, name, ["classify", *args, "--circuit-out", "c.yaml", "--html", "c.html"], setup, mentions, exits=exits,
                    may_change=("c.yaml", "c.html") if 0 in exits else (), **kw)

    d = ["--dataset", "digits"]
    one = 'name: d\nitems: [{prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3 3", corrupted_answer: " 4"}]\n'
    cases = [
        classify("unknown-dataset", ["--dataset", "nope"], ("nope",)),
        classify("threshold-and-top-k", d + ["--threshold", "0.1", "--top-k", "3"], ("not both",)),
        classify("threshold-negative", d + ["--threshold", "-1"], ("--threshold",)),
        classify("threshold-nan", d + ["--threshold", "nan"], ("--threshold",)),
        classify("threshold-inf", d + ["--threshold", "inf"], ("--threshold",)),
        classify("threshold-text", d + ["--threshold", "high"], ("--threshold",)),
        classify("top-k-zero", d + ["--top-k", "0"], ("--top-k",)),
        classify("top-k-huge", d + ["--top-k", str(1 << 62)], ("--top-k",)),
        classify("baselines-negative", d + ["--baselines", "-1"], ("--baselines",)),
        classify("baselines-huge", d + ["--baselines", str(1 << 62)], ("--baselines",)),
        classify("format-csv", d + ["--format", "csv"], ("--format",)),
        classify("no-corrupted", ["--dataset", "d.yaml"], ("corrupted_prompt",), data='name: d\nitems: [{prompt: "1 2 3 4", answer: " 5"}]\n'),
        classify("same-clean-corrupted", ["--dataset", "d.yaml"], ("mean nothing",),
                 data='name: d\nitems: [{prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3 4", corrupted_answer: " 4"}]\n'),
        classify("lengths-differ", ["--dataset", "d.yaml", "--baselines", "0"], ("item 1", "item 2"),
                 data=one[:-2] + ', {prompt: "1 2 3 4 5", answer: " 6", corrupted_prompt: "1 2 3 4 4", corrupted_answer: " 5"}]\n', timeout=120),
        classify("threshold-keeps-none", ["--dataset", "d.yaml", "--threshold", "999"], ("--threshold 999", "--top-k"), data=one, timeout=120),
        classify("existing-output", ["--dataset", "d.yaml", "--top-k", "2"], ("c.yaml", "--force"), data=one, existing=True),
        classify("report-is-folder", ["--dataset", "d.yaml", "-o", "."], ("'.'", '"."', "."), data=one),
        classify("report-named-as-page", ["--dataset", "d.yaml", "-o", "c.html"], ("c.html", "HDF5", "c.h5"), data=one),
        classify("report-named-json", ["--dataset", "d.yaml", "-o", "c.json"], ("c.json", "HDF5", "c.h5"), data=one),
        classify("ok-one-item", ["--dataset", "d.yaml", "--top-k", "4", "--baselines", "3"], ("error",), data=one,
                 exits=frozenset({0, 1}), timeout=120),
        # --shard K/N: only the head patching; the finishing run's outputs are refused on a part.
        classify("shard-with-finishing-outputs", ["--dataset", "d.yaml", "--shard", "1/2", "-o", "p.h5"], ("--circuit-out",), data=one),
    ]

    def runs(*specs: tuple[str, list[str]]):
        """Writes d.yaml, then runs each (file, scalpel arguments without -o) with -o file."""
        def setup(work: Path) -> None:
            write(work / "d.yaml", one)
            for name, args in specs:
                subprocess.run([assets.binary, *args, "-o", name], cwd=work, check=True, capture_output=True)
        return setup

    def part(k, n, *extra):
        return ["classify", "--dataset", "d.yaml", *extra, "--shard", f"{k}/{n}"]

    def finish(name, parts, setup, mentions, extra=()):
        return Case(cat, name, ["classify", "--dataset", "d.yaml", *extra, "--patch-result", *parts, "-o", "r.h5"], setup, mentions, timeout=120)

    cases += [
        Case(cat, "shard-zero", part(0, 2) + ["-o", "p.h5"], runs(), ("0/2", "K/N")),
        Case(cat, "shard-k-above-n", part(3, 2) + ["-o", "p.h5"], runs(), ("3/2",)),
        Case(cat, "shard-not-numbers", part("a", "b") + ["-o", "p.h5"], runs(), ("a/b",)),
        Case(cat, "shard-without-output", part(1, 2), runs(), ("-o",)),
        Case(cat, "shard-with-patch-result", part(1, 2) + ["-o", "p.h5", "--patch-result", "x.h5"], runs(), ("--patch-result",)),
        finish("parts-missing", ["p1.h5"], runs(("p1.h5", part(1, 2))), ("missing shard 2/2",)),
        finish("parts-repeated", ["p1.h5", "p2.h5", "p1.h5"], runs(("p1.h5", part(1, 2)), ("p2.h5", part(2, 2))), ("more than once",)),
        finish("parts-other-run", ["p1.h5", "q2.h5"], runs(("p1.h5", part(1, 2)), ("q2.h5", part(2, 2, "--metric", "prob"))),
               ("q2.h5",)),
        finish("parts-other-n", ["p1.h5", "q2.h5"], runs(("p1.h5", part(1, 2)), ("q2.h5", part(2, 3))), ("number of shards",)),
        finish("parts-and-whole-file", ["p1.h5", "z.h5"],
               runs(("p1.h5", part(1, 2)), ("z.h5", ["patch", "--dataset", "d.yaml", "--target", "z"])), ("not a partial file", "z.h5")),
        finish("parts-not-hdf5", ["p1.h5", "x.h5"], lambda w: (runs(("p1.h5", part(1, 2)))(w), write(w / "x.h5", "not hdf5")), ("x.h5",)),
        finish("parts-of-a-trace", ["t1.h5"], runs(("t1.h5", ["trace", "--dataset", "months", "--hooks", "hook_embed", "--shard", "1/1"])),
               ("not of a patching",)),
        finish("parts-other-metric", ["p1.h5"], runs(("p1.h5", part(1, 1))), ("prob",), extra=("--metric", "prob")),
        finish("parts-other-dataset", ["p1.h5"], runs(("p1.h5", ["classify", "--dataset", "digits", "--shard", "1/1"])), ("other prompts",)),
    ]

    def fuzz(rng: random.Random, n: int) -> Case:
        # One short item keeps each run to seconds (the digits family with hundreds of baselines takes minutes in a debug build).
        args = ["--dataset", rng.choice(["d.yaml", "d.yaml", "d.yaml", "nope"])]
        choice = rng.random()
        if choice < 0.4:
            args += ["--threshold", rng.choice(["0", "0.01", "0.5", "2", "-0.1", "nan", "1e308", "x", ""])]
        elif choice < 0.8:
            args += ["--top-k", rng.choice(["1", "3", "24", "25", "0", "-2", "9999999999999999999", "k"])]
        if rng.random() < 0.5:
            args += ["--baselines", rng.choice(["0", "1", "5", "600", "-3", "x"]), "--seed", rng.choice(["0", "7", "-1", "18446744073709551615"])]
        if rng.random() < 0.2:
            args.append("--pooled-means")
        if rng.random() < 0.2:
            args.append("--no-bos")
        return classify(f"fuzz{n}", args, ("error", "threshold", "top-k", "baselines", "seed", "nope", "d.yaml", "negative", "at most"),
                        data=one, exits=frozenset({0, 1}), timeout=120)

    return cases, fuzz

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


CATEGORIES: dict[str, Callable[[Assets], tuple[list[Case], Fuzzer]]] = {
    "checkpoints": checkpoint_cases,
    "configs": config_cases,
    "tokenizer": tokenizer_cases,
    "plans": plan_cases,
    "archives": archive_cases,
    "prompts": prompt_cases,
    "patch": patch_cases,
    "attribute": attribute_cases,
    "heads": heads_cases,
    "circuit": circuit_cases,
    "classify": classify_cases,
    "outputs": output_cases,
    "flags": flag_cases,
    "signals": signal_cases,
    "file-size": file_size_cases,
    "non-regular": non_regular_cases,
    "low-memory": memory_cases,
    "shard_cases": shard_cases,
}


def all_cases(assets: Assets, budget: int, seed: int, only: Optional[set[str]]) -> list[Case]:
    """Every fixed case, then fuzzed ones shared round-robin among the fuzzing categories up to `budget`."""
    fixed: list[Case] = []
    fuzzers: list[tuple[str, Callable]] = []
    for name, make in CATEGORIES.items():
        if only and name not in only:
            continue
        cases, fuzz = make(assets)
        fixed += cases
        if fuzz:
            fuzzers.append((name, fuzz))
    # One generator per category, so that `--only` reproduces a category's cases of a full run.
    generators = {name: random.Random(f"{seed}/{name}") for name, _ in fuzzers}
    extra: list[Case] = []
    n = 0
    while fuzzers and len(fixed) + len(extra) < budget:
        name, fuzz = fuzzers[n % len(fuzzers)]
        extra.append(fuzz(generators[name], n // len(fuzzers)))
        n += 1
    return fixed + extra


# ---------------------------------------------------------------------------------------------
# Running a case


def limits(memory: int, file_size: Optional[int]) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    return apply


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (not following links) with its type and content hash."""
    entries = {}
    for directory, subdirs, files in os.walk(folder):
        for name in subdirs + files:
            path = Path(directory, name)
            entries[str(path.relative_to(folder))] = fingerprint(path)
    return entries


def fingerprint(path: Path) -> str:
    """Type and content of one entry. Files over 64 MB (sparse ones declaring huge sizes) are known
    by size, modification time and their first and last megabyte, not read whole."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "link:" + os.readlink(path)
    if stat.S_ISDIR(info.st_mode):
        return "dir"
    if stat.S_ISFIFO(info.st_mode):
        return "fifo"
    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        return f"device:{info.st_rdev}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if info.st_size > 64 * MB:
            digest.update(f"{info.st_size} {info.st_mtime_ns}".encode() + f.read(MB))
            f.seek(-MB, os.SEEK_END)
            digest.update(f.read(MB))
        else:
            for chunk in iter(lambda: f.read(MB), b""):
                digest.update(chunk)
    return "file:" + digest.hexdigest()


@dataclasses.dataclass
class Failure:
    case: Case
    kind: str
    detail: str
    stderr: str = ""

    def line(self) -> str:
        command = "scalpel " + " ".join(shell_quote(a) for a in self.case.args)
        excerpt = " ".join(self.stderr.split())[:240]
        return f"FAIL {self.case.category} {self.case.name}: {self.kind}: {self.detail}\n    $ {command}\n    stderr: {excerpt}"


def shell_quote(arg: str) -> str:
    if arg and re.fullmatch(r"[\w./:=,+@-]+", arg):
        return arg
    shown = arg if len(arg) <= 60 else arg[:40] + f"…({len(arg)} chars)"
    return "'" + shown.replace("'", "'\\''") + "'"


PRLIMIT = shutil.which("prlimit")


def launch(case: Case, binary: str, work: Path) -> subprocess.Popen:
    """Starts the binary under the case's limits. `prlimit` execs the binary (same pid, so signals
    reach it); without it the limits are set in preexec_fn, which is not safe with threads."""
    command, preexec = [binary, *case.args], None
    if PRLIMIT:
        command = [PRLIMIT, f"--as={case.memory}", "--core=0"] + \
            ([f"--fsize={case.file_size}"] if case.file_size else []) + ["--", *command]
    else:
        preexec = limits(case.memory, case.file_size)
    return subprocess.Popen(command, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=preexec, start_new_session=True)


def finish(process: subprocess.Popen, timeout: float) -> tuple[Optional[int], bytes, bytes]:
    """Waits for the process; a timeout kills its whole group and returns status None."""
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return None, out, err


def find_temporaries(folder: Path) -> list[str]:
    return [str(Path(d, n).relative_to(folder)) for d, subdirs, files in os.walk(folder)
            for n in subdirs + files if TEMPORARY.match(n)]


def interrupt_mid_write(case: Case, process: subprocess.Popen, work: Path) -> bool:
    """Sends the case's signal once a temporary file exists; False when the run ended first."""
    deadline = time.monotonic() + case.timeout
    while process.poll() is None and time.monotonic() < deadline:
        if find_temporaries(work):
            process.send_signal(case.interrupt)
            return True
        time.sleep(0.002)
    return False


def run_case(case: Case, binary: str, root: Path) -> tuple[list[Failure], Optional[str], float]:
    """Runs one case in its own folder; returns its failures, a note (e.g. skipped) and its seconds."""
    if case.needs_h5py and h5py is None:
        return [], "skipped: h5py/numpy not importable", 0.0
    case_dir = root / "cases" / re.sub(r"[^\w.-]", "_", case.id)[:150]
    work = case_dir / "work"
    work.mkdir(parents=True)
    write(case_dir / SENTINEL, "parent of the work folder\n")
    write(work / SENTINEL, "work folder\n")
    if case.setup:
        case.setup(work)
    if (work / SKIP).exists():
        return [], "skipped: " + (work / SKIP).read_text(), 0.0
    before = snapshot(case_dir)

    started = time.monotonic()
    processes = [launch(case, binary, work) for _ in range(case.concurrent)]
    interrupted = interrupt_mid_write(case, processes[0], work) if case.interrupt else None
    results = [finish(p, case.timeout) for p in processes]
    codes = [code for code, _, _ in results]
    outcome = Outcome(case, work, binary, codes, results[0][1].decode(errors="replace"),
                      "\n".join(err.decode(errors="replace") for _, _, err in results), interrupted)
    if case.interrupt and (not interrupted or "wrote " in outcome.stdout):
        # The write finished before the signal could land mid-write: nothing to judge.
        return [], "not interrupted mid-write (the run finished first)", time.monotonic() - started
    failures = judge(outcome, before, snapshot(case_dir))
    note = None
    if time.monotonic() - started > case.timeout / 2 and not any(f.kind == HANG for f in failures):
        note = "slow (over half the time limit)"
    if (work / "ro").is_dir():
        os.chmod(work / "ro", 0o755)  # so that the case folder can be removed
    return failures, note, time.monotonic() - started


def judge(outcome: Outcome, before: dict, after: dict) -> list[Failure]:
    """Status, message and file checks of one run (`before`/`after`: snapshots of the case folder)."""
    case, failures = outcome.case, []

    def fail(kind: str, detail: str) -> None:
        failures.append(Failure(case, kind, detail, outcome.stderr))

    failures += status_failures(outcome)
    allowed = {f"work/{p}" for p in case.may_change}

    def is_allowed(path: str) -> bool:
        return any(path == a or path.startswith(a + "/") for a in allowed)

    def completed_output(path: str) -> bool:
        # A signal that arrives after the outputs were put in place (the write was done) finds
        # nothing to undo: the old file was legitimately replaced by a complete new one.
        if case.interrupt is None or "--force" not in case.args or not path.startswith("work/"):
            return False
        target = outcome.work.parent / path
        return target.is_file() and target.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n" and "removed the unfinished" not in outcome.stderr

    lost = [f"{path} {change(old, after.get(path))}" for path, old in before.items()
            if after.get(path) != old and not is_allowed(path) and not completed_output(path)]
    if lost:
        fail(DATA_LOSS, f"{len(lost)} existing entries lost or changed: " + "; ".join(lost[:4]))
    if None in outcome.codes:
        return failures  # killed after the time limit: what SIGKILL leaves behind is counted as the hang
    created = sorted(set(after) - set(before))
    temporaries = [p for p in created if TEMPORARY.match(Path(p).name)]
    if temporaries:
        fail(PARTIAL, "temporary file left: " + ", ".join(temporaries[:3]))
    # Report only the top new entry of a new folder, and not the outputs the case allows.
    stray = [p for p in created if p not in temporaries and not is_allowed(p)
             and not any(p.startswith(q + "/") for q in created)]
    if stray:
        kind, what = (SILENT, "unexpected new file") if 0 in outcome.codes else (PARTIAL, "failed run left")
        fail(kind, f"{what}: " + ", ".join(stray[:3]))
    return failures


def change(old: str, new: Optional[str]) -> str:
    if new is None:
        return "deleted"
    old_type, new_type = old.split(":")[0], new.split(":")[0]
    return "changed" if old_type == new_type else f"{old_type} replaced by {'a ' if new_type != 'dir' else ''}{new_type}"


def status_failures(outcome: Outcome) -> list[Failure]:
    case, codes, stderr = outcome.case, outcome.codes, outcome.stderr
    failures = []

    def fail(kind: str, detail: str) -> None:
        failures.append(Failure(case, kind, detail, stderr))

    for code in codes:
        if code is None and case.still_running_ok:
            continue
        if code is None:
            fail(HANG, f"no exit after {case.timeout:.0f} s (killed)")
        elif code < 0:
            fail(CRASH, f"killed by {signal.Signals(-code).name}")
        elif code not in case.exits:
            if code == 2:
                fail(EXIT2, "exit 2 (internal error) on bad input")
            elif code == 0:
                fail(SILENT, "exit 0 on bad input")
            elif code == 1 and 0 in case.exits:
                fail(REFUSED, "exit 1 on acceptable input")
            else:
                fail(OTHER, f"exit {code}, expected {sorted(case.exits)}")
    if case.concurrent > 1 and sorted(c for c in codes if c is not None and c >= 0) != [0] + [1] * (case.concurrent - 1):
        fail(SILENT, f"{case.concurrent} concurrent runs onto one new path exited {codes}: exactly one may succeed")
    message_expected = any(c == 1 for c in codes) or (case.warn_on_success and 0 in codes)
    if message_expected and case.mentions and not mentions_any(stderr, case.mentions):
        fail(UNCLEAR, "message names none of " + ", ".join(repr(m[:40]) for m in case.mentions))
    elif any(c == 1 for c in codes) and not stderr.strip():
        fail(UNCLEAR, "exit 1 without a message")
    if case.check and codes and all(c == 0 for c in codes):
        problem = case.check(outcome)
        if problem:
            fail(SILENT, problem)
    return failures


def mentions_any(text: str, mentions: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(m.lower() in lowered for m in mentions)


# ---------------------------------------------------------------------------------------------
# Reporting and main


def summary(cases: list[Case], failures: list[Failure], seconds: dict[str, float]) -> str:
    """One row per category: cases tried, cases failing in each way, cases failed, seconds spent."""
    header = f"{'category':<13} {'tried':>5} " + " ".join(f"{k:>{max(len(k), 5)}}" for k in KINDS) + f" {'failed':>6} {'s':>5}"
    rows = [header, "-" * len(header)]
    categories = list(dict.fromkeys(c.category for c in cases))
    totals = [0] * (len(KINDS) + 2)
    for category in categories:
        tried = sum(c.category == category for c in cases)
        counts = [len({f.case.id for f in failures if f.case.category == category and f.kind == k}) for k in KINDS]
        failed = len({f.case.id for f in failures if f.case.category == category})
        values = [tried] + counts + [failed]
        totals = [a + b for a, b in zip(totals, values)]
        rows.append(format_row(category, values, seconds.get(category, 0)))
    rows.append("-" * len(header))
    rows.append(format_row("total", totals, sum(seconds.values())))
    return "\n".join(rows)


def format_row(label: str, values: list[int], seconds: float) -> str:
    tried, *counts, failed = values
    return (f"{label:<13} {tried:>5} " + " ".join(f"{v:>{max(len(k), 5)}}" for k, v in zip(KINDS, counts))
            + f" {failed:>6} {seconds:>5.0f}")


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
