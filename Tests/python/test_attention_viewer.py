"""The HTML attention viewer (`scalpel heads --pattern HEADS --html FILE`) in headless Chromium.

The page, loaded with `#selftest`, hovers the destination token itself (dispatchEvent), toggles the
first head off and on, and writes what it then shows into <pre id="selftest">; Chromium's
--dump-dom gives the DOM after that, and this test checks it against the command's JSON (the
captured hook_pattern values). Tokens with <, &, quotes and a newline must show as text. A
screenshot is written to outputs/screenshots/attention_viewer.png and checked to be a real PNG.

Skips, saying why, when the scalpel binary is not built or Chromium is missing or cannot run
(tools/browser-deps.sh installs it from Debian).
"""
import html
import json
import os
import re
import shutil
import struct
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCALPEL = os.path.join(ROOT, ".build", "debug", "scalpel")
PROMPT = 'Tom said "<b>1 & 2</b>"\nthen \'3\''
HEADS = "5.1,0.3,2.2"


def chromium():
    for name in (os.environ.get("SCALPEL_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.skip("Chromium is not installed (tools/browser-deps.sh installs it from Debian)")


def browser(binary, tmp_path, *args):
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--user-data-dir=" + str(tmp_path / "profile"), *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"Chromium could not run: {error}")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not os.path.exists(SCALPEL):
        pytest.skip(f"{SCALPEL} is not built (swift build --product scalpel)")
    folder = tmp_path_factory.mktemp("viewer")
    path = folder / "attention.html"
    result = subprocess.run([SCALPEL, "heads", "--prompt", PROMPT, "--pattern", HEADS, "--html", str(path), "--format", "json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return folder, path, json.loads(result.stdout)


def f32(values):
    """Numbers as the float32 values they stand for (JSON writers may spell one float32 differently)."""
    return [None if v is None else struct.unpack("<f", struct.pack("<f", v))[0] for v in values]


def embedded(path):
    text = path.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="attention-data">(.*?)</script>', text, re.S)
    assert match, "the data is embedded as JSON"
    return text, json.loads(match.group(1))


def test_page_is_self_contained_and_escapes_tokens(page):
    _, path, result = page
    text, data = embedded(path)
    assert data["tokens"] == result["tokens"]
    assert any("<" in t for t in data["tokens"]) and any("&" in t for t in data["tokens"]) and "\n" in data["tokens"]
    assert "<b>" not in text and "http://" not in text and "https://" not in text and " src=" not in text
    n = len(result["tokens"])
    values = result["values"]
    for h in range(len(data["heads"])):
        for q in range(n):
            assert f32(data["patterns"][h][q]) == f32(values[(h * n + q) * n:(h * n + q + 1) * n])


def test_hover_shows_where_each_head_attends_from_and_to(page, tmp_path):
    folder, path, result = page
    binary = chromium()
    run = browser(binary, tmp_path, "--dump-dom", path.as_uri() + "#selftest")
    if run.returncode != 0 or "<html" not in run.stdout:
        pytest.skip(f"Chromium could not load the page (exit {run.returncode}): {run.stderr[-500:]}")
    dom = run.stdout
    match = re.search(r'<pre id="selftest"[^>]*>(.+?)</pre>', dom, re.S)
    assert match, "the self-test ran and wrote its results into the page"
    state = json.loads(html.unescape(match.group(1)))
    _, data = embedded(path)
    n, heads = len(data["tokens"]), [h["label"] for h in data["heads"]]
    dest = n - 1
    assert state["selected"] == dest
    assert state["token_labels"] == data["labels"]
    assert state["selected_label"] == data["labels"][dest]
    assert "\\n" in state["token_labels"], "the newline token shows as \\n"
    assert "<b>" not in dom, "token text never becomes markup"
    assert "&lt;" in dom and "&amp;" in dom
    values = result["values"]
    assert list(state["from"]) == heads and list(state["to"]) == heads
    for h, label in enumerate(heads):
        row = values[(h * n + dest) * n:(h * n + dest + 1) * n]
        assert f32(state["from"][label]) == f32(row), f"head {label}: attention from the hovered token"
        column = [values[(h * n + q) * n + dest] for q in range(n)]
        shown = state["to"][label]
        assert shown[:dest] == [None] * dest, "earlier tokens cannot attend to a later one"
        assert f32(shown[dest:]) == f32(column[dest:]), f"head {label}: attention to the hovered token"
    assert state["maps"] == heads, "one pattern picture per chosen head"
    assert state["rows_after_unchecking_first"] == len(heads) - 1
    assert state["heads_after_unchecking_first"] == heads[1:]
    assert state["maps_after_unchecking_first"] == len(heads) - 1
    assert state["rows_after_rechecking_first"] == len(heads)


def test_screenshot(page, tmp_path):
    _, path, _ = page
    binary = chromium()
    folder = os.path.join(ROOT, "outputs", "screenshots")
    os.makedirs(folder, exist_ok=True)
    png = os.path.join(folder, "attention_viewer.png")
    if os.path.exists(png):
        os.remove(png)
    run = browser(binary, tmp_path, "--hide-scrollbars", "--window-size=1200,900", "--screenshot=" + png, path.as_uri() + "#selftest")
    if not os.path.exists(png):
        pytest.skip(f"Chromium wrote no screenshot (exit {run.returncode}): {run.stderr[-500:]}")
    with open(png, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 900)
    assert len(data) > 10_000, "a page with content, not a blank image"
