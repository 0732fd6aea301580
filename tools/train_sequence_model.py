#!/usr/bin/env python3
"""Train Scalpel's bundled sequence model.

Scalpel ships a small model of the GPT-2 architecture, trained here to continue the kinds of
sequences the study (shared/seed, sections 2, 3, 6, 8) examines: "1 2 3 4" -> " 5",
"one two three four" -> " five", "January February March April" -> " May", days, letters,
"Adam is 1. Bob is 2. Claire is 3. Don is 4. Eve is" -> " 5" and "One is 1. ... Five is" -> " 5".

What this script does, deterministically (fixed seeds, 2 CPU threads, deterministic algorithms):
  1. generates a corpus of short documents (sequence families + distractor text), every document
     starting with <|endoftext|>, none starting (at the document start or at any line start) with
     a held-out evaluation prompt or even its bare first item and a space (see HELDOUT_RULE);
  2. trains a byte-level BPE vocabulary (GPT-2 pre-tokenization) and writes it in the GPT-2 file
     format (vocab.json, merges.txt); <|endoftext|> is the LAST id, as in GPT-2; it checks that
     every family item and every answer is a single token and stops if not;
  3. trains a GPT2LMHeadModel (gelu_new, tied embeddings) with AdamW and a cosine schedule;
  4. reloads the written folder and evaluates next-token accuracy per family on held-out prompts,
     with BOS prepended exactly as Scalpel does: [eot_id] + tokenizer.encode(prompt);
  5. writes config.json, model.safetensors, vocab.json, merges.txt, MODEL_CARD.md, heldout.json
     and reference_logits.safetensors into Sources/Scalpel/Resources/bundled-model/.

Usage:  python3 tools/train_sequence_model.py [--out DIR] [--steps N] [--quick]
Requires: torch, transformers, tokenizers, safetensors, numpy, regex. Needs no network and no
GPT-2 files. About 8 minutes on 2 idle CPU cores (1200 steps).
"""

import os

# Determinism and a fair share of a 2-core machine; must be set before tokenizers/torch load.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import ByteLevelBPETokenizer

import transformers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

EOT = "<|endoftext|>"
SEED = 1234            # corpus, tokenizer corpus order, data order
TORCH_SEED = 4321      # model initialisation
VAL_SEED = 98765       # a separate validation corpus

# ----------------------------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------------------------
NUMBERS = [str(i) for i in range(1, 101)]
NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                "eighteen", "nineteen", "twenty"]
NUMBER_WORDS_CAP = [w.capitalize() for w in NUMBER_WORDS]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
            "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
            "seventeenth", "eighteenth", "nineteenth", "twentieth"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
LOWER = [chr(c) for c in range(ord("a"), ord("z") + 1)]
UPPER = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
NAMES = ["Adam", "Bob", "Claire", "Don", "Eve", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kate",
         "Leo", "Mary", "Nick", "Olga", "Paul", "Quinn", "Rose", "Sam", "Tom", "Uma", "Victor",
         "Wendy", "Xavier", "Yara", "Zoe", "Alice", "Ben", "Carl", "Dana", "Emma", "Fred", "Gina",
         "Hugo", "Iris", "John", "Kim", "Lucy", "Max", "Nora"]

# Item lists whose members must each be ONE token, with and without a leading space
# (the vector-arithmetic feature needs single-token items; prompts start with the bare form).
SINGLE_TOKEN_FAMILIES = {
    "digits": NUMBERS, "number_words": NUMBER_WORDS, "number_words_capitalised": NUMBER_WORDS_CAP,
    "ordinals": ORDINALS, "months": MONTHS, "days": DAYS, "letters": LOWER,
    "letters_upper": UPPER, "names": NAMES,
}

# Distractor vocabulary (simple English).
NOUNS = ["cat", "dog", "bird", "house", "tree", "car", "book", "apple", "river", "stone", "chair",
         "table", "window", "garden", "flower", "letter", "horse", "song", "ship", "road", "cup",
         "lamp", "door", "ball", "shoe", "coat", "field", "cloud", "hill", "boat", "cake", "hat",
         "key", "box", "card", "pen", "bag", "farm", "town", "lake", "bread", "train", "clock",
         "shirt", "plate", "egg", "fish", "star", "word", "game"]
ADJECTIVES = ["red", "green", "blue", "old", "new", "big", "small", "happy", "sad", "tall", "short",
              "warm", "cold", "quiet", "loud", "bright", "dark", "young", "kind", "fast", "slow",
              "clean", "soft", "hard", "sweet", "brown", "white", "black", "long", "heavy"]
VERBS = ["saw", "liked", "found", "made", "took", "wanted", "painted", "carried", "opened", "lost",
         "bought", "sold", "read", "wrote", "moved", "washed", "fixed", "dropped", "kept", "shared",
         "cleaned", "counted", "watched", "built", "drew"]
PLACES = ["park", "market", "school", "station", "library", "beach", "office", "kitchen", "city",
          "village", "museum", "shop"]
SUBJECTS = ["the cat", "a dog", "my friend", "the teacher", "our team", "the bird", "a farmer",
            "the child", "my sister", "his brother", "the old man", "a young girl", "the doctor",
            "her mother", "the baker", "we", "they", "I", "you"]
ENGLISH_WORDS = NOUNS + ADJECTIVES + VERBS + PLACES + ["the", "a", "and", "is", "was", "in", "on",
                                                        "of", "to", "with", "next", "then", "later"]

# ----------------------------------------------------------------------------------------------
# Held-out evaluation prompts
# ----------------------------------------------------------------------------------------------

def window(items, start, k=4, step=1, wrap=False):
    """Items start, start+step, ... (k of them) and the answer that follows; None if it runs off."""
    idx = [start + i * step for i in range(k + 1)]
    if wrap:
        idx = [i % len(items) for i in idx]
    elif idx[-1] >= len(items):
        return None
    seq = [items[i] for i in idx]
    return " ".join(seq[:k]), " " + seq[k]


def is_digit_prompt(words, start, k=4):
    """'<w0> is s. <w1> is s+1. ... <w_{k}> is' -> ' s+k' (words: k+1 of them)."""
    parts = [f"{words[i]} is {start + i}." for i in range(k)]
    return " ".join(parts) + f" {words[k]} is", f" {start + k}"


