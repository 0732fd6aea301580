#!/usr/bin/env python3
"""Build the tokenizer parity fixtures from Hugging Face GPT2TokenizerFast.

Writes Tests/ScalpelTests/Fixtures/tokenizer/:
  corpus.jsonl        one JSON array per line: [text, ids] or [text, ids, hf_decoded] when
                      Hugging Face's decode(ids) differs from text
  decode.jsonl        [ids, hf_decoded] for id sequences that cut characters apart (invalid UTF-8)
  char_classes.json   the code point ranges the Hugging Face pre-tokenizer treats as letters (L),
                      numbers (N) and whitespace (S); everything else is "other"

Deterministic (fixed seed); rerun after changing it:
    python3 tools/make_tokenizer_corpus.py [--gpt2 /work/shared/gpt2]
Needs transformers + tokenizers, and the real GPT-2 vocab.json and merges.txt (no network).
"""
import argparse
import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SEED = 20240601
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "ScalpelTests" / "Fixtures" / "tokenizer"


def load_tokenizer(folder):
    from transformers import GPT2TokenizerFast
    # transformers 5 takes vocab= / merges=; it silently ignores the older vocab_file= / merges_file=
    # keywords and builds an empty tokenizer, so check that the vocabulary really loaded.
    try:
        tok = GPT2TokenizerFast(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    except TypeError:
        tok = GPT2TokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))
    assert len(tok) == 50257, f"tokenizer did not load the vocabulary (size {len(tok)})"
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode("a<|endoftext|>b") == [64, 50256, 65]
    return tok


# ---------------------------------------------------------------- hand-written pieces

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "Mechanistic interpretability tries to reverse-engineer neural networks into human-understandable algorithms.",
    "In 1969, Neil Armstrong became the first person to walk on the Moon.",
    "She said, \"I don't know what you're talking about,\" and left the room.",
    "Attention heads can copy tokens from earlier positions; induction heads complete repeated patterns.",
    "The residual stream is a shared communication channel between layers.",
    "Mr. Smith paid $3.50 for a cup of coffee at 7:45 a.m. on Tuesday.",
    "E-mail me at john.doe@example.com or visit https://example.org/path?q=1&r=two#frag.",
    "Wait... what?! No way -- that's impossible!!!",
    "They've been there; we'd have known; you'll see; I'm sure; he's gone; it's fine.",
    "Rock'n'roll isn't dead, y'all.",
    "The U.S.A. and the U.K. signed the treaty (see Art. 5, §2).",
    "Gray's Anatomy, 40th ed., pp. 123-145.",
    "Once upon a time, in a land far, far away, there lived a king who had three daughters.",
    "To be, or not to be: that is the question.",
    "Colorless green ideas sleep furiously.",
    "The mitochondria is the powerhouse of the cell.",
    "When Mary and John went to the store, John gave a drink to",
    "Python 3.11 is faster than Python 3.10 by about 25% on average.",
]

CODE = [
    "func add(_ a: Int, _ b: Int) -> Int {\n    return a + b\n}\n",
    "struct Point: Equatable {\n    var x: Double\n    var y: Double\n\n    static let zero = Point(x: 0, y: 0)\n}\n",
    "for i in 0..<10 where i % 2 == 0 {\n\tprint(\"\\(i) is even\")\n}",
    "guard let url = URL(string: path) else { throw ScalpelError.bad(path) }",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "import numpy as np\nx = np.arange(10, dtype=np.float32)\nprint(x.mean(), x.std())\n",
    "class Foo(object):\n    def __init__(self, bar=None):\n        self._bar = bar or {}\n",
    "    # indented comment with trailing spaces   \n        deeper = True\n",
    "#include <stdio.h>\n\nint main(int argc, char **argv) {\n\tprintf(\"Hello, %s!\\n\", argv[0]);\n\treturn 0;\n}\n",
    "if (x != NULL && *x == '\\0') { x++; } else if (y >= 0x7F) { y <<= 2; }",
    "const f = (a, b) => a ?? b; let s = `template ${f(1, 2)}`;",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "<div class=\"main\"><p>Hello &amp; welcome</p></div>",
    "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
    "$ git commit -m 'fix: handle \\r\\n line endings' && git push origin main",
    "x=1;y=2;z=x+y*3-4/5%6**7//8",
    "    \n\t\t\n  \t  \n",
    "a_b_c = snake_case_name + camelCaseName - PascalCaseName",
    "#!/usr/bin/env bash\nset -euo pipefail\necho \"$HOME\" | tr '[:lower:]' '[:upper:]'\n",
    "   leading spaces on a line",
    "trailing spaces on a line   ",
    "\ttab-indented\n\t\tdouble tab\n",
]

