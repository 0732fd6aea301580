#!/usr/bin/env bash
# Installs the Python packages the interoperability tests use (h5py, numpy, pytest) when missing.
python3 -c "import h5py, numpy, pytest" 2>/dev/null && exit 0
python3 -m pip install -q h5py numpy pytest
