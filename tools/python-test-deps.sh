#!/usr/bin/env bash
# Installs the Python packages the interoperability tests and tools/plot_trace.py use (h5py, numpy,
# matplotlib, pytest) when missing.
python3 -c "import h5py, numpy, matplotlib, pytest" 2>/dev/null && exit 0
python3 -m pip install -q h5py numpy matplotlib pytest
