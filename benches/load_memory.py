"""Peak memory of loading a model: crossrank's resident set at its highest while a large
float32 checkpoint loads, and after, against the checkpoint's size.

    python benches/load_memory.py [--hidden 1024] [--layers 24] [--precision float32]

Builds (once, under --work) a BERT cross-encoder with random weights of the given size,
its tokenizer copied from a test fixture, then loads it in fresh processes and prints the
peak and steady resident set (from /proc/self/status) as multiples of the checkpoint.
Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_FROM = ROOT / "tests" / "fixtures" / "models" / "bert-st5-1label"

CHILD = """
import sys, warnings
warnings.simplefilter("ignore")
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
from crossrank import CrossEncoder
before = rss("VmRSS:")
model = CrossEncoder(sys.argv[1], precision=sys.argv[2])
model.predict([("a query", "a passage")])
print(before, rss("VmHWM:"), rss("VmRSS:"))
"""


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The safetensors layout: a little-endian u64 header length, a JSON header, the data."""
    header: dict[str, object] = {}
    offset = 0
    for name, array in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for array in tensors.values():
            out.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def build(out: Path, hidden: int, layers: int) -> int:
    """A random-weight BertForSequenceClassification; returns its checkpoint's bytes."""
    config = json.loads((TOKENIZER_FROM / "config.json").read_text())
    vocab, positions, types = (config["vocab_size"], config["max_position_embeddings"],
                               config["type_vocab_size"])
    config.update(hidden_size=hidden, num_hidden_layers=layers, intermediate_size=4 * hidden,
                  num_attention_heads=hidden // 64)
    rng = np.random.default_rng(0)

    def weight(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * 0.02

    tensors = {"bert.embeddings.word_embeddings.weight": weight(vocab, hidden),
               "bert.embeddings.position_embeddings.weight": weight(positions, hidden),
               "bert.embeddings.token_type_embeddings.weight": weight(types, hidden),
               "bert.embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
               "bert.embeddings.LayerNorm.bias": np.zeros(hidden, np.float32)}
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for name, rows, cols in (("attention.self.query", hidden, hidden),
                                 ("attention.self.key", hidden, hidden),
                                 ("attention.self.value", hidden, hidden),
                                 ("attention.output.dense", hidden, hidden),
                                 ("intermediate.dense", 4 * hidden, hidden),
                                 ("output.dense", hidden, 4 * hidden)):
            tensors[p + name + ".weight"] = weight(rows, cols)
            tensors[p + name + ".bias"] = np.zeros(rows, np.float32)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[p + norm + ".weight"] = np.ones(hidden, np.float32)
            tensors[p + norm + ".bias"] = np.zeros(hidden, np.float32)
    tensors["bert.pooler.dense.weight"] = weight(hidden, hidden)
    tensors["bert.pooler.dense.bias"] = np.zeros(hidden, np.float32)
    tensors["classifier.weight"] = weight(config.get("num_labels", 1), hidden)
    tensors["classifier.bias"] = np.zeros(config.get("num_labels", 1), np.float32)
    out.mkdir(parents=True, exist_ok=True)
    for f in TOKENIZER_FROM.iterdir():  # tokenizer and sentence-transformers files
        if f.is_file() and f.name != "config.json" and not f.name.endswith(
                (".safetensors", ".bin", ".index.json")):
            shutil.copy(f, out / f.name)
    write_safetensors(out / "model.safetensors", tensors)
    (out / "config.json").write_text(json.dumps(config, indent=2))  # last: marks it complete
    return sum(a.nbytes for a in tensors.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/crossrank-load-memory"))
    args = parser.parse_args()
    model = args.work / f"bert-h{args.hidden}-l{args.layers}"
    if not (model / "config.json").is_file():
        build(model, args.hidden, args.layers)
    checkpoint = (model / "model.safetensors").stat().st_size
    print(f"checkpoint {checkpoint / 2**20:.0f} MiB ({args.precision})")
    for _ in range(args.rounds):
        done = subprocess.run([sys.executable, "-c", CHILD, str(model), args.precision],
                              capture_output=True, text=True, check=True)
        before, peak, after = (int(v) for v in done.stdout.split())
        print(f"load peak {(peak - before) / checkpoint:.2f}x checkpoint, "
              f"after load {(after - before) / checkpoint:.2f}x "
              f"({(peak - before) / 2**20:.0f} / {(after - before) / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
