"""A minimal GPT-2 forward pass in numpy, independent of Scalpel, to check the values in its files.

Reads a Hugging Face checkpoint folder (config.json + model.safetensors) without the safetensors
package: an 8-byte header length, a JSON header, then little-endian tensors.
"""
import json
import os
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        raw = np.frombuffer(data[8 + n + begin:8 + n + end], dtype=DTYPES[entry["dtype"]])
        out[name.removeprefix("transformer.")] = raw.astype(np.float32).reshape(entry["shape"])
    return out


class GPT2:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json")) as f:
            self.config = json.load(f)
        self.w = load_safetensors(os.path.join(folder, "model.safetensors"))
        self.n_layer = self.config["n_layer"]
        self.n_head = self.config["n_head"]
        self.eps = self.config.get("layer_norm_epsilon", 1e-5)

    def ln(self, x, prefix):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def forward(self, tokens):
        """Returns (resid_post per block [n_layer][pos, d], patterns per block [head, q, k], logits [pos, vocab])."""
        w, t = self.w, len(tokens)
        x = (w["wte.weight"][tokens] + w["wpe.weight"][:t]).astype(np.float64)
        d = x.shape[1]
        dh = d // self.n_head
        mask = np.triu(np.full((t, t), -np.inf), 1)
        posts, patterns = [], []
        for i in range(self.n_layer):
            h = f"h.{i}"
            qkv = self.ln(x, f"{h}.ln_1") @ w[f"{h}.attn.c_attn.weight"] + w[f"{h}.attn.c_attn.bias"]
            q, k, v = (qkv[:, j * d:(j + 1) * d].reshape(t, self.n_head, dh).transpose(1, 0, 2) for j in range(3))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(dh) + mask
            pattern = np.exp(scores - scores.max(-1, keepdims=True))
            pattern /= pattern.sum(-1, keepdims=True)
            z = (pattern @ v).transpose(1, 0, 2).reshape(t, d)
            x = x + z @ w[f"{h}.attn.c_proj.weight"] + w[f"{h}.attn.c_proj.bias"]
            pre = self.ln(x, f"{h}.ln_2") @ w[f"{h}.mlp.c_fc.weight"] + w[f"{h}.mlp.c_fc.bias"]
            post = 0.5 * pre * (1 + np.tanh(np.sqrt(2 / np.pi) * (pre + 0.044715 * pre ** 3)))
            x = x + post @ w[f"{h}.mlp.c_proj.weight"] + w[f"{h}.mlp.c_proj.bias"]
            posts.append(x)
            patterns.append(pattern)
        logits = self.ln(x, "ln_f") @ w["wte.weight"].T
        return posts, patterns, logits
