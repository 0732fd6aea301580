#!/usr/bin/env bash
# Installs Chromium from Debian for the HTML viewer's headless-browser test
# (Tests/python/test_attention_viewer.py), only when no Chromium is found. Runs apt-get as root, or
# through sudo when not root. When it cannot install, that test skips and says why.
set -euo pipefail
for name in chromium chromium-browser; do
    command -v "$name" >/dev/null 2>&1 && exit 0
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing chromium with apt-get (for the HTML viewer test)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