NUMBERS = [
    "0", "7", "42", "100", "1000", "12345", "123456789", "3.14159", "-2.5e-3", "1,000,000", "1.000.000,00",
    "2024-01-15", "12/31/1999", "31.12.1999", "12:30:45", "1999-12-31T23:59:59Z", "v1.2.3", "0xDEADBEEF",
    "+1 (555) 123-4567", "50%", "$1,234.56", "€99", "£5", "¥1000", "1st 2nd 3rd 4th", "10^6", "2³", "½ ¼ ¾",
    "1e100", "007", "000000", "9999999999999999999999", "3/4", "1:2:3", "#1", "No. 5", "ISBN 978-3-16-148410-0",
]

SEQUENCES = [
    "1 2 3 4", "1 2 3 4 5 6 7 8 9 10", " 1 2 3 4", "1, 2, 3, 4", "1,2,3,4", "10 20 30 40", "1\n2\n3\n4",
    "one two three four", "One Two Three Four", "one, two, three, four", " one two three four five six",
    "January February March April", "January February March April May June July August September October November December",
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday", "a b c d e f g", "A B C D E F G",
    "first second third fourth", "I II III IV V VI", "Ⅰ Ⅱ Ⅲ Ⅳ", "α β γ δ", "red orange yellow green blue",
    "Mon Tue Wed Thu", "Jan Feb Mar Apr", "x1 x2 x3 x4", "2 4 6 8 10", "1 1 2 3 5 8 13 21",
]

EMOJI = [
    "😀", "😀😃😄", "👍", "👍🏽", "👍🏿👍🏻", "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🏴‍☠️", "🇺🇸🇯🇵🇫🇷", "1️⃣2️⃣", "❤️", "♥", "✨🎉",
    "I ❤️ NY", "Great job! 👏👏👏", "🤷‍♀️ whatever", "🧑🏾‍🚀", "😀 😀", "a😀b", "🙂.", "🐍 and 🦀", "☕️", "🫠🫡",
]

SCRIPTS = [
    "你好，世界！", "我爱自然语言处理。", "東京は日本の首都です。", "こんにちは、世界", "カタカナとひらがな", "안녕하세요 세계",
    "한국어 문장입니다.", "مرحبا بالعالم", "السلام عليكم ورحمة الله", "שלום עולם", "नमस्ते दुनिया", "हिन्दी भाषा",
    "Привет, мир!", "Съешь же ещё этих мягких французских булок", "Γειά σου Κόσμε", "Ελληνικά γράμματα",
    "สวัสดีชาวโลก", "ภาษาไทย", "Xin chào thế giới", "Tiếng Việt có dấu", "Здравствуйте", "ქართული", "Հայերեն",
    "ᚠᚢᚦᚨᚱᚲ", "ⴰⵣⵓⵍ", "ኢትዮጵያ", "தமிழ்", "বাংলা", "ગુજરાતી", "ಕನ್ನಡ", "Ελλάδα 2024", "Москва-2024",
    "日本語とEnglishのmix", "中文123数字", "mixed Ελληνικά and Русский",
]

COMBINING = [
    "e\u0301", "cafe\u0301", "café", "a\u0308o\u0308u\u0308", "Z\u0351\u0364\u0346a\u0310l\u0315g\u036bo\u0334",
    "n\u0303", "\u0301", "x\u0301\u0302\u0303", "क्षत्रिय", "ñ vs n\u0303", "Å vs A\u030a vs \u212b", "ﬁ ﬂ", "ǅ ǈ ǋ",
    "a\u200db", "a\u200cb", "\u0915\u093f", "\u0e01\u0e34\u0e4a", "q\u0307\u0323",
]

WHITESPACE = [
    " ", "  ", "   ", "    ", "\t", "\n", "\r\n", "\n\n", "\n\n\n", " \n", "\n ", " \n ", "\t\t", " \t ", "\r",
    "a  b", "a   b", "a\tb", "a\nb", "a\r\nb", "a \nb", "a\n b", "a \n b", "a  \n  b", "word   ", "   word",
    "  two  spaces  ", "\n\nParagraph\n\n", "line1\r\nline2\r\n", "a\u00a0b", "a \u00a0b", "a\u00a0 b",
    "a\u2009b", "a\u3000b", "a\u200bb", "a\u1680b", "a\u2028b", "a\u2029b", "a\u0085b", "a\u000bb", "a\u000cb",
    "a\u001cb\u001db\u001eb\u001fb", "a\u202fb", "a\u205fb", "a\ufeffb", "\u3000\u3000", "\u00a0", "\u00a0\u00a0x",
    " \u00a0x", "\u00a0 x", "x  \u200by", "x  \u001cy", "\u200b!", "!\u001f?", "x \u200b\u200b y", "  \u200b",
    "a  \u180e b", "\u001c's", "x\u001f'll", "\u200b's", "\ufeff're", "\u180e'd", "\u2000\u2001\u2002\u2003x", "x \t y", "x\t y", "x \ty", " " * 17 + "x", "x" + " " * 33,
    "\t" * 5 + "x", "\n" * 7, " \n" * 5, "\u180e", "a\u180eb",
]

