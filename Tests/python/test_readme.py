"""Every command the READMEs show, run as written in a scratch folder: exit status 0, and the files
each command names (-o, --output, --plot) exist afterwards.

Commands run on the bundled model. Those marked `--model PATH/TO/gpt2` run on a random model with
GPT-2's layer count and tokenizer (written here with numpy), since they name GPT-2's layers.
The ```python blocks run too, after the shell blocks of their README.
"""
import json
import os
import re
import shlex
import struct
import subprocess

import pytest

np = pytest.importorskip("numpy", reason="numpy is not installed (tools/python-test-deps.sh installs it)")
pytest.importorskip("h5py", reason="h5py is not installed (tools/python-test-deps.sh installs it)")
pytest.importorskip("matplotlib", reason="matplotlib is not installed; tools/plot_trace.py needs it (tools/python-test-deps.sh)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARIES = os.path.join(ROOT, ".build", "debug")
GPT2_TOKENIZER = os.path.join(ROOT, "Sources", "Scalpel", "Resources", "gpt2-tokenizer")
READMES = ["README.md", "surgery-plans/README.md"]

# Commands not run (by how they start, and what they must not contain), and why.
SKIPPED = [
    ("tools/quickstart.sh", None, "builds a release binary: the build itself, not a command of the tour"),
    ("tools/test.sh", None, "runs the tests, this one among them"),
    ("swift build", None, "the build itself: this test runs on the binary it made"),
    ("scalpel paths --all", None, "sweeps every family pair, about 6 minutes in a debug build; `paths --from/--to` and "
                                  "`paths --direction next` above run the same code"),
    ("python3 tools/hostile_inputs.py", "--list", "the hostile-input suite takes minutes; tools/test.sh runs it "
                                                   "(its --list command is run here)"),
]


def fenced_blocks(text, language):
    return re.findall(r"^```" + language + r"\n(.*?)^```", text, flags=re.S | re.M)


def shell_commands(text):
    """The lines of the ```sh blocks, continuation lines joined."""
    commands = []
    for block in fenced_blocks(text, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.strip().startswith("#"):
                commands.append(line.strip())
    return commands


def named_outputs(command):
    words = shlex.split(command, comments=True)
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-o", "--output", "--plot")]


def skip_reason(command):
    return next((reason for prefix, unless, reason in SKIPPED
                 if command.startswith(prefix) and (unless is None or unless not in command)), None)


def write_gpt2_shaped_model(folder, n_layer=12, d=16, n_head=2, n_positions=64, vocab=50257, seed=0):
    """A random checkpoint in the hub layout with GPT-2's layer count and tokenizer, small widths."""
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    tensors = {"wte.weight": rng.normal(0, 0.02, (vocab, d)), "wpe.weight": rng.normal(0, 0.01, (n_positions, d))}
    for i in range(n_layer):
        h = f"h.{i}"
        tensors.update({
            f"{h}.ln_1.weight": np.ones(d), f"{h}.ln_1.bias": np.zeros(d),
            f"{h}.attn.c_attn.weight": rng.normal(0, 0.02, (d, 3 * d)), f"{h}.attn.c_attn.bias": np.zeros(3 * d),
            f"{h}.attn.c_proj.weight": rng.normal(0, 0.02, (d, d)), f"{h}.attn.c_proj.bias": np.zeros(d),
            f"{h}.ln_2.weight": np.ones(d), f"{h}.ln_2.bias": np.zeros(d),
            f"{h}.mlp.c_fc.weight": rng.normal(0, 0.02, (d, 4 * d)), f"{h}.mlp.c_fc.bias": np.zeros(4 * d),
            f"{h}.mlp.c_proj.weight": rng.normal(0, 0.02, (4 * d, d)), f"{h}.mlp.c_proj.bias": np.zeros(d),
        })
    tensors.update({"ln_f.weight": np.ones(d), "ln_f.bias": np.zeros(d)})
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, value in tensors.items():
        blob = np.ascontiguousarray(value, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header_bytes = json.dumps(header).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(blobs))
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
              "n_layer": n_layer, "n_embd": d, "n_head": n_head, "n_inner": None, "n_positions": n_positions,
              "vocab_size": vocab, "layer_norm_epsilon": 1e-5, "bos_token_id": 50256, "eos_token_id": 50256,
              "tie_word_embeddings": True, "scale_attn_weights": True}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    for name in ("vocab.json", "merges.txt"):
        with open(os.path.join(GPT2_TOKENIZER, name), "rb") as src, open(os.path.join(folder, name), "wb") as dst:
            dst.write(src.read())


@pytest.fixture(scope="module")
def gpt2_shaped(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("models") / "gpt2")
    write_gpt2_shaped_model(folder)
    return folder


def scratch_like_the_repository(folder):
    """A folder where the READMEs' relative paths (surgery-plans/, circuits/, tools/, outputs/) resolve."""
    for name in ("surgery-plans", "circuits", "tools"):
        os.symlink(os.path.join(ROOT, name), os.path.join(folder, name))
    os.makedirs(os.path.join(folder, "outputs"))


@pytest.mark.parametrize("readme", READMES)
def test_every_readme_command_runs(readme, tmp_path, gpt2_shaped):
    if not os.path.exists(os.path.join(BINARIES, "scalpel")):
        pytest.fail(f"{BINARIES}/scalpel is missing: run `swift build` first")
    with open(os.path.join(ROOT, readme)) as f:
        text = f.read()
    scratch_like_the_repository(str(tmp_path))
    env = dict(os.environ, PATH=BINARIES + os.pathsep + os.environ["PATH"])
    env.pop("SCALPEL_MODELS", None)
    commands = shell_commands(text)
    assert commands, f"{readme} shows no shell commands"
    ran = 0
    for command in commands:
        if skip_reason(command):
            print(f"not run: {command}  ({skip_reason(command)})")
            continue
        command = command.replace("PATH/TO/gpt2", gpt2_shaped)
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{readme}: `{command}` exited {result.returncode}:\n{result.stderr}"
        for path in named_outputs(command):
            assert os.path.exists(tmp_path / path), f"{readme}: `{command}` did not write {path}"
        ran += 1
    for code in fenced_blocks(text, "python"):
        result = subprocess.run(["python3", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{readme}: python block failed:\n{code}\n{result.stderr}"
    assert ran > 0