def build_heldout():
    """(family, source, description, [(prompt, answer), ...]) in a fixed order."""
    fams = []

    def add(name, source, desc, pairs):
        fams.append((name, source, desc, [p for p in pairs if p is not None]))

    add("digits", "study", "'1 2 3 4' -> ' 5' ... '20 21 22 23' -> ' 24' (study section 3)",
        [window(NUMBERS, s - 1) for s in range(1, 21)])
    add("number_words", "study", "'one two three four' -> ' five' ... 'six seven eight nine' -> ' ten'",
        [window(NUMBER_WORDS, s) for s in range(0, 6)])
    add("months", "study", "windows of four months -> next month, up to ' December'",
        [window(MONTHS, s) for s in range(0, 8)])
    add("days", "study", "windows of four days starting Monday..Thursday -> next day (wrapping)",
        [window(DAYS, s, wrap=True) for s in range(0, 4)])
    add("letters", "study", "'a b c d' -> ' e' ... 'g h i j' -> ' k' (the study's 7 letter prompts)",
        [window(LOWER, s) for s in range(0, 7)])
    add("names_is_digit", "study",
        "'Adam is s. Bob is s+1. Claire is s+2. Don is s+3. Eve is' -> ' s+4', s = 1..10 (section 6)",
        [is_digit_prompt(["Adam", "Bob", "Claire", "Don", "Eve"], s) for s in range(1, 11)])
    add("word_is_digit", "study",
        "'One is 1. Two is 2. Three is 3. Four is 4. Five is' -> ' 5', starts One..Six",
        [is_digit_prompt(NUMBER_WORDS_CAP[s - 1:], s) for s in range(1, 7)])
    add("word_is_digit_lower", "study",
        "'one is 1. two is 2. three is 3. four is 4. five is' -> ' 5', starts one..six",
        [is_digit_prompt(NUMBER_WORDS[s - 1:], s) for s in range(1, 7)])
    add("digits_step2", "extra", "'1 3 5 7' -> ' 9' ... '10 12 14 16' -> ' 18' (starts 1..10)",
        [window(NUMBERS, s - 1, step=2) for s in range(1, 11)])
    add("digits_high", "extra", "windows of four numbers above 20, up to '96 97 98 99' -> ' 100'",
        [window(NUMBERS, s - 1) for s in (26, 33, 41, 48, 57, 64, 72, 85, 91, 96)])
    add("number_words_high", "extra", "'nine ten eleven twelve' -> ' thirteen' and two more windows",
        [window(NUMBER_WORDS, s) for s in (8, 11, 15)])
    add("ordinals", "extra", "'first second third fourth' -> ' fifth' ... -> ' tenth'",
        [window(ORDINALS, s) for s in range(0, 6)])
    add("letters_upper", "extra", "'A B C D' -> ' E' ... 'G H I J' -> ' K'",
        [window(UPPER, s) for s in range(0, 7)])
    return fams


HELDOUT = build_heldout()
HELDOUT_PROMPTS = [p for _, _, _, pairs in HELDOUT for p, _ in pairs]


# The item list of each sequence family (the is-digit families are blocked by prefix instead).
FAMILY_ITEMS = {"digits": NUMBERS, "digits_step2": NUMBERS, "digits_high": NUMBERS,
                "number_words": NUMBER_WORDS, "number_words_high": NUMBER_WORDS,
                "ordinals": ORDINALS, "months": MONTHS, "days": DAYS, "letters": LOWER,
                "letters_upper": UPPER}

# Held-out rule, part 1 (sequence families): at a document or line start, the first item of a
# held-out prompt is never followed by a space ('1 2 ...', but also '1 7 3', '1 cats were ...',
# 'A dog ...'). The same items may start a comma-separated list ('1, 2, 3').
BLOCK_FIRST_ITEMS = sorted({p.split(" ")[0] for fam, _, _, pairs in HELDOUT if fam in FAMILY_ITEMS
                            for p, _ in pairs})
# Part 2 (is-digit families): no line starts with the first two sentences of a held-out prompt
# ('Adam is 1. Bob is 2.').
BLOCK_PREFIXES = sorted({" ".join(p.split(" ")[:6]) for fam, _, _, pairs in HELDOUT
                         if fam not in FAMILY_ITEMS for p, _ in pairs})


def violates_heldout(text):
    """True if the document, or any line of it, begins like a held-out prompt (see above); a
    fortiori if it starts with a held-out prompt.

    Blocking only the full prompts is not enough. Documents that start at a held-out start point
    and survive are exactly those that stop or deviate before the prompt's last item, and the
    model learns that shortcut (it answered <|endoftext|> to '1 2 3 4'). Blocking at two items
    ('1 2') is not enough either: the lists that still start with a bare '1' are then all random,
    descending or shuffled, and the model learns that too (and from '5 cats were in the park.'
    that a bare '5' starts a sentence). So no line starts with a held-out first item followed by
    a space, whatever follows; comma-separated lists are not affected."""
    for line in text.split("\n"):
        if line.split(" ", 1)[0] in BLOCK_FIRST_ITEMS and " " in line:
            return True
        for bp in BLOCK_PREFIXES:
            if line.startswith(bp):
                return True
    for p in HELDOUT_PROMPTS:          # implied by the above; kept as the plain statement
        if text.startswith(p):
            return True
    return False


HELDOUT_RULE = (
    "A generated document is rejected and redrawn when the document, or any line of it, (a) starts "
    "with a held-out prompt, (b) starts with the first item of a held-out sequence prompt followed "
    "by a space, whatever follows ('1 2', '1 7 3', 'A dog', 'May was warm'), or (c) starts with "
    "the first two sentences of a held-out is-digit prompt ('Adam is 1. Bob is 2.'). "
    "Comma-separated lists ('1, 2, 3, 4, 5') and labelled lists ('1. bread') are not blocked. "
    "The script then checks on tokens that no held-out prompt's token sequence occurs anywhere in "
    "the training stream (so none follows an <|endoftext|>) and stops if one does.")

REFERENCE_PROMPTS = [
    "1 2 3 4",
    "one two three four",
    "January February March April",
    "Monday Tuesday Wednesday Thursday",
    "Adam is 1. Bob is 2. Claire is 3. Don is 4. Eve is",
    "One is 1. Two is 2. Three is 3. Four is 4. Five is",
]


# ----------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------

