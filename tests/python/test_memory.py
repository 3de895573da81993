"""Memory: scoring the same pairs again and again does not grow the process."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pairs(n: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)] + ["berlin", "paris", "ünïcödé", "東京", "🎉"]
    return [(" ".join(rng.choice(words, 4)), " ".join(rng.choice(words, 20))) for _ in range(n)]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_repeated_scoring_does_not_grow_memory(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir))
    data = pairs(10_000)
    docs = [d for _, d in data[:2000]]
    want = model.predict(data)
    for _ in range(2):  # warm up allocator pools and caches
        model.predict(data)
        model.rank("berlin", docs)
    gc.collect()
    baseline = rss_bytes()
    samples = []
    for _ in range(8):
        out = model.predict(data)
        model.rank("berlin", docs, return_documents=True)
        del out
        gc.collect()
        samples.append(rss_bytes() - baseline)
    np.testing.assert_array_equal(model.predict(data), want)
    mib = [s / 2**20 for s in samples]
    # One call's inputs, tokens and outputs are a few MiB: leaking any of them per call would
    # add about that much each round. RSS here stays flat to within a few MiB (allocator
    # arenas of the worker threads grow in steps).
    assert max(mib) < 24, mib
    assert mib[-1] - mib[0] < 8, mib


def test_short_repeated_scoring_does_not_grow_memory(bert_model: CrossEncoder) -> None:
    """A quick smoke test for every run: 400 pairs, 12 rounds, a generous bound."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    data = pairs(400)
    samples = []
    for _ in range(12):
        bert_model.predict(data, batch_size=64)
        gc.collect()
        samples.append(rss_bytes() / 2**20)
    # Allocator pools settle in the first rounds (steps of a few MiB are normal); a leak
    # keeps growing: 2 KiB per pair per call would add 6 MiB over the last eight rounds.
    assert samples[-1] - samples[3] < 6, samples
