"""Sharded sweeps (DESIGN.md "Sweeps across machines"), run the way a job array runs them:
tools/run_shards.py launches N shards as N processes, merges their partial files and compares the
merged file's contents (every dataset's values, dtype and shape, every attribute) with the
unsharded run's, for patch, trace, lens, attribute (neurons; and several groupings in one run),
paths, heads and classify (finished by `classify --patch-result PARTS…`) with N = 1, 2, 3 and 7; one shard interrupted while it writes leaves nothing, merging without
it fails, and rerunning it completes the merge.

Runs the debug binary (`swift build --product scalpel` first) on the bundled model.
"""
import os
import subprocess
import sys

import pytest

pytest.importorskip("h5py", reason="h5py is not installed (tools/python-test-deps.sh installs it)")
pytest.importorskip("numpy", reason="numpy is not installed (tools/python-test-deps.sh installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCALPEL = os.path.join(ROOT, ".build", "debug", "scalpel")
RUN_SHARDS = os.path.join(ROOT, "tools", "run_shards.py")


def lens_prompts(folder):
    """40 counting prompts with answers: three of the lens's batches of 16."""
    path = folder / "counting.txt"
    path.write_text("".join(f"{i} {i + 1} {i + 2} {i + 3}\t {i + 4}\n" for i in range(1, 41)))
    return str(path)


def attribution_dataset(folder):
    """70 counting items with answers and foils: three of attribute's batches of 32 (the last one short)."""
    import json
    path = folder / "counting.json"
    items = [{"prompt": f"{i} {i + 1} {i + 2}", "answer": f" {i + 3}", "corrupted_answer": f" {i + 2}"} for i in range(1, 71)]
    path.write_text(json.dumps({"name": "counting", "description": "", "items": items}))
    return str(path)


def repeated_prompts(folder):
    """40 prompts that repeat their numbers (every detector has something to find): three of the detectors' batches of 16."""
    path = folder / "repeated.txt"
    path.write_text("".join(f"{i} {i + 1} {i + 2} {i} {i + 1} {i + 2}\n" for i in range(1, 41)))
    return str(path)


def circuit_file(folder):
    """A circuit with heads and MLPs for the bundled model (6 layers x 4 heads)."""
    path = folder / "circuit.yaml"
    path.write_text('heads: {"4.0": all, "5.1": [end], "2.3": [1, end]}\nmlps: {"5": [end]}\n')
    return str(path)


SWEEPS = {
    "patch": lambda tmp: ["patch", "--dataset", "months", "--target", "z", "--layers", "0-1"],
    "trace": lambda tmp: ["trace", "--dataset", "digits", "--hooks", "blocks.0.hook_resid_post,blocks.1.attn.hook_pattern",
                          "--batch-size", "2"],
    "lens": lambda tmp: ["lens", "--prompts", lens_prompts(tmp), "--positions", "all"],
    "attribute": lambda tmp: ["attribute", "--dataset", attribution_dataset(tmp), "--by", "neuron", "--layers", "4,5"],
    "paths": lambda tmp: ["paths", "--from", "digits", "--to", "number-words", "--layers", "0,2,5", "--alphas", "0:1:1"],
    "heads-detect": lambda tmp: ["heads", "--detect", "all", "--prompts", repeated_prompts(tmp)],
    "heads-copy": lambda tmp: ["heads", "--copy-scores", "--dataset", "digits", "--heads", "2.1,5.3"],
    # 21 scored circuits (the circuit + 20 baselines) in packed batches of 3: 7 units.
    "circuit": lambda tmp: ["circuit", circuit_file(tmp), "--dataset", "digits", "--baselines", "20", "--batch-size", "3",
                            "--controls", "months"],
    # Finished by `classify --patch-result PARTS…` (tools/run_shards.py), not by merge; its JSON is compared too.
    "classify": lambda tmp: ["classify", "--dataset", "digits", "--baselines", "2", "--format", "json"],
}


def run_shards(tmp_path, n, command, kill=None):
    if not os.path.exists(SCALPEL):
        pytest.fail(f"{SCALPEL} is missing: run `swift build --product scalpel` first")
    args = [sys.executable, RUN_SHARDS, "-n", str(n), "--scalpel", SCALPEL, "--workdir", str(tmp_path / "work")]
    if kill:
        args += ["--kill", str(kill)]
    result = subprocess.run(args + ["--", *command], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contents equal to the unsharded run" in result.stdout
    return result.stdout


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("sweep", sorted(SWEEPS))
def test_merged_equals_unsharded(tmp_path, sweep, n):
    run_shards(tmp_path, n, SWEEPS[sweep](tmp_path))


def test_neuron_sweep_merged_equals_unsharded(tmp_path):
    run_shards(tmp_path, 2, ["patch", "--dataset", "months", "--target", "mlp_post", "--layers", "1", "--metric", "prob"])


def test_paths_over_many_directions_merged_equal_unsharded(tmp_path):
    """--all: 36 directions at one layer, so the steps of different directions go to different parts."""
    run_shards(tmp_path, 2, ["paths", "--all", "--layers", "5", "--alphas", "1:1:1"])


def test_several_attribution_groupings_merged_equal_unsharded(tmp_path):
    run_shards(tmp_path, 3, ["attribute", "--dataset", attribution_dataset(tmp_path), "--by", "component,head,neuron,layer",
                             "--layers", "1,5", "--mid"])


@pytest.mark.parametrize("sweep", ["patch", "trace", "attribute", "paths", "heads-detect", "heads-copy", "circuit", "classify"])
def test_interrupted_shard_leaves_nothing_and_reruns(tmp_path, sweep):
    out = run_shards(tmp_path, 3, SWEEPS[sweep](tmp_path), kill=2)
    assert "interrupted while writing: exit 1, nothing left" in out
    assert "missing shard 2/3" in out


def test_partial_file_reads_alone(tmp_path):
    import h5py
    import numpy as np
    part = tmp_path / "part.h5"
    subprocess.run([SCALPEL, "patch", "--dataset", "months", "--target", "z", "--layers", "0-1", "--shard", "2/3",
                    "-o", str(part)], check=True, capture_output=True)
    with h5py.File(part, "r") as f:
        assert f.attrs["format"] == "scalpel-partial" and f.attrs["final_format"] == "scalpel-patch"
        assert f.attrs["shard"] == "2/3" and f.attrs["shard_index"] == 2 and f.attrs["shard_count"] == 3
        assert f.attrs["run_parameters"] == "patch --dataset months --target z --layers 0-1"
        assert len(f.attrs["model_sha256"]) == 64
        raw = f["patch/raw"][...]
        computed = f["shard/indices"][...]
        assert raw.shape == (2, 4) and 0 < len(computed) < raw.size
        assert np.isfinite(raw.ravel()[computed]).all()
        assert np.isnan(np.delete(raw.ravel(), computed)).all()


def test_attribution_and_paths_parts_read_alone(tmp_path):
    import h5py
    import numpy as np
    dataset = attribution_dataset(tmp_path)
    part = tmp_path / "attribution.h5"
    result = subprocess.run([SCALPEL, "attribute", "--dataset", dataset, "--by", "neuron", "--layers", "4", "--shard", "2/3",
                             "-o", str(part), "--format", "json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "shard 2/3" in result.stderr and "32 of 70 prompts" in result.stderr
    import json
    assert json.loads(result.stdout)["shard"] == "2/3" and json.loads(result.stdout)["items"] == 32
    with h5py.File(part, "r") as f:
        assert f.attrs["format"] == "scalpel-partial" and f.attrs["final_format"] == "scalpel-attribution"
        assert f.attrs["partial_kind"] == "attribution" and f.attrs["shard"] == "2/3"
        assert list(f["shard/indices"][...]) == list(range(32, 64))  # the second batch of 32
        assert f["prompts/tokens"].shape[0] == 32 and f["attribution"].attrs["items"] == 32
        assert f["attribution/values"].shape == (1, 512) and np.isfinite(f["attribution/values"][...]).all()
    part = tmp_path / "paths.h5"
    result = subprocess.run([SCALPEL, *SWEEPS["paths"](tmp_path), "--shard", "1/2", "-o", str(part)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "shard 1/2" in result.stderr and "(direction, layer) steps" in result.stderr
    with h5py.File(part, "r") as f:
        assert f.attrs["format"] == "scalpel-partial" and f.attrs["final_format"] == "scalpel-paths"
        assert f.attrs["shard_total"] == 3 and list(f["shard/indices"][...]) == [0, 2]  # layers 0 and 5 of 0, 2, 5
        layers = [int(layer) for group in f["paths"].values() for layer in group["layer"][...]]
        assert set(layers) == {0, 5}
        assert f["representations/digits/hook_resid_post"].shape[0] == 3  # every layer's, for merge


@pytest.mark.parametrize("shard", ["0/3", "4/3", "1/0", "x/3", "2", "1/2/3"])
@pytest.mark.parametrize("sweep", ["attribute", "paths"])
def test_bad_shard_is_refused(tmp_path, sweep, shard):
    out = tmp_path / "out.h5"
    result = subprocess.run([SCALPEL, *SWEEPS[sweep](tmp_path), "--shard", shard, "-o", str(out)], capture_output=True, text=True)
    assert result.returncode != 0 and f'--shard "{shard}"' in result.stderr, result.stderr
    assert not out.exists()
    result = subprocess.run([SCALPEL, *SWEEPS[sweep](tmp_path), "--shard", "1/2"], capture_output=True, text=True)
    assert result.returncode != 0 and "needs -o" in result.stderr


def test_parts_of_different_runs_are_refused(tmp_path):
    dataset = attribution_dataset(tmp_path)
    def part(name, *args):
        subprocess.run([SCALPEL, *args, "-o", str(tmp_path / name)], check=True, capture_output=True)
        return str(tmp_path / name)
    a1 = part("a1.h5", "attribute", "--dataset", dataset, "--by", "neuron", "--layers", "4", "--shard", "1/2")
    a2 = part("a2.h5", "attribute", "--dataset", dataset, "--by", "neuron", "--layers", "5", "--shard", "2/2")
    p2 = part("p2.h5", *SWEEPS["paths"](tmp_path), "--shard", "2/2")
    merged = tmp_path / "merged.h5"
    for other, mention in ((a2, "run parameters"), (p2, "kind of sweep")):
        result = subprocess.run([SCALPEL, "merge", a1, other, "-o", str(merged)], capture_output=True, text=True)
        assert result.returncode == 1 and mention in result.stderr and other in result.stderr, result.stderr
        assert not merged.exists()
def test_heads_partial_files_read_alone_and_say_so(tmp_path):
    import h5py
    import numpy as np
    part = tmp_path / "detect.h5"
    result = subprocess.run([SCALPEL, "heads", "--detect", "induction,previous-token", "--prompts", repeated_prompts(tmp_path),
                             "--shard", "2/3", "-o", str(part)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "shard 2/3 of a sharded run" in result.stderr and "16 of 40 prompts" in result.stderr
    with h5py.File(part, "r") as f:
        assert f.attrs["format"] == "scalpel-partial" and f.attrs["final_format"] == "scalpel-heads"
        assert f.attrs["partial_kind"] == "heads" and f.attrs["shard"] == "2/3"
        assert list(f["shard/indices"][...]) == list(range(16, 32))
        values = f["heads/values"][...]
        assert values.shape == (2, 6, 4) and np.isfinite(values).all()
        assert len(f["prompts/tokens"][...]) == len(f["shard/indices"][...])
    part = tmp_path / "copy.h5"
    result = subprocess.run([SCALPEL, "heads", "--copy-scores", "--dataset", "digits", "--shard", "2/4", "-o", str(part)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "shard 2/4 of a sharded run" in result.stderr and "layers 1, 5 of 6" in result.stderr
    with h5py.File(part, "r") as f:
        assert f.attrs["partial_kind"] == "heads" and list(f["shard/indices"][...]) == [1, 5]
        copy = f["heads/copy"][...]
        assert np.isfinite(copy[[1, 5]]).all() and np.isnan(np.delete(copy, [1, 5], axis=0)).all()
    for analysis in (["--pattern", "1.1"], ["--writing", "1.1"]):
        refused = subprocess.run([SCALPEL, "heads", *analysis, "--dataset", "digits", "--shard", "1/2", "-o", str(tmp_path / "x.h5")],
                                 capture_output=True, text=True)
        assert refused.returncode == 1 and "--shard is for" in refused.stderr
    assert not (tmp_path / "x.h5").exists()
def test_circuit_partial_file_reads_alone(tmp_path):
    import h5py
    import numpy as np
    part = tmp_path / "part.h5"
    result = subprocess.run([SCALPEL, "circuit", circuit_file(tmp_path), "--dataset", "digits", "--baselines", "20", "--batch-size", "3",
                             "--shard", "2/3", "-o", str(part)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The printed table says it is one part and what it holds.
    assert "shard 2/3 of a sharded run" in result.stderr and "6 of 20 baselines" in result.stderr, result.stderr
    with h5py.File(part, "r") as f:
        assert f.attrs["format"] == "scalpel-partial" and f.attrs["final_format"] == "scalpel-circuit"
        assert f.attrs["partial_kind"] == "circuit" and f.attrs["shard"] == "2/3"
        assert f.attrs["run_parameters"].startswith("circuit ") and "--shard" not in f.attrs["run_parameters"]
        held = f["shard/indices"][...]
        # Batches 1 and 4 of 7 (3 scored circuits each; entry 0 is the circuit, i the i-th baseline).
        assert list(held) == [3, 4, 5, 12, 13, 14]
        baselines = f["circuit/baselines"][...]
        assert baselines.shape == (20,)
        assert np.isfinite(baselines[held - 1]).all()
        assert np.isnan(np.delete(baselines, held - 1)).all()
        assert np.isnan(f["circuit"].attrs["score"]), "the circuit's own score is shard 1's"
        assert np.isfinite(f["circuit"].attrs["full"])


def test_size_hint(tmp_path):
    result = subprocess.run([SCALPEL, "trace", "--dataset", "months", "--hooks", "hook_embed", "-o", str(tmp_path / "t.h5")],
                            capture_output=True, text=True, env=dict(os.environ, SCALPEL_SHARD_HINT_ABOVE="5"))
    assert result.returncode == 0, result.stderr
    assert "--shard 1/2" in result.stderr and "--shard 2/2" in result.stderr
    assert "sbatch --array=1-2" in result.stderr and "scalpel merge" in result.stderr
    quiet = subprocess.run([SCALPEL, "trace", "--dataset", "months", "--hooks", "hook_embed", "-o", str(tmp_path / "u.h5")],
                           capture_output=True, text=True)
    assert "--shard" not in quiet.stderr


def test_paths_size_hint(tmp_path):
    result = subprocess.run([SCALPEL, *SWEEPS["paths"](tmp_path), "-o", str(tmp_path / "p.h5")],
                            capture_output=True, text=True, env=dict(os.environ, SCALPEL_SHARD_HINT_ABOVE="5"))
    assert result.returncode == 0, result.stderr
    assert "path points" in result.stderr and "--shard 1/" in result.stderr and "scalpel merge" in result.stderr
    # Its 3 (direction, layer) steps are the most parts it splits into, whatever its points.
    assert "--shard 3/3" in result.stderr and "/4 " not in result.stderr, result.stderr


def test_classify_parts_say_how_to_finish_and_bad_parts_are_refused(tmp_path):
    import h5py
    base = ["classify", "--dataset", "digits", "--baselines", "2"]
    def part(name, k, n, *extra):
        result = subprocess.run([SCALPEL, *base, *extra, "--shard", f"{k}/{n}", "-o", str(tmp_path / name)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result, str(tmp_path / name)
    first, p1 = part("p1.h5", 1, 3)
    assert first.stdout == ""
    assert "part 1/3 of classify's head patching" in first.stderr and "--patch-result PART1.h5" in first.stderr, first.stderr
    with h5py.File(p1, "r") as f:
        assert f.attrs["format"] == "scalpel-partial" and f.attrs["final_format"] == "scalpel-patch"
        assert f.attrs["run_parameters"] == "classify --dataset digits --baselines 2"
    _, p2 = part("p2.h5", 2, 3)
    _, p3 = part("p3.h5", 3, 3)
    _, foreign = part("q2.h5", 2, 3, "--metric", "prob")
    patch2 = str(tmp_path / "z2.h5")
    subprocess.run([SCALPEL, "patch", "--dataset", "digits", "--target", "z", "--shard", "2/3", "-o", patch2], check=True, capture_output=True)
    out = tmp_path / "out.h5"
    cases = [([p1, p3], ("missing shard 2/3",)), ([p1, p2, p3, p2], ("given more than once", p2)),
             ([p1, foreign, p3], (foreign, "run parameters")), ([p1, patch2, p3], (patch2, "run parameters")),
             ([p1, str(tmp_path / "none.h5"), p3], ("none.h5",))]
    for parts, mentions in cases:
        result = subprocess.run([SCALPEL, *base, "--patch-result", *parts, "-o", str(out)], capture_output=True, text=True)
        assert result.returncode == 1, result.stderr
        assert all(m in result.stderr for m in mentions), (mentions, result.stderr)
        assert not out.exists()
    # merge makes the patch file of the parts; classify reuses it (its float32 values).
    merged = tmp_path / "merged.h5"
    assert subprocess.run([SCALPEL, "merge", p1, p2, p3, "-o", str(merged)], capture_output=True).returncode == 0
    with h5py.File(merged, "r") as f:
        assert f.attrs["format"] == "scalpel-patch" and f["patch"].attrs["target"] == "z"
    reused = subprocess.run([SCALPEL, *base, "--patch-result", str(merged)], capture_output=True, text=True)
    assert reused.returncode == 0, reused.stderr
    for finishing in (["--html", "x.html"], ["--circuit-out", "x.yaml"], ["--patch-result", p1]):
        refused = subprocess.run([SCALPEL, *base, "--shard", "1/2", "-o", str(out), *finishing], capture_output=True, text=True)
        assert refused.returncode == 1 and finishing[0] in refused.stderr, refused.stderr
        assert not out.exists()