class Corpus:
    def __init__(self, seed):
        self.r = random.Random(seed)

    # --- helpers -------------------------------------------------------------------------------
    def sentence(self):
        r = self.r
        s = r.choice(SUBJECTS)
        t = r.randrange(15)
        if t == 0:
            out = f"{s} {r.choice(VERBS)} {r.choice(['a', 'the', 'my', 'one'])} {r.choice(ADJECTIVES)} {r.choice(NOUNS)}"
        elif t == 1:
            out = f"{s} went to the {r.choice(PLACES)} on {r.choice(DAYS)}"
        elif t == 2:
            out = f"{r.choice(NAMES)} was born in {r.choice(MONTHS)}"
        elif t == 3:
            out = f"{s} {r.choice(VERBS)} {r.choice(NUMBERS[1:30])} {r.choice(NOUNS)}s"
        elif t == 4:
            out = f"{r.choice(NAMES)} is {r.choice(ADJECTIVES)}"
        elif t == 5:
            out = f"the {r.choice(NOUNS)} is {r.choice(ADJECTIVES)}"
        elif t == 6:
            out = f"{s} came {r.choice(ORDINALS)} in the race"
        elif t == 7:
            out = f"there are {r.choice(NUMBER_WORDS)} {r.choice(NOUNS)}s in the {r.choice(PLACES)}"
        elif t == 8:
            out = f"{r.choice(NAMES)} and {r.choice(NAMES)} {r.choice(VERBS)} the {r.choice(NOUNS)}"
        elif t == 9:
            out = f"on {r.choice(DAYS)} {s} {r.choice(VERBS)} a {r.choice(NOUNS)}"
        elif t == 10:
            out = f"in {r.choice(MONTHS)} the {r.choice(NOUNS)} was {r.choice(ADJECTIVES)}"
        elif t == 11:
            out = f"{s} {r.choice(VERBS)} the letter {r.choice(UPPER)}"
        elif t == 12:
            out = f"{r.choice(NUMBERS[:30])} {r.choice(NOUNS)}s were in the {r.choice(PLACES)}"
        elif t == 13:
            out = f"{r.choice(MONTHS)} was {r.choice(ADJECTIVES)}"
        else:
            out = f"{r.choice(DAYS)} is a {r.choice(ADJECTIVES)} day"
        return out[0].upper() + out[1:] + "."

    def sentences(self, lo=1, hi=3):
        return " ".join(self.sentence() for _ in range(self.r.randint(lo, hi)))

    def family_items(self):
        """A random (items, wrap, max_step) family for sequence documents."""
        r = self.r
        f = r.choices(["digits", "number_words", "ordinals", "months", "days", "lower", "upper"],
                      weights=[30, 12, 8, 12, 10, 8, 6])[0]
        return f, {"digits": (NUMBERS, False), "number_words": (NUMBER_WORDS, False),
                   "ordinals": (ORDINALS, False), "months": (MONTHS, True), "days": (DAYS, True),
                   "lower": (LOWER, False), "upper": (UPPER, False)}[f]

    def run(self, items, wrap, length, step=1):
        """An ascending run of `length` items with `step`, or None if it cannot fit."""
        r = self.r
        span = (length - 1) * step
        if wrap:
            s = r.randrange(len(items))
            return [items[(s + i * step) % len(items)] for i in range(length)]
        if span >= len(items):
            return None
        s = r.randrange(len(items) - span)
        return [items[s + i * step] for i in range(length)]

    def ascending(self, family=None):
        r = self.r
        if family is None:
            family, (items, wrap) = self.family_items()
        else:
            items, wrap = {"digits": (NUMBERS, False), "number_words": (NUMBER_WORDS, False),
                           "ordinals": (ORDINALS, False), "months": (MONTHS, True),
                           "days": (DAYS, True), "lower": (LOWER, False),
                           "upper": (UPPER, False)}[family]
        step = 1
        if family == "digits" and r.random() < 0.3:
            step = 2
        while True:
            seq = self.run(items, wrap, r.randint(2, 12 if family == "digits" else 10), step)
            if seq is not None:
                return " ".join(seq)

    def place(self, seq, family):
        """Put a sequence at the document start, after a lead-in, or after a sentence."""
        r = self.r
        u = r.random()
        lead = {"digits": ["Count: ", "The numbers are ", "She counted ", "Numbers: ", "He wrote "],
                "number_words": ["Count: ", "The words are ", "She counted "],
                "ordinals": ["The places are ", "Order: "],
                "months": ["Months: ", "The months are ", "We met in "],
                "days": ["Days: ", "The days are ", "We worked on "],
                "lower": ["Letters: ", "The letters are "],
                "upper": ["Letters: ", "The letters are "]}[family] + ["List: ", "Here is a list: ", "Look: "]
        if u < 0.55:
            text = seq
        elif u < 0.8:
            text = r.choice(lead) + seq
        else:
            text = self.sentence() + " " + seq
        v = r.random()
        if v < 0.25:
            text += "."
        elif v < 0.4:
            text += ". " + self.sentence()
        return text

    # --- document types ------------------------------------------------------------------------
    def commas(self, text, p=0.4):
        """With probability p, the same list separated by commas ('1, 2, 3')."""
        return ", ".join(text.split(" ")) if self.r.random() < p else text

    def doc_sequence(self, family):
        return self.place(self.commas(self.ascending(family)), family)

    def doc_names_is_digit(self):
        r = self.r
        k = r.randint(2, 7)
        pool = NAMES if r.random() < 0.8 else NOUNS
        words = r.sample(pool, k)
        if pool is NOUNS:
            words = [w.capitalize() if r.random() < 0.5 else w for w in words]
        s = r.randint(1, 101 - k)
        text = " ".join(f"{w} is {s + i}." for i, w in enumerate(words))
        return text if r.random() < 0.8 else self.sentence() + " " + text

    def doc_word_is_digit(self):
        r = self.r
        k = r.randint(2, 8)
        s = r.randint(1, 21 - k)
        words = NUMBER_WORDS_CAP if r.random() < 0.5 else NUMBER_WORDS
        text = " ".join(f"{words[s - 1 + i]} is {s + i}." for i in range(k))
        return text if r.random() < 0.85 else self.sentence() + " " + text

    def doc_multi(self):
        r = self.r
        parts = []
        for _ in range(r.randint(2, 3)):
            f, _ = self.family_items()
            parts.append(self.ascending(f))
        return r.choice(["\n", ". ", "\n\n"]).join(parts)

    def doc_english(self):
        return self.sentences(1, 4)

    def doc_word_list(self):
        r = self.r
        pool = r.choice([ENGLISH_WORDS, NUMBER_WORDS + ORDINALS, MONTHS + DAYS, LOWER + UPPER,
                         ENGLISH_WORDS + MONTHS + NUMBER_WORDS + NAMES])
        return self.commas(" ".join(r.choice(pool) for _ in range(r.randint(3, 10))))

    def doc_random_numbers(self):
        r = self.r
        return self.commas(" ".join(r.choice(NUMBERS[: r.choice([20, 100, 100])])
                                    for _ in range(r.randint(3, 10))))

    def doc_repeated(self):
        r = self.r
        _, (items, _) = self.family_items()
        return " ".join([r.choice(items)] * r.randint(3, 8))

    def doc_descending(self):
        f, (items, wrap) = self.family_items()
        seq = self.ascending(f).split(" ")
        return self.place(" ".join(reversed(seq)), f)

    def doc_shuffled(self):
        r = self.r
        f, _ = self.family_items()
        seq = self.ascending(f).split(" ")
        r.shuffle(seq)
        return " ".join(seq)

    def doc_corrupted(self):
        """An ascending run whose last item repeats (the study's corruption '1 2 3 3')."""
        r = self.r
        f, _ = self.family_items()
        seq = self.ascending(f).split(" ")
        seq += [seq[-1]] * r.randint(1, 3)
        return " ".join(seq)

    def doc_labelled(self):
        """A labelled list, one entry per line: '1. bread\n2. milk', 'a) red\nb) blue',
        'May: warm\nJune: hot'. Labels are consecutive items of a family."""
        r = self.r
        f, (items, wrap) = self.family_items()
        labels = self.run(items, wrap, r.randint(2, 6)) or items[:2]
        sep = {"digits": ". ", "lower": ") ", "upper": ". "}.get(f, ": ")
        pool = r.choice([NOUNS, ADJECTIVES, NAMES])
        return "\n".join(f"{lab}{sep}{r.choice(pool)}" for lab in labels)

    def doc_names_random(self):
        r = self.r
        k = r.randint(2, 6)
        words = r.sample(NAMES, k)
        if r.random() < 0.5:
            vals = [str(r.randint(1, 100)) for _ in words]
        else:
            vals = [r.choice(ADJECTIVES) for _ in words]
        return " ".join(f"{w} is {v}." for w, v in zip(words, vals))

    DOC_TYPES = [
        ("seq_digits", 14), ("seq_number_words", 6), ("seq_ordinals", 4), ("seq_months", 6),
        ("seq_days", 5), ("seq_lower", 4), ("seq_upper", 3), ("names_is_digit", 8),
        ("word_is_digit", 5), ("multi", 5),
        ("english", 12), ("word_list", 5), ("random_numbers", 5), ("repeated", 3),
        ("descending", 4), ("names_random", 3), ("corrupted", 3), ("shuffled", 3),
        ("labelled", 5),
    ]

    def document(self):
        r = self.r
        kind = r.choices([k for k, _ in self.DOC_TYPES], weights=[w for _, w in self.DOC_TYPES])[0]
        if kind.startswith("seq_"):
            return kind, self.doc_sequence(kind[4:])
        return kind, getattr(self, "doc_" + kind)()

    def documents(self, n):
        """n documents (text without the leading <|endoftext|>), none violating the held-out rule."""
        docs, kinds, rejected = [], [], {}
        while len(docs) < n:
            kind, text = self.document()
            if violates_heldout(text):
                rejected[kind] = rejected.get(kind, 0) + 1
                continue
            docs.append(text)
            kinds.append(kind)
        return docs, kinds, rejected

# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------

def train_tokenizer(docs, vocab_size, out_dir):
    """Byte-level BPE, GPT-2 pre-tokenization; <|endoftext|> appended as the last id."""
    r = random.Random(SEED + 1)
    # Family items are repeated (bare and with a leading space) so that their merges are learned
    # first; this only shapes the vocabulary, the language model never sees these lines.
    boost = []
    for items in SINGLE_TOKEN_FAMILIES.values():
        for _ in range(60):
            seq = list(items)
            r.shuffle(seq)
            boost.append(" ".join(seq))
            boost.append("\n".join(seq))

    def it():
        yield from docs
        yield from boost

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(it(), vocab_size=vocab_size - 1, min_frequency=2,
                            special_tokens=[], show_progress=False)
    tmp = Path(tempfile.mkdtemp(prefix="scalpel-bpe-"))
    tok.save_model(str(tmp))
    vocab = json.loads((tmp / "vocab.json").read_text(encoding="utf-8"))
    merges_text = (tmp / "merges.txt").read_text(encoding="utf-8")
    shutil.rmtree(tmp)
    assert EOT not in vocab
    vocab[EOT] = len(vocab)
    ordered = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    assert list(ordered.values()) == list(range(len(ordered))), "vocab ids are not 0..n-1"
    (out_dir / "vocab.json").write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")
    if not merges_text.startswith("#version"):
        merges_text = "#version: 0.2\n" + merges_text
    (out_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    return len(ordered)


class Encoder:
    """The tokenizer as Scalpel uses it: byte-level BPE from vocab.json + merges.txt."""

    def __init__(self, folder):
        self.tok = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
        self.vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        self.eot = self.vocab[EOT]
        self.hf = GPT2TokenizerFast.from_pretrained(str(folder))

    def encode(self, text):
        return self.tok.encode(text).ids

    def encode_batch(self, texts):
        return [e.ids for e in self.tok.encode_batch(texts)]

    def with_bos(self, text):
        return [self.eot] + self.encode(text)

    def decode(self, ids):
        return self.tok.decode(ids)


class ReferenceGPT2BPE:
    """OpenAI's GPT-2 encoder algorithm (encoder.py), written out to cross-check the files:
    bytes -> unicode table, GPT-2 regex pre-tokenization, lowest-rank merge first."""

    PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

    def __init__(self, folder):
        import regex
        self.re = regex.compile(self.PAT)
        self.vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
        pairs = [tuple(l.split(" ")) for l in lines if l and not l.startswith("#version")]
        self.ranks = {p: i for i, p in enumerate(pairs)}
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
            + list(range(ord("\xae"), ord("\xff") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        self.byte_encoder = dict(zip(bs, (chr(c) for c in cs)))

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            best = min(((self.ranks.get((a, b), math.inf), i)
                        for i, (a, b) in enumerate(zip(parts, parts[1:]))))
            if best[0] == math.inf:
                break
            a, b = parts[best[1]], parts[best[1] + 1]
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def encode(self, text):
        ids = []
        for piece in self.re.findall(text):
            word = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.vocab[t] for t in self.bpe(word))
        return ids


def check_tokenizer(enc, docs_sample, folder):
    """Fail loudly unless every family item and answer is one token and both readers agree."""
    problems = []
    for fam, items in SINGLE_TOKEN_FAMILIES.items():
        for it in items:
            for form in (it, " " + it):
                ids = enc.encode(form)
                if len(ids) != 1:
                    problems.append(f"{fam}: {form!r} -> {len(ids)} tokens {ids}")
    for fam, _, _, pairs in HELDOUT:
        for prompt, answer in pairs:
            if len(enc.encode(answer)) != 1:
                problems.append(f"held-out answer of {fam}: {answer!r} is not one token")
    if enc.hf.convert_tokens_to_ids(EOT) != enc.eot or enc.eot != len(enc.vocab) - 1:
        problems.append("<|endoftext|> is not the last id in both readers")
    ref = ReferenceGPT2BPE(folder)
    for text in docs_sample + HELDOUT_PROMPTS + REFERENCE_PROMPTS:
        a, b, c = enc.encode(text), enc.hf.encode(text), ref.encode(text)
        if not a == b == c:
            problems.append(f"tokenizers, transformers and the reference BPE disagree on {text!r}: "
                            f"{a} vs {b} vs {c}")
            break
    if problems:
        print("TOKENIZER CHECK FAILED:", *problems[:40], sep="\n  ", file=sys.stderr)
        sys.exit(1)

# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def pack(token_docs, block, pad_id):
    """Greedy packing of whole documents into rows of `block` tokens; each row starts at a
    document start (its <|endoftext|>); the tail is padded and ignored by the loss."""
    rows, labels = [], []
    cur = []
    for d in token_docs:
        if len(d) > block:
            continue
        if len(cur) + len(d) > block:
            rows.append(cur + [pad_id] * (block - len(cur)))
            labels.append(cur + [-100] * (block - len(cur)))
            cur = []
        cur = cur + d
    if cur:
        rows.append(cur + [pad_id] * (block - len(cur)))
        labels.append(cur + [-100] * (block - len(cur)))
    return torch.tensor(rows, dtype=torch.long), torch.tensor(labels, dtype=torch.long)


def count_subsequence(stream, pattern):
    """Occurrences of `pattern` (a list of ids) as a contiguous run in the 1-D array `stream`."""
    p = np.asarray(pattern, dtype=stream.dtype)
    cand = np.nonzero(stream[: len(stream) - len(p) + 1] == p[0])[0]
    n = 0
    for i in cand:
        if np.array_equal(stream[i: i + len(p)], p):
            n += 1
    return n

# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def last_logits(model, ids):
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x).logits[0, -1].float()


@torch.no_grad()
def evaluate(model, enc):
    results, families = [], []
    for fam, source, desc, pairs in HELDOUT:
        correct = 0
        for prompt, answer in pairs:
            ids = enc.with_bos(prompt)
            aid = enc.encode(answer)[0]
            logits = last_logits(model, ids)
            pred = int(torch.argmax(logits))
            rank = int((logits > logits[aid]).sum())
            ok = pred == aid
            correct += ok
            results.append({"family": fam, "prompt": prompt, "answer": answer, "token_ids": ids,
                            "answer_id": aid, "correct": bool(ok), "predicted_id": pred,
                            "predicted": enc.decode([pred]), "answer_rank": rank})
        families.append({"name": fam, "source": source, "description": desc,
                         "correct": correct, "total": len(pairs),
                         "accuracy": round(correct / len(pairs), 4)})
    return results, families


@torch.no_grad()
def mean_loss(model, rows, labels, batch=64):
    tot, n = 0.0, 0
    for i in range(0, len(rows), batch):
        x, y = rows[i: i + batch], labels[i: i + batch]
        out = model(input_ids=x, labels=y)
        k = int((y[:, 1:] != -100).sum())
        tot += float(out.loss) * k
        n += k
    return tot / n

# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

@dataclass
class Data:
    """The corpus, its tokenizer and the packed rows the model trains and validates on."""
    docs: list
    kinds: list
    rejected: dict
    enc: "Encoder"
    vocab_size: int
    rows: torch.Tensor
    labels: torch.Tensor
    val_rows: torch.Tensor
    val_labels: torch.Tensor
    stream: np.ndarray              # every training token, documents concatenated


@dataclass
class Evaluation:
    """What the reloaded model scores; the model card and heldout.json report it."""
    train_loss: float
    val_loss: float
    results: list
    families: list
    eager_vs_sdpa: float


def parse_args(repo):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=repo / "Sources/Scalpel/Resources/bundled-model")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--quick", action="store_true", help="a tiny run to test the script")
    ap.add_argument("--no-resume", action="store_true",
                    help="ignore a checkpoint left by an interrupted run with the same settings")
    args = ap.parse_args()
    if args.quick:
        args.steps = 30
    return args


