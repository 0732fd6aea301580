#!/usr/bin/env python3
"""Build the planted-heads model that `scalpel classify` is tested on (issue 14: "classify is tested on
models whose heads are planted by hand").

A two-layer GPT-2 (Hugging Face `GPT2LMHeadModel`, 4 heads of 24 dimensions, d_model 96) whose
weights are set by hand, so that its two important heads and their roles are known from the
construction, not from running Scalpel:

- vocabulary: the letters A…P (ids 0…15), one character per token, and <|endoftext|> (id 16, BOS);
  vocab.json has these 17 pieces and merges.txt no merge, so "ABC" is three tokens;
- the residual stream has three sections: the token (dims 0…16), the position (17…40), and the
  previous token (41…57). Embeddings are one-hot vectors with their mean removed, so every
  embedding has mean 0 and the same norm, and LayerNorm (weight 1, bias 0) only rescales them;
- head 0.0, the PREVIOUS-TOKEN head: its QK matches query position p with key position p − 1 through
  the position embeddings; its OV writes the attended token into the previous-token section;
- head 1.0, the INDUCTION head: its QK matches the query's token with the key's previous-token
  section (written by 0.0), so it attends to the token after an earlier copy of the current token;
  its OV copies that token into the token section, i.e. onto its unembedding (tied embeddings);
- heads 0.1–0.3 and 1.1–1.3 are UNTOUCHED: small seeded random weights (their outputs barely reach
  the logits); MLPs (4 neurons) and every bias are zero.

The dataset (`Fixtures/classify/induction.yaml`): 24 items, each BOS + ten distinct random letters
r0…r9 + the repeat r0…r5; the answer is the induction continuation r6. The corrupted prompt swaps
r5 with an earlier rj (j in 0…3) in the first half, so the repeat now predicts r(j+1), the corrupted
answer (the foil). Every prompt has 17 tokens (per-position means work).

The script checks the construction with Hugging Face itself: every clean item predicts its answer
over the foil and every corrupted item the reverse; head 0.0 puts most attention on the previous
token and head 1.0 on the token after the earlier copy. Deterministic:
`python3 tools/make_planted_model.py` (writes Tests/ScalpelTests/Fixtures/models/planted/ and
Tests/ScalpelTests/Fixtures/classify/induction.yaml).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "ScalpelTests" / "Fixtures"
MODEL_DIR = FIXTURES / "models" / "planted"
DATASET = FIXTURES / "classify" / "induction.yaml"

LETTERS = [chr(ord("A") + i) for i in range(16)]
BOS = len(LETTERS)  # 16
VOCAB = BOS + 1
N_POS = 24
D_MODEL, N_HEAD, D_HEAD = 96, 4, 24
TOK, POS, PREV = 0, VOCAB, VOCAB + N_POS  # section starts: 0, 17, 41 (PREV ends at 58)

QK_SCALE = 2.0      # attention scores ~40 apart: attention is nearly one-hot
PREV_WRITE = 0.15   # 0.0's output in the previous-token section, about as large as the embeddings
COPY_WRITE = 0.5    # 1.0's output in the token section, ~3x the current token's own embedding


def centred_one_hot(index: int, size: int) -> torch.Tensor:
    v = torch.full((size,), -1.0 / size)
    v[index] += 1.0
    return v


def build() -> GPT2LMHeadModel:
    config = GPT2Config(vocab_size=VOCAB, n_positions=N_POS, n_embd=D_MODEL, n_layer=2, n_head=N_HEAD, n_inner=4,
                        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=BOS, eos_token_id=BOS, tie_word_embeddings=True)
    config._attn_implementation = "eager"  # so that output_attentions returns the patterns
    model = GPT2LMHeadModel(config)
    generator = torch.Generator().manual_seed(14)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for t in range(VOCAB):
            model.transformer.wte.weight[t, TOK:TOK + VOCAB] = centred_one_hot(t, VOCAB)
        for p in range(N_POS):
            model.transformer.wpe.weight[p, POS:POS + N_POS] = centred_one_hot(p, N_POS)
        for block in model.transformer.h:
            block.ln_1.weight.fill_(1.0); block.ln_2.weight.fill_(1.0)
            w = block.attn.c_attn.weight  # [d_model, 3 * d_model]: x @ W -> q | k | v
            o = block.attn.c_proj.weight  # [d_model, d_model]: z (heads merged) @ W
            # Untouched heads 1..3: small random QK, tiny random OV.
            for h in range(1, N_HEAD):
                cols = slice(h * D_HEAD, (h + 1) * D_HEAD)
                for part, scale in ((0, 0.3), (1, 0.3), (2, 0.05)):
                    w[:, part * D_MODEL:(part + 1) * D_MODEL][:, cols] = torch.randn(D_MODEL, D_HEAD, generator=generator) * scale
                o[cols, :] = torch.randn(D_HEAD, D_MODEL, generator=generator) * 0.02
        model.transformer.ln_f.weight.fill_(1.0)

        q0, k0, v0 = (model.transformer.h[0].attn.c_attn.weight[:, i * D_MODEL:i * D_MODEL + D_HEAD] for i in range(3))
        o0 = model.transformer.h[0].attn.c_proj.weight[0:D_HEAD, :]
        # 0.0: query position p -> coordinate p; key position j -> coordinate j + 1 (so p meets p - 1).
        for p in range(N_POS):
            q0[POS + p, p] = QK_SCALE
            if p + 1 < N_POS:
                k0[POS + p, p + 1] = QK_SCALE
        # 0.0: value = the token; output into the previous-token section.
        for t in range(VOCAB):
            v0[TOK + t, t] = 1.0
            o0[t, PREV + t] = PREV_WRITE

        q1, k1, v1 = (model.transformer.h[1].attn.c_attn.weight[:, i * D_MODEL:i * D_MODEL + D_HEAD] for i in range(3))
        o1 = model.transformer.h[1].attn.c_proj.weight[0:D_HEAD, :]
        # 1.0: query's token meets key's previous token; value = the key's token, copied to the token section.
        for t in range(VOCAB):
            q1[TOK + t, t] = QK_SCALE
            k1[PREV + t, t] = QK_SCALE
            v1[TOK + t, t] = 1.0
            o1[t, TOK + t] = COPY_WRITE
    model.eval()
    return model


def dataset_items(count: int = 24, seed: int = 14) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        r = rng.sample(range(len(LETTERS)), 10)
        j = rng.randrange(0, 4)
        clean = r + r[:6]
        first = list(r)
        first[5], first[j] = first[j], first[5]
        corrupted = first + r[:6]
        items.append({"clean": clean, "corrupted": corrupted, "answer": r[6], "foil": first[j + 1]})
    return items


def text(ids: list[int]) -> str:
    return "".join(LETTERS[i] for i in ids)


def check(model: GPT2LMHeadModel, items: list[dict]) -> None:
    """The construction works in Hugging Face itself."""
    with torch.no_grad():
        for item in items:
            for prompt, good, bad in ((item["clean"], item["answer"], item["foil"]), (item["corrupted"], item["foil"], item["answer"])):
                ids = torch.tensor([[BOS] + prompt])
                out = model(ids, output_attentions=True)
                logits = out.logits[0, -1]
                assert logits[good] > logits[bad] + 1.0, (prompt, logits[good].item(), logits[bad].item())
                n = ids.shape[1]
                prev = out.attentions[0][0, 0]  # head 0.0 [query, key]
                assert all(prev[i, i - 1] > 0.9 for i in range(1, n)), "0.0 is not a previous-token head"
                induction = out.attentions[1][0, 0]
                target = 1 + prompt.index(prompt[-1]) + 1  # the token after the first copy of the last token
                assert induction[n - 1, target] > 0.9, "1.0 does not attend to the induction target"


def write(model: GPT2LMHeadModel, items: list[dict]) -> None:
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(MODEL_DIR, safe_serialization=True)
    for extra in ("generation_config.json",):
        (MODEL_DIR / extra).unlink(missing_ok=True)
    vocab = {letter: i for i, letter in enumerate(LETTERS)}
    vocab["<|endoftext|>"] = BOS
    (MODEL_DIR / "vocab.json").write_text(json.dumps(vocab) + "\n")
    (MODEL_DIR / "merges.txt").write_text("#version: 0.2\n")
    DATASET.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by tools/make_planted_model.py: ten distinct letters, then the repeat of the first six;",
        "# the answer is the induction continuation. The corruption swaps the last repeated letter with an",
        "# earlier one in the first half, so the repeat predicts another letter (the corrupted answer).",
        "name: planted-induction",
        'description: "Repeated random letters for the planted-heads model (tools/make_planted_model.py)"',
        "items:",
    ]
    for item in items:
        lines.append(f'  - {{prompt: "{text(item["clean"])}", answer: "{LETTERS[item["answer"]]}", '
                     f'corrupted_prompt: "{text(item["corrupted"])}", corrupted_answer: "{LETTERS[item["foil"]]}"}}')
    DATASET.write_text("\n".join(lines) + "\n")


def main() -> None:
    torch.manual_seed(14)
    model = build()
    items = dataset_items()
    check(model, items)
    write(model, items)
    print(f"wrote {MODEL_DIR} and {DATASET} ({len(items)} items); construction checked in Hugging Face")


if __name__ == "__main__":
    main()
