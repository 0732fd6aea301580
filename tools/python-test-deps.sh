#!/usr/bin/env bash
# Installs the Python packages the interoperability tests and tools/plot_trace.py use (h5py, numpy,
# matplotlib, pytest, and xarray with h5netcdf for Tests/python/test_xarray.py) when missing.
python3 -c "import h5py, numpy, matplotlib, pytest, xarray, h5netcdf" 2>/dev/null && exit 0
python3 -m pip install -q h5py numpy matplotlib pytest xarray h5netcdf
