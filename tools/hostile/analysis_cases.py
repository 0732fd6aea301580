"""Hostile prompt files and datasets, and the analysis commands' flags and inputs: patch, attribute,
heads, circuit and classify."""
from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from .harness import GB, MB, Assets, Case, Fuzzer, alias_bomb, expect_json_items, nested, write


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