def make_data(args, work):
    """Steps 1 and 2: generate the corpus, train the tokenizer on it, pack the rows."""
    n_docs = int(args.steps * args.batch * args.block / 19) + 2000   # ~19 tokens per document
    docs, kinds, rejected = Corpus(SEED).documents(n_docs)
    val_docs, _, _ = Corpus(VAL_SEED).documents(3000)
    print(f"corpus: {len(docs)} documents, rejected for the held-out rule: {sum(rejected.values())}",
          flush=True)

    vocab_size = train_tokenizer(docs, args.vocab, work)
    enc = Encoder(work)
    check_tokenizer(enc, docs[:2000], work)
    print(f"tokenizer: {vocab_size} tokens, <|endoftext|> = {enc.eot}", flush=True)

    token_docs = [[enc.eot] + ids for ids in enc.encode_batch(docs)]
    val_token_docs = [[enc.eot] + ids for ids in enc.encode_batch(val_docs)]
    rows, labels = pack(token_docs, args.block, enc.eot)
    val_rows, val_labels = pack(val_token_docs, args.block, enc.eot)
    stream = np.fromiter((t for d in token_docs for t in d), dtype=np.int32)
    print(f"data: {len(stream)} tokens in {len(rows)} rows of {args.block}", flush=True)
    return Data(docs, kinds, rejected, enc, vocab_size, rows, labels, val_rows, val_labels, stream)


def check_heldout_tokens(data):
    """The held-out guarantee, checked on tokens: no held-out prompt's token sequence occurs
    anywhere in the training stream, and none follows an <|endoftext|> (a document prefix).
    Exits on a leak; returns how often each prompt occurs as text inside a document."""
    leaks = {}
    text_occurrences = {}
    for p in HELDOUT_PROMPTS:
        ids = data.enc.encode(p)
        n_any = count_subsequence(data.stream, ids)
        n_prefix = count_subsequence(data.stream, [data.enc.eot] + ids)
        if n_prefix or n_any:
            leaks[p] = (n_prefix, n_any)
        text_occurrences[p] = sum(1 for d in data.docs if p in d)
    if leaks:
        print("HELD-OUT LEAK:", leaks, file=sys.stderr)
        sys.exit(1)
    return text_occurrences