CONTRACTIONS = [
    "I'M", "I'm", "i'm", "don't", "DON'T", "Don'T", "they'LL", "they'll", "THEY'LL", "we've", "WE'VE", "we'Ve",
    "you're", "YOU'RE", "you'Re", "he'd", "HE'D", "it's", "IT'S", "It'S", "can't", "won't", "y'all", "'s", "'t",
    "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'x", "'", "''", "'''", "''s", "'s'", "'ss", "'sa",
    " 's", " 'll", "\n's", "x's", "x'ss", "'ll've", "it’s", "don’t", "it`s", "'1", "' s", "'\ns", "!'s", "?'re",
    "O'Neil's", "rock'n'roll", "'tis", "'twas", "’", "“quoted”", "'single'", "\"double\"", "the '90s",
]

PUNCTUATION = [
    "!!!", "?!", "?!?!", "...", "…", "--", "—", "–", "---", "->", "=>", "!=", "===", "<=>", "::", "...,", "(...)",
    "[{()}]", "/* */", "//", "#!/", "@#$%^&*", "«guillemets»", "„German“", "¿Qué?", "¡Hola!", "。、！？", "【】",
    "•", "·", "©®™", "°C", "±", "×÷", "≠≤≥", "∑∫√∞", "→←↑↓", "★☆", "♪♫", "§¶", "†‡", "‰", "™️", " !", "  !",
    " .", ". .", "a.b.c", "a,b;c:d", "(a)", "[1]", "{x}", "<tag>", "&nbsp;", "\\n", "\\\\", "~/", "^_^", ":-)",
    ";)", "<3", "</s>", "<s>", "<|im_start|>", "<pad>",
]

OTHER_DIGITS = [
    "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "০১২৩", "๐๑๒๓", "０１２３４５６７８９", "１２３abc", "①②③", "⑴⑵",
    "²³¹", "¼½¾", "ⅠⅡⅢⅣⅤ", "〇一二三", "𝟘𝟙𝟚", "𝟎𝟏𝟐", "٣.١٤", "١٢ يناير", "Ⅻ", "ↂ", "𐄇𐄈", "໑໒", "᠑᠒",
]

ENDOFTEXT = [
    "<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>", "<|endoftext|>\n",
    "\n<|endoftext|>", "Hello<|endoftext|>World", "<|endoftext|", "|endoftext|>", "<|endoftext|>>",
    "<<|endoftext|>", "<|EndOfText|>", "<|endoftext |>", "< |endoftext|>", "<|endoftext|>text<|endoftext|>",
    "The end.<|endoftext|>The beginning.", "  <|endoftext|>  ", "'<|endoftext|>'s", "1<|endoftext|>2",
    "<|endoftext|><|endoftext|", "😀<|endoftext|>😀", "<|endoftext|>\u0301",
]

EDGE = [
    "", "a", "A", "ab", "\u0000", "\u0000\u0001\u0002", "\u007f", "\u0080\u0081", "\uffff", "\ufffd", "\U0010ffff",
    "\ue000", "\U000f0000", "\U0001f600" * 3, "x" * 300, "ab" * 150, " " * 300, "9" * 120,
    "antidisestablishmentarianism", "Supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "SolidGoldMagikarp", " SolidGoldMagikarp", " petertodd", "rawdownloadcloneembedreportprint", "ÃÂÃÂ",
    "ĠĠ", "Ġ", "Ċ", "\u0120the", "ÿ", "\u00ad", "soft\u00adhyphen",
    # Unicode 17 letters (Sidetic, Tai Yo) that Swift knows but the HF regex engine does not
    "\U00010940\U00010941", "a\U00010940b", "\U0001e6c0\U0001e6c1", "\u088f", "\ua7ce\ua7cf",
    # ... and as "other" they join a following apostrophe, so "'s" is no contraction there
    "\ua7ce's", "\u088f's", "\U00010940's", "The \ua7cf's", "\U00011de0's", "\U00011de0\U00011de1 1",
    # Unicode 16 letters (Garay, Todhri) that both know
    "\U00010d4a\U00010d4b", "\U000105c0\U000105c1",
]

