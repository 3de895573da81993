"""``await model.apredict(...)`` / ``await model.arank(...)``: the work runs in a thread, off
the event loop; concurrent requests overlap; cancelling one leaves the model as it was."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossrank import CrossEncoder

PAIRS = [
    ("How many people live in Berlin?", "Berlin had about 3.6 million people in 2019."),
    ("How many people live in Berlin?", "The museum has ancient coins."),
    ("What is the capital of France?", "Paris is the capital of France."),
]
QUERY = "How many people live in Berlin?"
DOCS = ["Berlin had about 3.6 million people in 2019.", "The museum has ancient coins.",
        "Paris is the capital of France."]


class Recorder:
    """Stands in for the native model: records each predict_logits call (its thread, when it
    ran, how it ended) and can hold a call until told to go on."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.entered = threading.Event()
        self.gate: threading.Event | None = None

    def predict_logits(self, pairs: list[tuple[str, str]], batch_size: int = 32,
                       progress: Any = None, max_length: int | None = None) -> Any:
        call: dict[str, Any] = {"thread": threading.get_ident(), "start": time.monotonic()}
        with self.lock:
            self.calls.append(call)
        self.entered.set()
        try:
            if self.gate is not None:
                assert self.gate.wait(10), "the other request never started"
            out = self._native.predict_logits(pairs, batch_size, progress,
                                              max_length=max_length)
            call["outcome"] = "done"
            return out
        except BaseException as exc:
            call["outcome"] = type(exc).__name__
            raise
        finally:
            call["end"] = time.monotonic()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._native, name)


@pytest.fixture
def model(bert_dir: Path) -> CrossEncoder:
    return CrossEncoder(str(bert_dir))


def test_apredict_and_arank_give_what_predict_and_rank_give(model: CrossEncoder) -> None:
    async def main() -> tuple[Any, ...]:
        return (await model.apredict(PAIRS), await model.apredict(PAIRS, 2),
                await model.apredict(sentences=PAIRS, apply_softmax=True),
                await model.apredict(PAIRS[0]),
                await model.arank(QUERY, DOCS, return_documents=True),
                await model.arank(QUERY, DOCS, 2), await model.arank(QUERY, []))

    scores, batched, softmaxed, one, hits, top2, empty = asyncio.run(main())
    np.testing.assert_array_equal(scores, model.predict(PAIRS))
    np.testing.assert_array_equal(batched, model.predict(PAIRS, 2))
    np.testing.assert_array_equal(softmaxed, model.predict(PAIRS, apply_softmax=True))
    assert one == model.predict(PAIRS[0])
    assert hits == model.rank(QUERY, DOCS, return_documents=True)
    assert top2 == model.rank(QUERY, DOCS, 2) and len(top2) == 2
    assert empty == []


def test_argument_errors_come_from_the_await(model: CrossEncoder) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="unexpected keyword"):
            await model.apredict(PAIRS, nonsense=1)
        with pytest.raises(ValueError, match="batch_size"):
            await model.apredict(PAIRS, batch_size=0)
        with pytest.raises(TypeError, match="query must be a str"):
            await model.arank(3, DOCS)  # type: ignore[arg-type]

    asyncio.run(main())


def test_the_work_runs_off_the_event_loop(model: CrossEncoder) -> None:
    recorder = Recorder(model._native)
    model._native = recorder
    recorder.gate = threading.Event()  # held until the loop shows it is free

    async def main() -> None:
        loop_thread = threading.get_ident()
        task = asyncio.ensure_future(model.apredict(PAIRS))
        while not recorder.entered.is_set():  # the loop keeps running meanwhile
            if task.done():  # failed before reaching the native call: say why
                task.result()
            await asyncio.sleep(0.001)
        assert recorder.calls[0]["thread"] != loop_thread
        assert not task.done()
        recorder.gate.set()
        np.testing.assert_array_equal(await task, model.predict(PAIRS))

    asyncio.run(main())


def test_concurrent_requests_overlap(model: CrossEncoder) -> None:
    recorder = Recorder(model._native)
    model._native = recorder
    gate = threading.Event()
    recorder.gate = gate

    async def main() -> list[Any]:
        first = asyncio.ensure_future(model.apredict(PAIRS))
        while len(recorder.calls) < 1:
            if first.done():  # failed before reaching the native call: say why
                first.result()
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(model.arank(QUERY, DOCS))
        while len(recorder.calls) < 2:  # the second starts while the first is held
            if second.done():
                second.result()
            await asyncio.sleep(0.001)
        gate.set()
        return list(await asyncio.gather(first, second))

    scores, hits = asyncio.run(main())
    a, b = recorder.calls
    assert b["start"] < a["end"] and a["thread"] != b["thread"]
    recorder.gate = None
    np.testing.assert_array_equal(scores, model.predict(PAIRS))
    assert hits == model.rank(QUERY, DOCS)


def test_many_concurrent_requests_are_all_right(model: CrossEncoder) -> None:
    want = model.predict(PAIRS)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(model.apredict(PAIRS, batch_size=1)
                                           for _ in range(16))))

    for got in asyncio.run(main()):
        np.testing.assert_array_equal(got, want)


def test_cancelling_leaves_the_model_working(model: CrossEncoder) -> None:
    recorder = Recorder(model._native)
    model._native = recorder
    gate = threading.Event()
    recorder.gate = gate
    many = PAIRS * 200

    async def main() -> Any:
        task = asyncio.ensure_future(model.apredict(many, batch_size=4))
        while not recorder.entered.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()  # the worker goes on, sees the cancel at its next batch and stops
        recorder.gate = None
        return await model.apredict(PAIRS)

    after = asyncio.run(main())  # asyncio.run waits for the executor's threads
    np.testing.assert_array_equal(after, model.predict(PAIRS))
    cancelled = recorder.calls[0]
    assert cancelled["outcome"] == "_Cancelled"  # stopped early, not run to the end
    assert recorder.calls[1]["outcome"] == "done"


def test_cancelled_arank(model: CrossEncoder) -> None:
    async def main() -> Any:
        task = asyncio.ensure_future(model.arank(QUERY, DOCS * 300, batch_size=2))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await model.arank(QUERY, DOCS)

    assert asyncio.run(main()) == model.rank(QUERY, DOCS)
