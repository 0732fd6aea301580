#!/usr/bin/env bash
# Installs the Debian packages Scalpel builds against, only when they are missing.
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail
missing=()
pkg-config --exists openblas 2>/dev/null || missing+=(libopenblas-dev)
pkg-config --exists hdf5 2>/dev/null || missing+=(libhdf5-dev)
pkg-config --exists libcrypto 2>/dev/null || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} (and pkg-config) with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenblas-dev libhdf5-dev libssl-dev pkg-config >/dev/null
fi
