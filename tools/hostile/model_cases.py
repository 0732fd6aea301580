"""Damaged model inputs: checkpoints (safetensors), configs, tokenizer files, plans and archives."""
from __future__ import annotations

import json
import os
import random
import shutil
import struct
from pathlib import Path
from typing import Callable, Optional

from .harness import (BUNDLED, MB, PROMPT, Assets, Case, Fuzzer, alias_bomb, copy_model, edit_json,
                      expect_readable_output, expect_same_stdout, floats, h5py, names, nested, np,
                      random_checkpoint, read_safetensors, write, write_safetensors)


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
