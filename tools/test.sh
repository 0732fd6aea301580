#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, runs the Swift tests, then the
# Python interoperability tests that read Scalpel's HDF5 files with h5py.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build --build-tests
set +e
swift test --skip-build --disable-swift-testing 2>&1 | grep -vE "^Test Case .*(started|passed)"
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { echo "Swift tests failed (exit $status)" >&2; exit "$status"; }
# On a CPU with AVX-512 the products above ran through Scalpel's own kernels; run the tests of the
# products, the forward pass and circuits again through OpenBLAS sgemm, the path of CPUs without it.
if grep -qw avx512f /proc/cpuinfo; then
    SCALPEL_AVX512=0 swift test --skip-build --disable-swift-testing \
        --filter 'KernelTests|ForwardParityTests|RunSpanTests|CircuitTests|AblationTests|PatchParityTests|AttributionParityTests' 2>&1 \
        | grep -vE "^Test Case .*(started|passed)"
    status=${PIPESTATUS[0]}
    [ "$status" -eq 0 ] || { echo "Swift tests through sgemm (SCALPEL_AVX512=0) failed (exit $status)" >&2; exit "$status"; }
fi
if ls Tests/python/test_*.py >/dev/null 2>&1; then
    # h5py and numpy come from PyPI; when they cannot be installed the tests skip and say why.
    tools/python-test-deps.sh || echo "note: could not install h5py/numpy/matplotlib; the tests that need them will skip" >&2
    tools/browser-deps.sh || echo "note: could not install chromium; the HTML viewer test will skip" >&2
    swift build --product scalpel
    python3 -m pytest -q Tests/python
fi
# The hostile-input suite (issue 10) on the debug binary just built: fixed seed, CI size; it prints
# one line per failure and a summary table per category, and fails the run when anything failed.
swift build --product scalpel
python3 tools/hostile_inputs.py --binary .build/debug/scalpel --seed 10
