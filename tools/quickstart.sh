#!/usr/bin/env bash
# Quick start: install what is missing, build Scalpel (release), and run the main job on the
# bundled model: the next-token prediction for "1 2 3 4", its logit lens (table + picture), and the
# study's months table.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product scalpel >&2
scalpel=.build/release/scalpel
mkdir -p outputs
set -x
"$scalpel" run --prompt "1 2 3 4" --answer " 5"
"$scalpel" lens --prompt "1 2 3 4" --target " 5" --positions all --plot outputs/lens-1-2-3-4.svg --force
"$scalpel" run --dataset months