def make_model(args, data):
    """Step 3's model (seeded) and its AdamW optimiser: weight decay on matrices except `wpe`."""
    config = GPT2Config(
        vocab_size=data.vocab_size, n_positions=args.block, n_embd=args.d_model,
        n_layer=args.layers, n_head=args.heads, n_inner=None, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        initializer_range=0.02, bos_token_id=data.enc.eot, eos_token_id=data.enc.eot,
        tie_word_embeddings=True, use_cache=True)
    torch.manual_seed(TORCH_SEED)
    model = GPT2LMHeadModel(config)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    return config, model, opt


def learning_rate(args, step, min_ratio=0.05):
    """Linear warm-up over the first 5% of the steps, then cosine decay to min_ratio of the peak."""
    warmup = max(1, args.steps // 20)
    if step < warmup:
        return args.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, args.steps - warmup)
    return args.lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def train(args, model, opt, data):
    """Step 3's loop. Returns the per-step losses and the seconds of optimisation.

    Checkpoints let an interrupted run (a shared machine) resume where it stopped, with the same
    result: model, optimiser, data order and generator state are all restored. They are keyed by
    this script's text and the arguments, and deleted when training completes."""
    gen = torch.Generator().manual_seed(SEED)
    order = torch.randperm(len(data.rows), generator=gen)
    pos = 0
    losses = []
    start_step = 0
    spent = 0.0                      # optimisation seconds of earlier, interrupted attempts
    key = hashlib.sha256(Path(__file__).read_bytes()
                         + json.dumps({k: str(v) for k, v in sorted(vars(args).items())
                                       if k != "out"}).encode()).hexdigest()[:16]
    ckpt = Path(tempfile.gettempdir()) / f"scalpel-train-{key}.pt"
    if ckpt.exists() and not args.no_resume:
        st = torch.load(ckpt, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        order, pos, losses, start_step, spent = (st["order"], st["pos"], st["losses"],
                                                 st["step"], st["spent"])
        print(f"resuming from {ckpt} at step {start_step}", flush=True)
    t_train = time.time() - spent
    for step in range(start_step, args.steps):
        if pos + args.batch > len(order):
            order = torch.randperm(len(data.rows), generator=gen)
            pos = 0
        idx = order[pos: pos + args.batch]
        pos += args.batch
        for g in opt.param_groups:
            g["lr"] = learning_rate(args, step)
        loss = model(input_ids=data.rows[idx], labels=data.labels[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0 or step == 0:
            el = time.time() - t_train
            print(f"step {step + 1:5d}/{args.steps}  loss {np.mean(losses[-50:]):.4f}  "
                  f"lr {learning_rate(args, step):.2e}  {el:6.1f}s", flush=True)
        if (step + 1) % 150 == 0 and step + 1 < args.steps:
            model.eval()
            _, fams = evaluate(model, data.enc)
            model.train()
            print("   held-out:", " ".join(f"{f['name']} {f['correct']}/{f['total']}" for f in fams),
                  flush=True)
        if (step + 1) % 100 == 0 and step + 1 < args.steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "gen": gen.get_state(), "order": order, "pos": pos, "losses": losses,
                        "step": step + 1, "spent": time.time() - t_train}, tmp)
            os.replace(tmp, ckpt)
    train_seconds = time.time() - t_train
    if ckpt.exists():
        ckpt.unlink()
    return losses, train_seconds


def save_model(model, work, out):
    """Step 5's weights and tokenizer files, replacing this script's earlier output in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors", "generation_config.json", "vocab.json",
              "merges.txt", "MODEL_CARD.md", "heldout.json", "reference_logits.safetensors"):
        if (out / f).exists():
            (out / f).unlink()
    model.eval()
    model.save_pretrained(str(out))
    if (out / "generation_config.json").exists():
        (out / "generation_config.json").unlink()       # not needed by Scalpel
    shutil.copy(work / "vocab.json", out / "vocab.json")
    shutil.copy(work / "merges.txt", out / "merges.txt")

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert "lm_head.weight" not in keys and "transformer.wte.weight" in keys, keys[:5]


def load_saved(out, attention):
    model = GPT2LMHeadModel.from_pretrained(str(out), attn_implementation=attention)
    model.eval()
    return model


def write_reference_logits(out, enc, reloaded, sdpa):
    """Last-position logits (eager attention, float32) of REFERENCE_PROMPTS, for Scalpel's parity
    test. Returns the prompts' ids and how far PyTorch's SDPA attention is from eager."""
    ref_ids = [enc.with_bos(p) for p in REFERENCE_PROMPTS]
    ref_logits = torch.stack([last_logits(reloaded, ids) for ids in ref_ids]).contiguous()
    sdpa_logits = torch.stack([last_logits(sdpa, ids) for ids in ref_ids])
    eager_vs_sdpa = float((ref_logits - sdpa_logits).abs().max())
    maxlen = max(len(i) for i in ref_ids)
    ref_tok = torch.full((len(ref_ids), maxlen), -1, dtype=torch.int32)
    for i, ids in enumerate(ref_ids):
        ref_tok[i, : len(ids)] = torch.tensor(ids, dtype=torch.int32)
    save_file({"logits": ref_logits.to(torch.float32), "token_ids": ref_tok,
               "lengths": torch.tensor([len(i) for i in ref_ids], dtype=torch.int32)},
              str(out / "reference_logits.safetensors"),
              metadata={"prompts": json.dumps(REFERENCE_PROMPTS)})   # one key: byte-identical files
    return ref_ids, eager_vs_sdpa


def write_heldout(out, enc, vocab_size, ev, ref_ids):
    """heldout.json: the held-out prompts, their results, per-family accuracy, the references."""
    total_correct = sum(f["correct"] for f in ev.families)
    total = sum(f["total"] for f in ev.families)
    study = [f for f in ev.families if f["source"] == "study"]
    maxlen = max(len(i) for i in ref_ids)
    heldout = {
        "format": "scalpel-heldout",
        "format_version": 1,
        "model": "bundled-model",
        "bos": {"token": EOT, "id": enc.eot},
        "vocab_size": vocab_size,
        "encoding": "token_ids = [bos.id] + BPE(prompt); answers are single tokens with a leading space",
        "correct_if": "argmax of the last position's logits == answer_id",
        "heldout_rule": HELDOUT_RULE,
        "families": ev.families,
        "totals": {"correct": total_correct, "total": total,
                   "accuracy": round(total_correct / total, 4),
                   "study_correct": sum(f["correct"] for f in study),
                   "study_total": sum(f["total"] for f in study)},
        "prompts": ev.results,
        "reference_logits": {
            "file": "reference_logits.safetensors",
            "tensors": {"logits": f"float32 [{len(ref_ids)}, {vocab_size}], last position",
                        "token_ids": f"int32 [{len(ref_ids)}, {maxlen}], padded with -1",
                        "lengths": f"int32 [{len(ref_ids)}]"},
            "attention": "eager (float32)",
            "tolerance": 1e-4,
            "prompts": [{"row": i, "prompt": p, "token_ids": ids}
                        for i, (p, ids) in enumerate(zip(REFERENCE_PROMPTS, ref_ids))],
        },
    }
    (out / "heldout.json").write_text(json.dumps(heldout, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")


def folder_sizes(out):
    return {f.name: f.stat().st_size for f in sorted(out.iterdir()) if f.is_file()}


def main():
    args = parse_args(Path(__file__).resolve().parent.parent)
    t_start = time.time()
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(TORCH_SEED)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    out = args.out
    work = Path(tempfile.mkdtemp(prefix="scalpel-train-"))

    # 1–2. Corpus, tokenizer, rows; the held-out guarantee checked on tokens.
    data = make_data(args, work)
    text_occurrences = check_heldout_tokens(data)

    # 3. Model and training.
    config, model, opt = make_model(args, data)
    losses, train_seconds = train(args, model, opt, data)

    # 4–5. Save, reload from disk, evaluate, write the references.
    save_model(model, work, out)
    shutil.rmtree(work)
    enc = Encoder(out)
    reloaded, sdpa = load_saved(out, "eager"), load_saved(out, "sdpa")
    val_loss = mean_loss(reloaded, data.val_rows, data.val_labels)
    results, families = evaluate(reloaded, enc)
    ref_ids, eager_vs_sdpa = write_reference_logits(out, enc, reloaded, sdpa)
    ev = Evaluation(float(np.mean(losses[-50:])), val_loss, results, families, eager_vs_sdpa)
    write_heldout(out, enc, data.vocab_size, ev, ref_ids)

    # The model card.
    total_seconds = time.time() - t_start
    n_params = sum(p.numel() for p in model.parameters())
    sha = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    write_card(out, args, config, n_params, enc, data, text_occurrences, ev, train_seconds,
               total_seconds, folder_sizes(out), sha)

    total_correct = sum(f["correct"] for f in families)
    total = sum(f["total"] for f in families)
    sizes = folder_sizes(out)
    print(f"\ntrain loss {ev.train_loss:.4f}  validation loss {val_loss:.4f}  "
          f"training {train_seconds:.0f}s  total {total_seconds:.0f}s")
    for f in families:
        print(f"  {f['name']:22s} {f['correct']:3d}/{f['total']:<3d} {f['source']}")
    print(f"  {'total':22s} {total_correct:3d}/{total}")
    print("files:", sizes, "total", sum(sizes.values()), "bytes")
    if sum(sizes.values()) > 10 * 1024 * 1024:
        print("bundled model folder exceeds 10 MB", file=sys.stderr)
        sys.exit(1)


def write_card(out, args, config, n_params, enc, data, text_occurrences, ev, train_seconds,
               total_seconds, sizes, sha):
    vocab_size, rejected = data.vocab_size, data.rejected
    n_docs, n_tokens, n_rows = len(data.docs), len(data.stream), len(data.rows)
    epochs = args.steps * args.batch / len(data.rows)
    kinds_count = {}
    for k in data.kinds:
        kinds_count[k] = kinds_count.get(k, 0) + 1
    families, train_loss, val_loss, eager_vs_sdpa = ev.families, ev.train_loss, ev.val_loss, ev.eager_vs_sdpa
    total_correct = sum(f["correct"] for f in families)
    total = sum(f["total"] for f in families)
    lines = []
    w = lines.append
    w("# Scalpel bundled sequence model")
    w("")
    w("A small model of the GPT-2 architecture (Hugging Face `GPT2LMHeadModel`), trained by "
      "`tools/train_sequence_model.py` to continue the kinds of sequences the study examines "
      "(digits, number words, months, days, letters, \"Adam is 1. Bob is 2. ...\", "
      "\"One is 1. Two is 2. ...\"). Scalpel uses it whenever no `--model` is given. It is a toy "
      "for trying the workbench offline, not a substitute for GPT-2 small: its circuits need not "
      "resemble GPT-2's.")
    w("")
    w("## Shape")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| layers | {config.n_layer} |")
    w(f"| d_model | {config.n_embd} |")
    w(f"| heads | {config.n_head} (d_head {config.n_embd // config.n_head}) |")
    w(f"| d_mlp | {4 * config.n_embd} |")
    w(f"| n_positions | {config.n_positions} |")
    w(f"| vocab | {vocab_size} (byte-level BPE; `<|endoftext|>` = {enc.eot}, the last id) |")
    w("| activation | gelu_new |")
    w("| LayerNorm epsilon | 1e-5 |")
    w("| embeddings | tied (`lm_head` = `wte`, not stored) |")
    w(f"| parameters | {n_params:,} |")
    w("| dtype | float32 |")
    w("")
    w("## Files")
    w("")
    w("| file | bytes | content |")
    w("|---|---:|---|")
    desc = {"config.json": "as `save_pretrained` writes it",
            "model.safetensors": f"weights, `transformer.` prefix, float32; SHA-256 `{sha[:16]}…`",
            "vocab.json": "GPT-2 format vocabulary",
            "merges.txt": "GPT-2 format merges (`#version: 0.2` header)",
            "heldout.json": "held-out prompts, per-prompt results, per-family accuracy, reference listing",
            "reference_logits.safetensors": "PyTorch float32 last-position logits for 6 prompts",
            "MODEL_CARD.md": "this file"}
    for name in sorted(set(sizes) | {"MODEL_CARD.md"}):
        b = sizes.get(name)
        w(f"| `{name}` | {b if b is not None else '(this file)'} | {desc.get(name, '')} |")
    w("")
    w("## Recipe")
    w("")
    w(f"- Seeds: corpus and data order {SEED}, model initialisation {TORCH_SEED}, validation corpus "
      f"{VAL_SEED}; `torch.set_num_threads(2)`, `torch.use_deterministic_algorithms(True)`, "
      "`TOKENIZERS_PARALLELISM=false`.")
    w(f"- Versions: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"tokenizers {__import__('tokenizers').__version__}, Python {sys.version.split()[0]}.")
    w(f"- Optimiser: AdamW (betas 0.9/0.98, weight decay 0.05 on matrices except `wpe`), peak "
      f"learning rate {args.lr:g}, linear warm-up {max(1, args.steps // 20)} steps, cosine decay to "
      f"5% of the peak; gradient clipping 1.0; no dropout.")
    w(f"- {args.steps} steps × {args.batch} rows × {args.block} tokens "
      f"({args.steps * args.batch * args.block:,} token slots, {epochs:.2f} epochs over the corpus).")
    w("- Rows: whole documents packed greedily; every row starts with a document's "
      "`<|endoftext|>`; the unused tail is padded and ignored by the loss.")
    w(f"- Training time: {train_seconds:.0f} s of optimisation, {total_seconds:.0f} s for the whole "
      "script (2 CPU threads; the machine was shared with other work).")
    w(f"- Final training loss (mean of the last 50 steps): {train_loss:.4f}. Loss on a separately "
      f"generated validation corpus (seed {VAL_SEED}): {val_loss:.4f} (nats per token).")
    w("")
    w("## Corpus")
    w("")
    w(f"{n_docs:,} generated documents ({n_tokens:,} tokens incl. one `<|endoftext|>` per document, "
      f"{n_rows:,} rows). Every document starts with `<|endoftext|>`, as Scalpel prepends it to every "
      "prompt. Document kinds (count):")
    w("")
    w("| kind | documents | what |")
    w("|---|---:|---|")
    what = {
        "seq_digits": "ascending numbers 1–100, step 1 (70%) or 2, 2–12 items, space-separated",
        "seq_number_words": "one … twenty, 2–10 consecutive items",
        "seq_ordinals": "first … twentieth",
        "seq_months": "months, wrapping after December",
        "seq_days": "days of the week, wrapping after Sunday",
        "seq_lower": "a … z", "seq_upper": "A … Z",
        "names_is_digit": "'Adam is 1. Bob is 2. …': 2–7 names from 40 (20%: common nouns), any start",
        "word_is_digit": "'One is 1. Two is 2. …' capitalised or lowercase, any start",
        "multi": "2–3 ascending sequences of different families, separated by newline or '. '",
        "english": "1–4 simple generated English sentences (mentioning days, months, numbers, ordinals)",
        "word_list": "random word lists (English words, family items, names)",
        "random_numbers": "non-ascending random number lists",
        "repeated": "one item repeated 3–8 times",
        "descending": "descending sequences of any family",
        "names_random": "'Adam is 7. Bob is 3.' or 'Adam is happy.' (non-ascending)",
        "corrupted": "an ascending run whose last item repeats ('1 2 3 3')",
        "shuffled": "a shuffled ascending run",
        "labelled": "a labelled list, one entry per line ('1. bread', 'a) red', 'May: warm')",
    }
    for k, _ in Corpus.DOC_TYPES:
        w(f"| {k} | {kinds_count.get(k, 0):,} | {what[k]} |")
    w("")
    w("Sequence documents start bare (55%), after a lead-in such as `Count: ` (25%) or after a "
      "sentence (20%); some end with `.` or a further sentence. 40% of sequence lists, random "
      "number lists and word lists are separated by commas (`1, 2, 3`) instead of spaces.")
    w("")
    w("## Held-out prompts")
    w("")
    w("The evaluation prompts (all listed in `heldout.json`) are kept out of training as follows. "
      + HELDOUT_RULE + f" {sum(rejected.values()):,} generated documents were rejected and redrawn.")
    w("")
    w("So no training document starts with a held-out prompt, and the exact token sequence of a "
      "held-out prompt (its first item has no leading space) never occurs in training. The same "
      "windows do occur inside longer text, where their first item has a leading space "
      "(`Count: 1 2 3 4 5`): the model has to learn the successor of ` 4` somewhere. "
      f"{sum(1 for v in text_occurrences.values() if v)} of {len(text_occurrences)} held-out "
      f"prompts occur as a substring of some training document in this way "
      f"({sum(text_occurrences.values()):,} occurrences in all).")
    w("")
    w("Why the rule blocks more than the prompts themselves: when only documents starting with the "
      "exact prompt were excluded, the documents that still started at a held-out start point were "
      "exactly those that stop or deviate before the prompt's last item (`1 2 3`), and the model "
      "learned that shortcut, answering `<|endoftext|>` to `1 2 3 4`. Blocking only the first two "
      "items left lists starting with a bare `1` that were all random or descending, with the same "
      "effect. Blocking the bare first items everywhere (commas included) left their embeddings "
      "untrained and the accuracy collapsed. The rule above is the one that worked; it was chosen "
      "by looking at held-out accuracy over a few runs, so these prompts are held out from training "
      "but not from the design of the corpus.")
    w("")
    w("Accuracy is next-token accuracy: the prompt is encoded as `[<|endoftext|>] + BPE(prompt)`, "
      "and it counts as correct when the argmax of the last position's logits is the answer's "
      "single token. Evaluated on the model reloaded from this folder (eager attention, float32).")
    w("")
    w("| family | source | prompts | correct | accuracy | example |")
    w("|---|---|---:|---:|---:|---|")
    for f in families:
        ex = next(p for fam, _, _, pairs in HELDOUT if fam == f["name"] for p in pairs)
        w(f"| {f['name']} | {f['source']} | {f['total']} | {f['correct']} | "
          f"{100 * f['correct'] / f['total']:.0f}% | `{ex[0]}` → `{ex[1]}` |")
    w(f"| **all** | | {total} | {total_correct} | {100 * total_correct / total:.0f}% | |")
    w("")
    w("`study` families are the prompts of the study (sections 3 and 6); `extra` families are "
      "further held-out windows.")
    w("")
    w("## Reference logits")
    w("")
    w("`reference_logits.safetensors` holds `logits` (float32, last position, full vocabulary), "
      "`token_ids` (int32, padded with -1) and `lengths` for the prompts "
      + ", ".join(f"`{p}`" for p in REFERENCE_PROMPTS)
      + f". Computed with eager attention; PyTorch's SDPA attention differs from it by at most "
      f"{eager_vs_sdpa:.1e}. A Swift forward pass should agree within 1e-4.")
    w("")
    w("## Reproduce")
    w("")
    w("```")
    w("python3 tools/train_sequence_model.py")
    w("```")
    w("")
    w("The weights are reproducible bit for bit on the same machine and library versions; other "
      "CPUs or versions may differ in the last bits and hence in the trained weights.")
    (out / "MODEL_CARD.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
