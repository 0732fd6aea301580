#!/usr/bin/env python3
"""Print an HDF5 file as h5py sees it: groups, datasets (shape, dtype, chunks, compression,
dimension labels), attributes (with their Python types), and hard links that share one object.

Usage: python3 tools/check_h5.py FILE [--values]
"""
import sys

import h5py
import numpy as np


def short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def attributes(obj, indent):
    for name, value in sorted(obj.attrs.items()):
        if name == "DIMENSION_LABELS":
            continue
        print(f"{indent}@{name} = {short(value)}  [{type(value).__name__}]")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    show_values = "--values" in sys.argv
    seen = {}
    with h5py.File(sys.argv[1], "r") as f:
        print(f"/  (libver {f.libver}, HDF5 {h5py.version.hdf5_version})")
        attributes(f, "  ")

        def visit(name, link):  # every link, so both names of a hard-linked object show
            obj = f[name]
            depth = name.count("/") + 1
            indent = "  " * depth
            address = h5py.h5o.get_info(obj.id).addr
            shared = f"  (same object as /{seen[address]})" if address in seen else ""
            seen.setdefault(address, name)
            if isinstance(obj, h5py.Group):
                print(f"{indent[:-2]}{name.split('/')[-1]}/{shared}")
            else:
                labels = [d.label for d in obj.dims]
                print(f"{indent[:-2]}{name.split('/')[-1]}: shape {obj.shape} {obj.dtype} chunks {obj.chunks} "
                      f"maxshape {obj.maxshape} compression {obj.compression} labels {labels}{shared}")
                if show_values:
                    data = obj.asstr()[()] if h5py.check_string_dtype(obj.dtype) else obj[()]
                    print(f"{indent}= {short(data.tolist() if isinstance(data, np.ndarray) else data, 200)}")
            attributes(obj, indent)

        f.visititems_links(visit)


if __name__ == "__main__":
    main()
