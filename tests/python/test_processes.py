"""Processes: pickling, and multiprocessing with the spawn and fork start methods."""

from __future__ import annotations

import copy
import multiprocessing as mp
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossrank import CrossEncoder

PAIRS = [(f"query {i}", f"document number {i} about things") for i in range(40)]
TIMEOUT = 120  # seconds: a deadlock fails the test instead of hanging the suite


def test_pickle_round_trip(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir))
    model.max_length = 24
    model.prompts["q"] = "query: "
    clone = pickle.loads(pickle.dumps(model))
    assert isinstance(clone, CrossEncoder)
    assert clone is not model
    assert repr(clone) == repr(model)
    assert clone.max_length == 24 and clone.prompts == {"q": "query: "}
    np.testing.assert_array_equal(clone.predict(PAIRS), model.predict(PAIRS))
    assert clone.rank("q", ["a", "b"]) == model.rank("q", ["a", "b"])
    np.testing.assert_array_equal(copy.deepcopy(model).predict(PAIRS), model.predict(PAIRS))


def test_pickle_keeps_a_numpy_activation_and_the_multilabel_head(multilabel_dir: Path) -> None:
    model = CrossEncoder(str(multilabel_dir), activation_fn=np.tanh)
    clone = pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    assert clone.activation_fn is np.tanh
    np.testing.assert_array_equal(clone.predict(PAIRS), model.predict(PAIRS))


def test_pickle_of_a_moved_directory_is_a_clear_error(bert_dir: Path, tmp_path: Path) -> None:
    import shutil

    local = tmp_path / "m"
    shutil.copytree(bert_dir, local)
    blob = pickle.dumps(CrossEncoder(str(local)))
    shutil.rmtree(local)
    with pytest.raises(FileNotFoundError):
        pickle.loads(blob)


def test_pickle_of_a_relative_path_works_from_another_directory(
        bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bert_dir.parent)
    model = CrossEncoder(bert_dir.name)
    blob = pickle.dumps(model)
    monkeypatch.chdir(tmp_path)
    clone = pickle.loads(blob)
    assert clone.model_name_or_path == bert_dir.name
    np.testing.assert_array_equal(clone.predict(PAIRS), model.predict(PAIRS))


def test_native_model_pickles_too(bert_model: CrossEncoder) -> None:
    native = bert_model._native
    clone = pickle.loads(pickle.dumps(native))
    assert clone.max_length == native.max_length
    np.testing.assert_array_equal(clone.predict_logits(PAIRS), native.predict_logits(PAIRS))


# Worker functions live at module level so that spawn children can import them.

_MODEL: CrossEncoder | None = None


def _score_with(model: CrossEncoder) -> list[float]:
    return [float(x) for x in model.predict(PAIRS, batch_size=8)]


def _score_with_inherited(_: int) -> tuple[int, list[float]]:
    assert _MODEL is not None
    return os.getpid(), [float(x) for x in _MODEL.predict(PAIRS, batch_size=8)]


def _init_worker(path: str) -> None:
    global _MODEL
    _MODEL = CrossEncoder(path)


def _rank_in_worker(query: str) -> list[dict[str, Any]]:
    assert _MODEL is not None
    return _MODEL.rank(query, [d for _, d in PAIRS], top_k=3)


def test_spawn_pool_with_a_pickled_model(bert_model: CrossEncoder) -> None:
    want = _score_with(bert_model)
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        got = pool.map_async(_score_with, [bert_model] * 3).get(TIMEOUT)
    for scores in got:
        np.testing.assert_allclose(scores, want, rtol=0, atol=0)


def test_spawn_pool_loading_in_an_initializer(bert_model: CrossEncoder, bert_dir: Path) -> None:
    want = [bert_model.rank(q, [d for _, d in PAIRS], top_k=3) for q in ("query 1", "query 7")]
    ctx = mp.get_context("spawn")
    with ctx.Pool(2, initializer=_init_worker, initargs=(str(bert_dir),)) as pool:
        got = pool.map_async(_rank_in_worker, ["query 1", "query 7"]).get(TIMEOUT)
    assert got == want


@pytest.mark.skipif(sys.platform == "win32" or "fork" not in mp.get_all_start_methods(),
                    reason="no fork here")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_after_the_parent_has_used_the_model(bert_dir: Path) -> None:
    """rayon's pool does not survive fork: a child that inherits a used model must still run."""
    global _MODEL
    _MODEL = CrossEncoder(str(bert_dir))
    try:
        want = [float(x) for x in _MODEL.predict(PAIRS, batch_size=8)]  # threads start here
        ctx = mp.get_context("fork")
        with ctx.Pool(2) as pool:
            got = pool.map_async(_score_with_inherited, range(4)).get(TIMEOUT)
        assert {pid for pid, _ in got} - {os.getpid()}
        for _, scores in got:
            assert scores == want
        # A bare fork child, too (no pool machinery), reporting through its exit code.
        proc = ctx.Process(target=_fork_child_check, args=(want,))
        proc.start()
        proc.join(TIMEOUT)
        if proc.is_alive():
            proc.kill()
            pytest.fail("the fork child hung")
        assert proc.exitcode == 0
        # And the parent still works after forking.
        assert [float(x) for x in _MODEL.predict(PAIRS, batch_size=8)] == want
    finally:
        _MODEL = None


def _fork_child_check(want: list[float]) -> None:
    assert _MODEL is not None
    got = [float(x) for x in _MODEL.predict(PAIRS, batch_size=8)]
    ranked = _MODEL.rank("query 3", [d for _, d in PAIRS])
    os._exit(0 if got == want and len(ranked) == len(PAIRS) else 3)
