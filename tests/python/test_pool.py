"""``start_multi_process_pool`` / ``predict(..., pool=pool, chunk_size=...)``: the chunks of a
pool are scored through the model's own engine, with the scores of a plain call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank._pool import MultiProcessPool, default_chunk_size

PAIRS = [(f"query {i % 9}", "a document " + "with more words " * (i % 6) + str(i))
         for i in range(101)]
DOCUMENTS = [d for _, d in PAIRS[:40]]


class CountingEngine:
    """Stands in front of the native model and records the pairs of each call."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self.calls: list[int] = []

    def predict_logits(self, pairs: list[tuple[str, str]], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(len(pairs))
        return self._native.predict_logits(pairs, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._native, name)


@pytest.fixture
def model(bert_dir: Path) -> CrossEncoder:
    return CrossEncoder(str(bert_dir))


@pytest.fixture
def counted(model: CrossEncoder) -> CountingEngine:
    engine = CountingEngine(model._native)
    model._native = engine  # type: ignore[assignment]
    return engine


@pytest.fixture
def pool(model: CrossEncoder) -> Any:
    pool = model.start_multi_process_pool()
    yield pool
    model.stop_multi_process_pool(pool)


def test_the_pool_is_a_dict_with_sentence_transformers_keys(model: CrossEncoder) -> None:
    pool = model.start_multi_process_pool()
    assert isinstance(pool, dict) and isinstance(pool, MultiProcessPool)
    assert set(pool) == {"input", "output", "processes"}
    assert pool["processes"] == [] and pool.target_devices == ["cpu"]
    assert not pool.closed
    CrossEncoder.stop_multi_process_pool(pool)  # a static method, as in 6.x
    assert pool.closed


@pytest.mark.parametrize("chunk_size", [1, 7, 32, 100, 101, 5000, None])
def test_pool_scores_are_the_plain_scores(model: CrossEncoder, pool: Any,
                                          chunk_size: int | None) -> None:
    plain = model.predict(PAIRS)
    got = model.predict(PAIRS, pool=pool, chunk_size=chunk_size)
    assert got.dtype == np.float32 and got.shape == plain.shape
    np.testing.assert_array_equal(got, plain)


def test_pool_with_several_labels_and_options(multilabel_dir: Path) -> None:
    model = CrossEncoder(str(multilabel_dir))
    pool = model.start_multi_process_pool(["cpu", "cpu"])
    for kwargs in ({}, {"apply_softmax": True}, {"activation_fn": np.tanh},
                   {"batch_size": 5}, {"convert_to_numpy": False}):
        plain = model.predict(PAIRS, **kwargs)
        np.testing.assert_array_equal(model.predict(PAIRS, pool=pool, chunk_size=9, **kwargs),
                                      plain)
    model.stop_multi_process_pool(pool)


def test_chunk_size_is_the_pairs_per_engine_call(model: CrossEncoder, counted: CountingEngine,
                                                 pool: Any) -> None:
    model.predict(PAIRS, pool=pool, chunk_size=7)
    assert counted.calls == [7] * 14 + [3]
    counted.calls.clear()
    model.predict(PAIRS, pool=pool, chunk_size=1000)
    assert counted.calls == [101]


def test_default_chunks_are_whole_batches(model: CrossEncoder, counted: CountingEngine,
                                          pool: Any) -> None:
    many = PAIRS * 10  # 1010 pairs: a tenth is 101, rounded up to 4 batches of 32
    model.predict(many, pool=pool)
    assert counted.calls == [128] * 7 + [114]
    counted.calls.clear()
    model.predict(many, pool=pool, batch_size=50)
    assert counted.calls == [150] * 6 + [110]
    assert sum(counted.calls) == len(many)


def test_default_chunk_size() -> None:
    assert default_chunk_size(1, 32) == 32
    assert default_chunk_size(320, 32) == 32
    assert default_chunk_size(321, 32) == 64
    assert default_chunk_size(10**6, 32) == 5024  # sentence-transformers' cap: 5000 pairs
    assert default_chunk_size(10**6, 1) == 5000


def test_a_plain_call_is_one_engine_call(model: CrossEncoder,
                                         counted: CountingEngine) -> None:
    model.predict(PAIRS, chunk_size=7)  # no pool: chunk_size has no effect, as in 6.x
    model.predict(PAIRS, chunk_size=0)
    assert counted.calls == [101, 101]


def test_pool_keeps_single_pairs_and_empty_inputs(model: CrossEncoder, pool: Any) -> None:
    one = model.predict(PAIRS[0], pool=pool)
    assert np.ndim(one) == 0 and one == model.predict(PAIRS[0])
    empty = model.predict([], pool=pool)
    assert empty.shape == (0,) and empty.dtype == np.float32
    assert model.rank("query", [], pool=pool) == []


def test_rank_with_a_pool(model: CrossEncoder, pool: Any) -> None:
    plain = model.rank("query 3", DOCUMENTS, top_k=10, return_documents=True)
    assert model.rank("query 3", DOCUMENTS, top_k=10, return_documents=True, pool=pool,
                      chunk_size=6) == plain
    # 6.x's positional order: top_k, return_documents, prompt_name, prompt, batch_size,
    # show_progress_bar, activation_fn, device, pool, chunk_size.
    assert model.rank("query 3", DOCUMENTS, 10, True, None, None, 32, False, None, None,
                      pool, 6) == plain


def test_apredict_with_a_pool(model: CrossEncoder, pool: Any) -> None:
    got = asyncio.run(model.apredict(PAIRS, pool=pool, chunk_size=10))
    np.testing.assert_array_equal(got, model.predict(PAIRS))


def test_progress_bar_counts_chunks(model: CrossEncoder, pool: Any,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    model.predict(PAIRS, pool=pool, chunk_size=20, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "Chunks" in err and "6/6" in err and "Batches" not in err
    model.predict(PAIRS, pool=pool, chunk_size=20, show_progress_bar=False)
    assert capsys.readouterr().err == ""


def test_a_device_list_scores_in_chunks(model: CrossEncoder, counted: CountingEngine) -> None:
    plain = model.predict(PAIRS)
    np.testing.assert_array_equal(model.predict(PAIRS, device=["cpu", "cpu"], chunk_size=50),
                                  plain)
    assert counted.calls == [101, 50, 50, 1]
    with pytest.warns(UserWarning, match="runs on the CPU; device='cuda:[01]' is ignored"
                      ) as rec:
        model.predict(PAIRS, device=["cuda:0", "cuda:1"])
    assert [str(w.message)[-19:] for w in rec] == ["'cuda:0' is ignored", "'cuda:1' is ignored"]
    assert rec[0].filename == __file__


def test_gpu_target_devices_warn_as_device_does(model: CrossEncoder) -> None:
    with pytest.warns(UserWarning, match="runs on the CPU; device='cuda:[01]' is ignored"
                      ) as rec:
        pool = model.start_multi_process_pool(["cuda:0", "cuda:1"])
    assert rec[0].filename == __file__ and len(rec) == 2
    assert pool.target_devices == ["cuda:0", "cuda:1"]
    np.testing.assert_array_equal(model.predict(PAIRS, pool=pool), model.predict(PAIRS))


@pytest.mark.parametrize(("target_devices", "error", "message"), [
    ("cpu", TypeError, "target_devices must be a list"),
    (3, TypeError, "target_devices must be a list"),
    ([], ValueError, "at least one device"),
    (["cpu", 0], TypeError, "device names"),
])
def test_bad_target_devices(model: CrossEncoder, target_devices: Any,
                            error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        model.start_multi_process_pool(target_devices)


@pytest.mark.parametrize(("chunk_size", "error", "message"), [
    (0, ValueError, "chunk_size must be a positive integer, got 0"),
    (-3, ValueError, "positive integer"),
    ("10", TypeError, "chunk_size must be an int or None, got str"),
    (2.5, TypeError, "got float"),
    (True, TypeError, "got bool"),
])
def test_bad_chunk_size(model: CrossEncoder, pool: Any, chunk_size: Any,
                        error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        model.predict(PAIRS, pool=pool, chunk_size=chunk_size)
    with pytest.raises(error, match=message):
        model.rank("query", DOCUMENTS, pool=pool, chunk_size=chunk_size)


def test_numpy_chunk_size(model: CrossEncoder, pool: Any) -> None:
    np.testing.assert_array_equal(model.predict(PAIRS, pool=pool, chunk_size=np.int64(8)),
                                  model.predict(PAIRS))


def test_a_pool_must_be_crossrank_s(model: CrossEncoder) -> None:
    fake = {"input": None, "output": None, "processes": []}
    with pytest.raises(TypeError, match="pool must come from crossrank's"):
        model.predict(PAIRS, pool=fake)
    with pytest.raises(TypeError, match="takes a pool from crossrank's"):
        model.stop_multi_process_pool(fake)  # type: ignore[arg-type]


def test_a_stopped_pool(model: CrossEncoder) -> None:
    pool = model.start_multi_process_pool()
    model.stop_multi_process_pool(pool)
    model.stop_multi_process_pool(pool)  # harmless
    with pytest.raises(ValueError, match="stopped with stop_multi_process_pool"):
        model.predict(PAIRS, pool=pool)
    with pytest.raises(ValueError, match="start a new one"):
        model.rank("query", DOCUMENTS, pool=pool)
    np.testing.assert_array_equal(model.predict(PAIRS, pool=model.start_multi_process_pool()),
                                  model.predict(PAIRS))


def test_a_pool_belongs_to_its_model(model: CrossEncoder, bert_dir: Path) -> None:
    other = CrossEncoder(str(bert_dir))
    pool = other.start_multi_process_pool()
    with pytest.raises(ValueError, match="started by another CrossEncoder"):
        model.predict(PAIRS, pool=pool)


def test_signatures_match_sentence_transformers() -> None:
    st = pytest.importorskip("sentence_transformers")
    import inspect

    theirs = st.CrossEncoder
    if not hasattr(theirs, "start_multi_process_pool"):
        pytest.skip("this sentence-transformers has no CrossEncoder pools (5.x)")
    for name in ("start_multi_process_pool", "stop_multi_process_pool"):
        ours_params = list(inspect.signature(getattr(CrossEncoder, name)).parameters)
        their_params = list(inspect.signature(getattr(theirs, name)).parameters)
        assert ours_params == their_params, name
    assert isinstance(inspect.getattr_static(CrossEncoder, "stop_multi_process_pool"),
                      staticmethod)
    assert isinstance(inspect.getattr_static(theirs, "stop_multi_process_pool"), staticmethod)
    for method in ("predict", "rank"):
        params = inspect.signature(getattr(theirs, method)).parameters
        assert {"pool", "chunk_size", "device"} <= set(params), method
