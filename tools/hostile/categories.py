"""The categories of cases, in the order they run, and the list of cases of one run."""
from __future__ import annotations

import random
from typing import Callable, Optional

from .analysis_cases import attribute_cases, circuit_cases, classify_cases, heads_cases, patch_cases, prompt_cases
from .harness import Assets, Case, Fuzzer
from .model_cases import archive_cases, checkpoint_cases, config_cases, plan_cases, tokenizer_cases
from .system_cases import (file_size_cases, flag_cases, memory_cases, non_regular_cases, output_cases, shard_cases,
                           signal_cases)


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
    "shard": shard_cases,
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
