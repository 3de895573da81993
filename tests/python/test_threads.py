"""Threads and Ctrl-C: one model shared by many Python threads; KeyboardInterrupt mid-predict."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest

from crossrank import CrossEncoder


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    words = ["berlin", "paris", "people", "museum", "coins", "capital", "france", "river",
             "city", "population", "ancient", "modern", "art", "history", "the", "a", "of"]
    out = []
    for _ in range(n):
        q = " ".join(rng.choice(words, size=int(rng.integers(1, 8))))
        d = " ".join(rng.choice(words, size=int(rng.integers(1, 30))))
        out.append((q, d))
    return out


def test_threads_get_the_same_results_as_serial_calls(bert_model: CrossEncoder) -> None:
    jobs: list[tuple[str, Any]] = []
    for i in range(16):
        if i % 3 == 2:
            pairs = make_pairs(10, seed=i)
            jobs.append(("rank", (pairs[0][0], [d for _, d in pairs])))
        else:
            jobs.append(("predict", make_pairs(20 + i, seed=i)))

    def run(job: tuple[str, Any]) -> Any:
        kind, arg = job
        if kind == "rank":
            return bert_model.rank(*arg, batch_size=4)
        return bert_model.predict(arg, batch_size=8 + len(arg) % 5)

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(2):
            threaded = list(pool.map(run, jobs))
            for (kind, _), got, want in zip(jobs, threaded, serial):
                if kind == "rank":
                    assert got == want
                else:
                    np.testing.assert_array_equal(got, want)


def _predict_seconds(model: CrossEncoder, pairs: list[tuple[str, str]], **kwargs: Any) -> float:
    start = time.perf_counter()
    model.predict(pairs, **kwargs)
    return time.perf_counter() - start


def _pairs_for(model: CrossEncoder, seconds: float, batch_size: int,
               cap: int = 100_000) -> list[tuple[str, str]]:
    """About `seconds` of work for this build (debug or release) on this machine."""
    sample = make_pairs(64, seed=1)
    per_pair = _predict_seconds(model, sample, batch_size=batch_size) / len(sample)
    n = int(min(cap, max(64, seconds / max(per_pair, 1e-7))))
    return make_pairs(n, seed=2)


def test_the_gil_is_released_during_predict(bert_model: CrossEncoder) -> None:
    pairs = _pairs_for(bert_model, 0.5, batch_size=16)
    count = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.05)
        before = count
        start = time.perf_counter()
        bert_model.predict(pairs, batch_size=16)
        seconds = time.perf_counter() - start
        during = count - before
    finally:
        stop.set()
        spinner.join()
    # A pure-Python thread runs millions of loops a second; with the GIL held for the whole
    # call it would make none.
    assert during > 20_000 * seconds, (during, seconds)


def test_concurrent_predicts_overlap(bert_model: CrossEncoder,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads' batches interleave: neither call waits for the other to finish."""
    import tqdm.auto

    events: list[tuple[int, int]] = []
    lock = threading.Lock()

    class Bar:
        def __init__(self, total: int, **_: Any) -> None:
            self.n = 0

        def update(self, n: int) -> None:
            self.n += n
            with lock:
                events.append((threading.get_ident(), self.n))

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    pairs = _pairs_for(bert_model, 0.4, batch_size=2, cap=4000)
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        bert_model.predict(pairs, batch_size=2, show_progress_bar=True)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    owners = [ident for ident, _ in events]
    assert len(set(owners)) == 2
    switches = sum(a != b for a, b in zip(owners, owners[1:]))
    # Serialised calls would switch owner once; overlapping ones interleave.
    assert switches >= 3, switches


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_ctrl_c_stops_a_long_predict_and_the_model_stays_usable(bert_dir: Path) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    model = CrossEncoder(str(bert_dir))
    check = make_pairs(20, seed=3)
    want = model.predict(check)
    # Long enough to be sure the signal lands mid-predict (about 6 s uninterrupted), on
    # batches of one pair.
    sample = make_pairs(200, seed=4)
    start = time.perf_counter()
    model.tokenizer([q for q, _ in sample], [d for _, d in sample])
    tokenize_per_pair = (time.perf_counter() - start) / len(sample)
    per_pair = _predict_seconds(model, sample, batch_size=1) / len(sample)
    n = int(min(400_000, max(2_000, 6.0 / per_pair)))
    pairs = make_pairs(200, seed=5) * (n // 200)
    # Fire once tokenisation is surely done and the batches are running.
    delay = 0.2 + 1.5 * tokenize_per_pair * len(pairs)

    fired: list[float] = []

    def interrupt() -> None:
        fired.append(time.perf_counter())
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    armed = threading.Event()
    armed.set()

    def handler(signum: int, frame: FrameType | None) -> None:
        # Python's default handler, but never outside the predict below: a late signal must
        # not interrupt the test session itself.
        if armed.is_set():
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(delay, interrupt)
    try:
        start = time.perf_counter()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            try:
                model.predict(pairs, batch_size=1)
            finally:
                armed.clear()
        stopped = time.perf_counter()
    finally:
        armed.clear()
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, old)
    assert fired, "the predict finished before the timer fired"
    # "Within about one batch": a batch here is one pair; allow scheduling slack.
    assert stopped - fired[0] < max(1.0, 50 * per_pair), (stopped - fired[0], per_pair)
    assert stopped - start < 0.5 * len(pairs) * per_pair  # far from a full run
    np.testing.assert_array_equal(model.predict(check), want)
    assert model.rank(check[0][0], [d for _, d in check])
