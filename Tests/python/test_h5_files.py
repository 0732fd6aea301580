"""Scalpel's HDF5 files read with h5py: names, shapes, dimension labels and values.

Runs the `scalpel` debug binary (`swift build` first) on the bundled model and checks the values
against an independent numpy forward pass (gpt2_numpy.py).
"""
import os
import subprocess
import sys

import pytest

h5py = pytest.importorskip("h5py", reason="h5py is not installed and could not be installed (pip install h5py numpy)")
np = pytest.importorskip("numpy", reason="numpy is not installed (pip install numpy)")

sys.path.insert(0, os.path.dirname(__file__))
from gpt2_numpy import GPT2  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCALPEL = os.path.join(ROOT, ".build", "debug", "scalpel")
BUNDLED = os.path.join(ROOT, "Sources", "Scalpel", "Resources", "bundled-model")


def scalpel(*args):
    if not os.path.exists(SCALPEL):
        pytest.fail(f"{SCALPEL} is missing: run `swift build` first")
    result = subprocess.run([SCALPEL, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def reference():
    return GPT2(BUNDLED)


def test_trace_file(tmp_path, reference):
    out = tmp_path / "trace.h5"
    scalpel("trace", "--dataset", "digits", "--hooks", "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern",
            "--gzip", "-o", str(out))
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "scalpel-activations"
        assert "trace" in f.attrs["command_line"]
        texts = [s for s in f["prompts/text"].asstr()[:]]
        assert texts[0] == "1 2 3 4" and len(texts) == 20
        tokens, lengths = f["prompts/tokens"][:], f["prompts/lengths"][:]
        assert tokens.dtype == np.int32 and tokens.shape == (20, lengths.max())
        n_layer = reference.n_layer
        names = sorted(f["activations"].keys())
        assert names == sorted([f"blocks.{i}.hook_resid_post" for i in range(n_layer)] + ["blocks.0.attn.hook_pattern"])
        last = f[f"activations/blocks.{n_layer - 1}.hook_resid_post"]
        assert last.shape == (20, lengths.max(), reference.config["n_embd"])
        assert last.attrs["dims"] == "prompt,pos,d_model"
        assert [dim.label for dim in last.dims] == ["prompt", "pos", "d_model"]
        assert last.chunks == (1,) + last.shape[1:] and last.compression == "gzip"
        pattern = f["activations/blocks.0.attn.hook_pattern"]
        assert pattern.attrs["dims"] == "prompt,head,query_pos,key_pos"
        for p in (0, 7, 19):
            n = lengths[p]
            assert (tokens[p, n:] == -1).all()
            posts, patterns, _ = reference.forward(tokens[p, :n])
            np.testing.assert_allclose(last[p, :n], posts[-1], atol=1e-4 * max(1, np.ptp(posts[-1])))
            assert np.isnan(last[p, n:]).all()
            np.testing.assert_allclose(pattern[p, :, :n, :n], patterns[0], atol=1e-5)


def test_lens_file(tmp_path, reference):
    out = tmp_path / "lens.h5"
    scalpel("lens", "--dataset", "months", "-o", str(out), "--format", "json")
    with h5py.File(out, "r") as f:
        rows = list(f["lens/rows"].asstr()[:])
        n_layer = reference.n_layer
        assert rows == [f"blocks.{i}.hook_resid_pre" for i in range(n_layer)] + [f"blocks.{n_layer - 1}.hook_resid_post"]
        top_ids, top_probs = f["lens/top_ids"], f["lens/top_probs"]
        assert top_ids.shape == (8, n_layer + 1, 1, 5)
        assert top_ids.attrs["dims"] == "prompt,row,position,k"
        assert (np.diff(top_probs[:], axis=-1) <= 1e-7).all()
        tokens, lengths = f["prompts/tokens"][:], f["prompts/lengths"][:]
        for p in range(8):
            _, _, logits = reference.forward(tokens[p, :lengths[p]])
            final = logits[-1]
            assert top_ids[p, -1, 0, 0] == final.argmax()
            probs = np.exp(final - final.max())
            probs /= probs.sum()
            np.testing.assert_allclose(top_probs[p, -1, 0], np.sort(probs)[::-1][:5], atol=1e-4)
        assert f["lens/target_prob"].shape == (8, n_layer + 1, 1)


def test_model_archive(tmp_path, reference):
    plan = tmp_path / "plan.yaml"
    plan.write_text('name: test\nbase: bundled\nblocks: ["0-1", "3.mlp"]\n')
    out = tmp_path / "model.h5"
    scalpel("build", str(plan), "-o", str(out))
    w = reference.w
    d, h = reference.config["n_embd"], reference.n_head
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "scalpel-model" and f.attrs["format_version"] == 1
        assert "3.mlp" in f.attrs["plan"]
        assert "sha256" in f.attrs["source"]
        assert sorted(f["blocks"].keys(), key=int) == ["0", "1", "2"]
        assert f["blocks/2"].attrs["parts"] == "mlp" and f["blocks/2"].attrs["source"].endswith(":L3")
        np.testing.assert_array_equal(f["embed/W_E"][:], w["wte.weight"])
        assert f["unembed/W_U"] == f["embed/W_E"]  # hard link: the same object
        W_Q = f["blocks/1/attn/W_Q"][:]
        assert W_Q.shape == (h, d, d // h)
        expected = w["h.1.attn.c_attn.weight"][:, :d].reshape(d, h, d // h).transpose(1, 0, 2)
        np.testing.assert_array_equal(W_Q, expected)
        np.testing.assert_array_equal(f["blocks/2/mlp/W_in"][:], w["h.3.mlp.c_fc.weight"])
        assert "attn" not in f["blocks/2"]
        assert f["tokenizer/vocab"].asstr()[0].startswith("{")
