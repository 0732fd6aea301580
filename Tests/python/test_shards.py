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


def repeated_prompts(folder):
    """40 prompts that repeat their numbers (every detector has something to find): three of the detectors' batches of 16."""
    path = folder / "repeated.txt"
    path.write_text("".join(f"{i} {i + 1} {i + 2} {i} {i + 1} {i + 2}\n" for i in range(1, 41)))
    return str(path)


SWEEPS = {
    "patch": lambda tmp: ["patch", "--dataset", "months", "--target", "z", "--layers", "0-1"],
    "trace": lambda tmp: ["trace", "--dataset", "digits", "--hooks", "blocks.0.hook_resid_post,blocks.1.attn.hook_pattern",
                          "--batch-size", "2"],
    "lens": lambda tmp: ["lens", "--prompts", lens_prompts(tmp), "--positions", "all"],
    "heads-detect": lambda tmp: ["heads", "--detect", "all", "--prompts", repeated_prompts(tmp)],
    "heads-copy": lambda tmp: ["heads", "--copy-scores", "--dataset", "digits", "--heads", "2.1,5.3"],
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


@pytest.mark.parametrize("sweep", ["patch", "trace", "heads-detect", "heads-copy"])
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


def test_heads_partial_files_read_alone_and_say_so(tmp_path):
    import h5py
    import numpy as np
    part = tmp_path / "detect.h5"
    result = subprocess.run([SCALPEL, "heads", "--detect", "induction,previous-token", "--prompts", repeated_prompts(tmp_path),
                             "--shard", "2/3", "-o", str(part)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "partial result: shard 2/3" in result.stdout and "16 of the 40 prompts" in result.stdout
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
    assert "partial result: shard 2/4 of a sharded run, layers 1, 5 of 6" in result.stdout
    with h5py.File(part, "r") as f:
        assert f.attrs["partial_kind"] == "heads" and list(f["shard/indices"][...]) == [1, 5]
        copy = f["heads/copy"][...]
        assert np.isfinite(copy[[1, 5]]).all() and np.isnan(np.delete(copy, [1, 5], axis=0)).all()
    for analysis in (["--pattern", "1.1"], ["--writing", "1.1"]):
        refused = subprocess.run([SCALPEL, "heads", *analysis, "--dataset", "digits", "--shard", "1/2", "-o", str(tmp_path / "x.h5")],
                                 capture_output=True, text=True)
        assert refused.returncode == 1 and "--shard is for" in refused.stderr
    assert not (tmp_path / "x.h5").exists()


def test_size_hint(tmp_path):
    result = subprocess.run([SCALPEL, "trace", "--dataset", "months", "--hooks", "hook_embed", "-o", str(tmp_path / "t.h5")],
                            capture_output=True, text=True, env=dict(os.environ, SCALPEL_SHARD_HINT_ABOVE="5"))
    assert result.returncode == 0, result.stderr
    assert "--shard 1/2" in result.stderr and "--shard 2/2" in result.stderr
    assert "sbatch --array=1-2" in result.stderr and "scalpel merge" in result.stderr
    quiet = subprocess.run([SCALPEL, "trace", "--dataset", "months", "--hooks", "hook_embed", "-o", str(tmp_path / "u.h5")],
                           capture_output=True, text=True)
    assert "--shard" not in quiet.stderr
