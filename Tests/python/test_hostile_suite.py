"""The hostile-input suite's own command line (tools/hostile_inputs.py; tools/test.sh runs the cases):
`--only CATEGORY` accepts every category the summary prints and selects exactly that category's cases.
Lists cases only; runs no binary."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE = os.path.join(ROOT, "tools", "hostile_inputs.py")


def listed(tmp_path, *args):
    """The case ids `--list` prints (CATEGORY/NAME), with the scratch folder in tmp_path."""
    result = subprocess.run([sys.executable, SUITE, "--list", "--scratch", str(tmp_path), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [line.split("\t")[0] for line in result.stdout.splitlines()]


def test_only_selects_each_category_by_the_name_its_cases_carry(tmp_path):
    everything = listed(tmp_path / "all")
    categories = sorted({case.split("/")[0] for case in everything})
    assert len(categories) >= 15, categories
    for category in categories:
        cases = listed(tmp_path / category, "--only", category)
        assert cases, f"--only {category} lists no case"
        assert all(case.startswith(category + "/") for case in cases), (category, cases[:3])
        # Its fixed (not fuzzed) cases are the same alone as in a full run.
        fixed = {case for case in cases if not case.split("/", 1)[1].startswith("fuzz")}
        assert fixed and fixed <= set(everything), (category, sorted(fixed - set(everything))[:3])
