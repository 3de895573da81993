#!/usr/bin/env python
"""A plain ``predict`` against ``predict(..., pool=pool)``: the pool must never be slower.

crossrank's pool scores its chunks one after the other through the model's own engine (see
``python/crossrank/_pool.py``), so the question is what chunking costs: a native call per
chunk, and the partial batch at each chunk's end where ``chunk_size`` is not a whole number
of batches (the default is). The runs alternate (plain, pool default, pool with
``--chunk-size``) so that the machine's drift hits all of them; printed, with the CPU: the
medians, the median of each run's ratio to the plain run of its round, and the ratio of the
fastest runs.

    python benches/pool.py                        # the committed tiny fixture model
    python benches/pool.py --model-dir DIR --pairs 4000 --reps 9
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from crossrank import CrossEncoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "tests" / "fixtures" / "models" / "bert-st5-1label"
WORDS = ("search ranking model query passage document answer question city river music "
         "science history language computer network energy water forest").split()


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` pairs of mixed lengths (queries of 3-10 words, passages of 10-120)."""
    rng = np.random.default_rng(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi))))

    return [(text(3, 10), text(10, 120)) for _ in range(n)]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--chunk-size", type=int, default=500,
                    help="the explicit chunk size timed besides the default")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()

    model = CrossEncoder(str(args.model_dir))
    pairs = make_pairs(args.pairs)
    pool = model.start_multi_process_pool()
    runs: dict[str, Callable[[], Any]] = {
        "plain": lambda: model.predict(pairs, batch_size=args.batch_size),
        "pool (default chunks)": lambda: model.predict(pairs, batch_size=args.batch_size,
                                                       pool=pool),
        f"pool (chunk_size={args.chunk_size})": lambda: model.predict(
            pairs, batch_size=args.batch_size, pool=pool, chunk_size=args.chunk_size),
    }
    expected = runs["plain"]()  # also the warm-up
    for name, run in runs.items():
        np.testing.assert_array_equal(run(), expected, err_msg=name)

    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, run in runs.items():
            times[name].append(timed(run))
    model.stop_multi_process_pool(pool)

    print(f"CPU: {cpu_name()}, {model.kernels}; model {args.model_dir.name}, "
          f"{args.pairs} pairs, batch_size {args.batch_size}, {args.reps} alternating runs")
    plain = times["plain"]
    for name, values in times.items():
        # Each run against the plain run of its round: steadier than a ratio of medians
        # where the machine is shared.
        paired = statistics.median(v / p for v, p in zip(values, plain))
        print(f"  {name:28s} median {statistics.median(values) * 1000:8.1f} ms   "
              f"min {min(values) * 1000:8.1f} ms   paired ratio to plain {paired:.3f}   "
              f"ratio of mins {min(values) / min(plain):.3f}")


if __name__ == "__main__":
    main()