WORDS = (
    "the of and to in is that it for on with as was by at be this from have not are or an but his they "
    "which one you all were her she there would their we him been has when who will more if no out so said "
    "what up its about into than them can only other new some could time these two may then do first any my "
    "now such like our over man me even most made after also did many before must through back years where "
    "much your way well down should because each just those people how too little state good very make world "
    "neuron attention layer residual embedding logit token gradient transformer activation circuit feature"
).split()


def build_corpus(rng):
    out = []
    groups = [PROSE, CODE, NUMBERS, SEQUENCES, EMOJI, SCRIPTS, COMBINING, WHITESPACE, CONTRACTIONS, PUNCTUATION,
              OTHER_DIGITS, ENDOFTEXT, EDGE]
    for g in groups:
        out.extend(g)
    fragments = [s for g in groups for s in g if s]
    separators = ["", " ", " ", " ", "  ", "\n", "\t", "\r\n", "'", "\u00a0", "\u3000", ". ", ", ", "   ", " \n"]

    # Each hand-written string with leading/trailing variations.
    for s in PROSE + SCRIPTS + CONTRACTIONS[:20] + NUMBERS[:15]:
        out.append(" " + s)
        out.append(s + " ")
        out.append("  " + s + "\n")

    # Generated sequences: numbers, words, months, dates.
    months = "January February March April May June July August September October November December".split()
    numwords = "zero one two three four five six seven eight nine ten eleven twelve".split()
    for _ in range(120):
        start = rng.randrange(0, 2000)
        step = rng.choice([1, 1, 1, 2, 5, 10, 100, 7])
        n = rng.randrange(2, 12)
        sep = rng.choice([" ", ", ", ",", "\n", " | ", "  "])
        out.append(rng.choice(["", " "]) + sep.join(str(start + i * step) for i in range(n)))
    for _ in range(40):
        i = rng.randrange(0, 8)
        seq = (months if rng.random() < 0.5 else numwords)[i:i + rng.randrange(2, 6)]
        seq = [w.upper() if rng.random() < 0.1 else w.lower() if rng.random() < 0.2 else w for w in seq]
        out.append(rng.choice([" ", ", ", "\n"]).join(seq))
    for _ in range(80):
        y, m, d = rng.randrange(1000, 2100), rng.randrange(1, 13), rng.randrange(1, 29)
        fmt = rng.choice(["{y}-{m:02d}-{d:02d}", "{m}/{d}/{y}", "{d}.{m}.{y}", "{mon} {d}, {y}", "{d} {mon} {y}",
                          "{h}:{mi:02d}", "{h}:{mi:02d}:{s:02d} {ap}", "{x:.3f}", "{big:,}", "{x:.2e}", "${x:.2f}"])
        out.append(fmt.format(y=y, m=m, d=d, mon=months[m - 1], h=rng.randrange(0, 24), mi=rng.randrange(60),
                              s=rng.randrange(60), ap=rng.choice(["AM", "PM"]), x=rng.uniform(-1e4, 1e4),
                              big=rng.randrange(10 ** rng.randrange(1, 15))))

    # Random sentences from a word list, with random casing and punctuation.
    for _ in range(300):
        words = [rng.choice(WORDS) for _ in range(rng.randrange(1, 20))]
        words = [w.capitalize() if rng.random() < 0.15 else w.upper() if rng.random() < 0.05 else w for w in words]
        s = " ".join(words)
        if rng.random() < 0.5:
            s = s[0].upper() + s[1:] + rng.choice([".", "!", "?", "...", ",", ":", ";", " -", "'s", "n't"])
        out.append(s)

    # Random mixtures of fragments joined by random separators.
    for _ in range(900):
        parts = [rng.choice(fragments) for _ in range(rng.randrange(2, 7))]
        s = ""
        for p in parts:
            s += p + rng.choice(separators)
        if rng.random() < 0.3:
            s = s.strip(" ")
        out.append(s)

    # Random character soup from many blocks, to probe classification and byte merges.
    blocks = [(0x20, 0x7e), (0x00, 0x20), (0xa0, 0x17f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff),
              (0x590, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x2070, 0x218f),
              (0x2460, 0x24ff), (0x3000, 0x30ff), (0x4e00, 0x4e80), (0xac00, 0xac80), (0xfe00, 0xfe0f),
              (0xff00, 0xffef), (0x1f300, 0x1f6ff), (0x1f900, 0x1f9ff), (0x10000, 0x1007f), (0x1d400, 0x1d7ff),
              (0xe0000, 0xe007f), (0x10900, 0x1097f), (0x1e6c0, 0x1e6ff)]
    for _ in range(400):
        chars = []
        for _ in range(rng.randrange(1, 16)):
            lo, hi = rng.choice(blocks)
            cp = rng.randrange(lo, hi + 1)
            if not 0xD800 <= cp <= 0xDFFF:
                chars.append(chr(cp))
            if rng.random() < 0.25:
                chars.append(rng.choice([" ", "  ", "'", "s", "1", "\n", "a"]))
        out.append("".join(chars))

    # A few long documents.
    for _ in range(6):
        out.append("".join(rng.choice(fragments) + rng.choice(separators) for _ in range(rng.randrange(40, 120))))

    # Long single pieces (no spaces), where the merge order matters most.
    for alphabet, n in [("abcdefghijklmnopqrstuvwxyz", 3000), ("ACGT", 2000), ("0123456789", 500),
                        ("eaiou" "tnsrhl", 1500)]:
        out.append("".join(rng.choice(alphabet) for _ in range(n)))

    seen, corpus = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            corpus.append(s)
    return corpus


