"""Sharded sweeps (DESIGN.md "Sweeps across machines"), run the way a job array runs them:
tools/run_shards.py launches N shards as N processes, merges their partial files and compares the
merged file's contents (every dataset's values, dtype and shape, every attribute) with the
unsharded run's, for patch, trace and lens with N = 1, 2, 3 and 7; one shard interrupted while it
writes leaves nothing, merging without it fails, and rerunning it completes the merge.

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
    # 21 scored circuits (the circuit + 20 baselines) in packed batches of 3: 7 units.
    "circuit": lambda tmp: ["circuit", circuit_file(tmp), "--dataset", "digits", "--baselines", "20", "--batch-size", "3",
                            "--controls", "months"],
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


@pytest.mark.parametrize("sweep", ["patch", "trace", "circuit"])
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


def test_circuit_partial_file_reads_alone(tmp_path):
    import h5py
    import numpy as np
    part = tmp_path / "part.h5"
    result = subprocess.run([SCALPEL, "circuit", circuit_file(tmp_path), "--dataset", "digits", "--baselines", "20", "--batch-size", "3",
                             "--shard", "2/3", "-o", str(part)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The printed table says it is one part and what it holds.
    assert "partial: shard 2/3" in result.stdout and "6 of 20 baselines" in result.stdout, result.stdout
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
