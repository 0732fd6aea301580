#!/usr/bin/env python3
"""Plot a Scalpel activation file with h5py and matplotlib.

    scalpel trace --dataset digits --hooks "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern" -o outputs/traces/digits.h5
    python3 tools/plot_trace.py outputs/traces/digits.h5 -o outputs/traces/digits.png

Left: the residual-stream norm at each prompt's last position after every block (one thin line per
prompt, the mean in bold). Right: the first attention pattern in the file for one prompt and head.

Needs h5py, numpy and matplotlib (`tools/python-test-deps.sh` installs them).
"""
import argparse
import re
import sys

import h5py
import numpy as np

try:
    import matplotlib
except ImportError:
    sys.exit("plot_trace.py needs matplotlib: python3 -m pip install matplotlib (or run tools/python-test-deps.sh)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("-o", "--output", default="trace.png")
    parser.add_argument("--prompt", type=int, default=0, help="prompt index for the attention pattern")
    parser.add_argument("--head", type=int, default=0)
    args = parser.parse_args()

    with h5py.File(args.trace, "r") as f:
        lengths = f["prompts/lengths"][:]
        texts = f["prompts/text"].asstr()[:]
        tokens = f["prompts/tokens"][:]
        acts = f["activations"]
        resid = sorted((n for n in acts if n.endswith("hook_resid_post")), key=lambda n: int(re.findall(r"\d+", n)[0]))
        patterns = [n for n in acts if n.endswith("hook_pattern")]

        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        if resid:
            # h5py takes one index list per read, so each prompt's last position is read on its own.
            def last_positions(name):
                return np.stack([acts[name][p, lengths[p] - 1] for p in range(len(lengths))])

            norms = np.stack([np.linalg.norm(last_positions(n), axis=-1) for n in resid], axis=1)
            for row in norms:
                axes[0].plot(row, color="0.75", linewidth=0.8)
            axes[0].plot(norms.mean(0), color="C3", linewidth=2.5, label="mean over prompts")
            axes[0].set_xlabel("block (hook_resid_post)")
            axes[0].set_ylabel("‖residual‖ at the last position")
            axes[0].set_title("Residual-stream norm")
            axes[0].legend()
        if patterns:
            n = lengths[args.prompt]
            pattern = acts[patterns[0]][args.prompt, args.head, :n, :n]
            axes[1].imshow(pattern, cmap="viridis", vmin=0, vmax=1)
            labels = [str(t) for t in tokens[args.prompt, :n]]
            axes[1].set_xticks(range(n), labels, rotation=90, fontsize=7)
            axes[1].set_yticks(range(n), labels, fontsize=7)
            axes[1].set_title(f"{patterns[0]} head {args.head}\n{texts[args.prompt]!r}", fontsize=9)
            axes[1].set_xlabel("key position (token id)")
            axes[1].set_ylabel("query position")
        fig.tight_layout()
        fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
