"""The hostile-input suite's harness: constants, Case and Outcome, file helpers, the checks several
cases share, the inputs shared by all cases (Assets), running and judging one case, and the summary."""
from __future__ import annotations

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
import time
from pathlib import Path
from typing import Callable, Optional

try:
    import h5py
    import numpy as np
except ImportError:  # the archive cases skip with a note
    h5py = None
    np = None

REPO = Path(__file__).resolve().parent.parent.parent  # tools/hostile/harness.py -> the repository
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
# Shared by the categories (model_cases, analysis_cases, system_cases). Each returns (fixed cases,
# a fuzzer making one more case from a random generator or None).

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
# Reporting


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