def char_classes(tok):
    """Classify every code point by how the real pre-tokenizer groups it (see PreTokenizer.swift)."""
    pre = tok.backend_tokenizer.pre_tokenizer
    classes = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            classes.append("O")  # surrogates cannot occur in text
            continue
        c = chr(cp)
        if c == " ":
            classes.append("S")
            continue
        # letters join "a", numbers join "1", other symbols join "!", whitespace joins nothing.
        offsets = [o for _, o in pre.pre_tokenize_str("a" + c + "!1" + c)]
        found = []
        if offsets[0] == (0, 2):
            found.append("L")
        if len(offsets) > 1 and offsets[1] == (1, 3):
            found.append("O")
        if offsets[-1] == (3, 5):
            found.append("N")
        if len(offsets) == 5:
            found.append("S")
        assert len(found) == 1, (hex(cp), offsets)
        classes.append(found[0])
    ranges = {"L": [], "N": [], "S": []}
    start = 0
    for cp in range(1, 0x110001):
        if cp == 0x110000 or classes[cp] != classes[start]:
            if classes[start] in ranges:
                ranges[classes[start]].append([start, cp - 1])
            start = cp
    return ranges


def decode_cases(tok, rng):
    """Id sequences that split multi-byte characters, so decoding meets invalid UTF-8."""
    vocab = tok.get_vocab()
    byte_tokens = sorted(i for p, i in vocab.items() if len(p) == 1 and i < 50256)  # vocab order varies
    high = [i for i in byte_tokens if tok.decode([i]) == "\ufffd"]  # bytes 0x80...0xFF alone are invalid
    cases = [[i] for i in sorted(byte_tokens)]
    for _ in range(300):
        n = rng.randrange(1, 9)
        ids = [rng.choice(high) if rng.random() < 0.7 else rng.randrange(0, 50257) for _ in range(n)]
        cases.append(ids)
    for s in ["😀", "é", "你好", "👨‍👩‍👧"]:
        ids = tok.encode(s)
        for k in range(len(ids)):
            cases.append(ids[:k] + ids[k + 1:])
            cases.append(ids[k:] + ids[:k])
    return [[ids, tok.decode(ids)] for ids in cases]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpt2", default=str(ROOT.parent / "shared" / "gpt2"),
                        help="folder with vocab.json and merges.txt (default: ../shared/gpt2)")
    args = parser.parse_args()
    tok = load_tokenizer(Path(args.gpt2))
    rng = random.Random(SEED)
    OUT.mkdir(parents=True, exist_ok=True)

    corpus = build_corpus(rng)
    with open(OUT / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for s in corpus:
            ids = tok.encode(s)
            decoded = tok.decode(ids)
            row = [s, ids] if decoded == s else [s, ids, decoded]
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")

    with open(OUT / "decode.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for row in decode_cases(tok, rng):
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")

    ranges = char_classes(tok)
    with open(OUT / "char_classes.json", "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n" + ",\n".join(f'"{k}":{json.dumps(v, separators=(",", ":"))}' for k, v in ranges.items())
                + "\n}\n")
    print(f"{len(corpus)} strings; ranges: " + ", ".join(f"{k} {len(v)}" for k, v in ranges.items()))


if __name__ == "__main__":
    main()
