"""Scalpel's trace and lens files opened with xarray (engine="h5netcdf"): the dimensions carry
their names (prompt, pos, d_model, …), not `phony_dim_*`, and the prompts group holds what is
needed to read the results without the model (token strings, answers, corrupted prompts).

Runs the `scalpel` debug binary (`swift build` first) on the bundled model.
"""
import os
import subprocess

import pytest

xr = pytest.importorskip("xarray", reason="xarray is not installed (tools/python-test-deps.sh installs it)")
pytest.importorskip("h5netcdf", reason="h5netcdf is not installed (tools/python-test-deps.sh installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCALPEL = os.path.join(ROOT, ".build", "debug", "scalpel")


def scalpel(*args):
    if not os.path.exists(SCALPEL):
        pytest.fail(f"{SCALPEL} is missing: run `swift build` first")
    result = subprocess.run([SCALPEL, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def open_group(path, group):
    return xr.open_dataset(path, engine="h5netcdf", group=group)


def assert_named(dataset):
    assert not [d for d in dataset.sizes if str(d).startswith("phony_dim")], dict(dataset.sizes)


def test_prompts_group(tmp_path):
    out = tmp_path / "trace.h5"
    scalpel("trace", "--dataset", "months", "--hooks", "blocks.0.hook_resid_post", "-o", str(out))
    with open_group(out, "prompts") as prompts:
        assert_named(prompts)
        assert prompts["tokens"].dims == ("prompt", "pos")
        assert prompts["token_strings"].dims == ("prompt", "pos")
        assert prompts["text"].dims == ("prompt",)
        n = int(prompts["lengths"].values[0])
        assert list(prompts["token_strings"].values[0, :n]) == ["<|endoftext|>", "January", " February", " March", " April"]
        assert (prompts["token_strings"].values[0, n:] == "").all()
        assert prompts["answer"].values[0] == " May"
        assert prompts["corrupted_prompt"].values[0] and prompts["corrupted_answer"].values[0]


def test_trace_dimensions(tmp_path):
    out = tmp_path / "trace.h5"
    scalpel("trace", "--dataset", "digits", "--hooks",
            "blocks.0.hook_resid_post,blocks.0.attn.hook_pattern,blocks.0.mlp.hook_post,blocks.0.attn.hook_z", "-o", str(out))
    with open_group(out, "activations") as acts:
        assert_named(acts)
        assert acts["blocks.0.hook_resid_post"].dims == ("prompt", "pos", "d_model")
        assert acts["blocks.0.attn.hook_pattern"].dims == ("prompt", "head", "query_pos", "key_pos")
        assert acts["blocks.0.mlp.hook_post"].dims == ("prompt", "pos", "d_mlp")
        assert acts["blocks.0.attn.hook_z"].dims == ("prompt", "pos", "head", "d_head")
        # Dimensions only: no coordinate variables appear beside the hooks.
        assert sorted(acts.data_vars) == sorted(["blocks.0.hook_resid_post", "blocks.0.attn.hook_pattern",
                                                  "blocks.0.mlp.hook_post", "blocks.0.attn.hook_z"])
        last = acts["blocks.0.hook_resid_post"].isel(pos=1)
        assert last.dims == ("prompt", "d_model")


def test_lens_dimensions(tmp_path):
    out = tmp_path / "lens.h5"
    scalpel("lens", "--dataset", "months", "--top-k", "3", "-o", str(out))
    with open_group(out, "lens") as lens:
        assert_named(lens)
        assert lens["top_ids"].dims == ("prompt", "row", "position", "k")
        assert lens["top_ids"].shape[-1] == 3
        assert lens["target_prob"].dims == ("prompt", "row", "position")
        assert lens["row_labels"].dims == ("row",)
        assert lens["mean_logit_diff"].dims == ("row",)
    with open_group(out, "prompts") as prompts:
        assert_named(prompts)
        assert prompts["answer"].values[0] == " May"


def test_root_attributes(tmp_path):
    out = tmp_path / "lens.h5"
    scalpel("lens", "--prompt", "1 2 3", "-o", str(out))
    with xr.open_dataset(out, engine="h5netcdf") as root:
        for name in ["model", "model_files", "model_sha256", "command_line", "tool_version", "format"]:
            assert name in root.attrs, name
        assert len(root.attrs["model_sha256"].split(",")[0]) == 64
        assert "lens" in root.attrs["command_line"]


def test_several_attribution_groupings_have_their_own_dimensions(tmp_path):
    """`attribute --by component,head,neuron`: one group per grouping, each with its own dimensions
    (the head grid's layer has every block, the neuron grid's only the chosen ones)."""
    out = tmp_path / "attribution.h5"
    scalpel("attribute", "--dataset", "digits", "--by", "component,head,neuron", "--layers", "4,5", "-o", str(out))
    with open_group(out, "attribution/head") as heads, open_group(out, "attribution/neuron") as neurons:
        assert_named(heads)
        assert_named(neurons)
        assert heads["values"].dims == ("layer", "head") and heads.sizes["layer"] == 6
        assert neurons["values"].dims == ("layer", "neuron") and neurons.sizes["layer"] == 2
        assert list(neurons["layer_labels"].values) == ["L4", "L5"]
    with open_group(out, "attribution/component") as components:
        assert components["values"].dims == ("component",) and components.sizes["component"] == 14
