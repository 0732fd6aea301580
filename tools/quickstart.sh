#!/usr/bin/env bash
# Quick start: install what is missing, build Scalpel (release), and run the main job on the
# bundled model: the next-token prediction for "1 2 3 4", then its logit lens when available.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product scalpel >&2
scalpel=.build/release/scalpel
"$scalpel" inspect
echo
"$scalpel" run --prompt "1 2 3 4" --answer " 5"
