"""Bad input gets a clear exception naming the problem: never a crash, a hang or a panic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from crossrank import CrossEncoder

GOOD = [("query", "document"), ("another query", "another document")]


# -- pairs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "error", "message"),
    [
        ("just a string", TypeError, "single str"),
        (b"bytes", TypeError, "single bytes"),
        (None, TypeError, "NoneType"),
        (42, TypeError, "int"),
        ({"q": "d"}, TypeError, "dict"),
        ([("q", "d"), None], TypeError, "pair 1 must be a list or tuple"),
        ([("q", "d"), "qd"], TypeError, "pair 1 must be a list or tuple"),
        ([("q", None)], TypeError, "pair 0: the second text must be a str, got NoneType"),
        ([(None, "d")], TypeError, "pair 0: the first text must be a str, got NoneType"),
        ([(1, "d")], TypeError, "first text must be a str, got int"),
        ([(b"q", b"d")], TypeError, "got bytes"),
        ((b"q", b"d"), TypeError, "the pair: the first text must be a str, got bytes"),
        (("q", None), TypeError, "the pair: the second text"),
        ([("q",)], ValueError, "pair 0 must have exactly two texts .* got 1"),
        ([("q", "d", "x")], ValueError, "pair 0 must have exactly two texts .* got 3"),
        (("q", "d", "x"), ValueError, "the pair must have exactly two texts .* got 3"),
        ([[]], ValueError, "got 0"),
        ([[("q", "d")]], ValueError, "pair 0 must have exactly two texts .* got 1"),
        ([[["q"], ["d"]]], TypeError, "first text must be a str, got list"),
        (np.array([[1.0, 2.0]]), TypeError, "got float"),
        (np.array([b"q", b"d"]), TypeError, "got bytes"),
        (np.array([["a", "b", "c"]]), ValueError, "got 3"),
    ],
    ids=lambda v: repr(v)[:30] if not isinstance(v, type) else v.__name__,
)
def test_malformed_pairs(bert_model: CrossEncoder, inputs: Any, error: type[Exception],
                         message: str) -> None:
    with pytest.raises(error, match=message):
        bert_model.predict(inputs)


def test_pandas_frame_with_three_columns(bert_model: CrossEncoder) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": ["q"], "b": ["d"], "c": ["x"]})
    with pytest.raises(ValueError, match="exactly two texts"):
        bert_model.predict(frame)
    frame = pd.DataFrame({"a": ["q"], "b": [None]})
    with pytest.raises(TypeError, match="second text must be a str, got NoneType"):
        bert_model.predict(frame)


@pytest.mark.parametrize(
    ("batch_size", "error"),
    [(0, ValueError), (-1, ValueError), (2.0, TypeError), ("8", TypeError), (None, TypeError),
     (True, TypeError)],
)
def test_bad_batch_size(bert_model: CrossEncoder, batch_size: Any,
                        error: type[Exception]) -> None:
    with pytest.raises(error, match="batch_size"):
        bert_model.predict(GOOD, batch_size=batch_size)
    with pytest.raises(error, match="batch_size"):
        bert_model.rank("q", ["d"], batch_size=batch_size)


def test_batch_size_checked_even_for_empty_input(bert_model: CrossEncoder) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        bert_model.predict([], batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        bert_model.rank("q", [], batch_size=0)


@pytest.mark.parametrize("top_k", ["3", 2.5, [1], True])
def test_bad_top_k(bert_model: CrossEncoder, top_k: Any) -> None:
    with pytest.raises(TypeError, match="top_k"):
        bert_model.rank("q", ["d1", "d2"], top_k=top_k)


@pytest.mark.parametrize(
    ("query", "documents", "message"),
    [
        (None, ["d"], "query must be a str"),
        (b"q", ["d"], "query must be a str"),
        (("q", "d"), ["d"], "query must be a str"),
        ("q", "a single document", "not a single str"),
        ("q", ["d", None], r"documents\[1\] must be a str, got NoneType"),
        ("q", ["d", b"x"], r"documents\[1\] must be a str, got bytes"),
        ("q", [("d", "e")], r"documents\[0\] must be a str, got tuple"),
        ("q", 5, "documents must be a list of strings"),
    ],
)
def test_bad_rank_arguments(bert_model: CrossEncoder, query: Any, documents: Any,
                            message: str) -> None:
    with pytest.raises(TypeError, match=message):
        bert_model.rank(query, documents)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"activation_fn": 3}, TypeError, "activation_fn must be callable"),
        ({"prompt": 3}, TypeError, "prompt must be a str"),
        ({"prompt_name": 3}, TypeError, "prompt_name must be a str"),
        ({"prompt_name": "missing"}, ValueError, "not found"),
        ({"convert_to_numpyy": True}, TypeError, "unexpected keyword argument"),
    ],
)
def test_bad_predict_options(bert_model: CrossEncoder, kwargs: dict[str, Any],
                             error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        bert_model.predict(GOOD, **kwargs)


def test_a_failing_activation_propagates(bert_model: CrossEncoder) -> None:
    def broken(_: Any) -> Any:
        raise ZeroDivisionError("from the user's activation")

    with pytest.raises(ZeroDivisionError, match="user's activation"):
        bert_model.predict(GOOD, activation_fn=broken)
    assert bert_model.predict(GOOD).shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_labels": "1"}, TypeError, "num_labels must be an int"),
        ({"num_labels": 0}, ValueError, "num_labels"),
        ({"max_length": 1.5}, TypeError, "max_length must be an int"),
        ({"max_length": 0}, ValueError, "max_length"),
        ({"activation_fn": "sigmoid"}, TypeError, "activation_fn must be callable"),
        ({"config_kwargs": "x"}, TypeError, "config_kwargs must be a dict"),
        ({"config_kwargs": {"x": object()}}, TypeError, "config_kwargs must hold JSON"),
    ],
)
def test_bad_constructor_arguments(bert_dir: Path, kwargs: dict[str, Any],
                                   error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        CrossEncoder(str(bert_dir), **kwargs)


def test_bad_model_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CrossEncoder(str(tmp_path / "does" / "not" / "exist"))
    with pytest.raises(OSError, match=r"weights|config"):
        CrossEncoder(str(tmp_path))  # an empty directory
    with pytest.raises(TypeError, match="model_name_or_path"):
        CrossEncoder(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model_name_or_path"):
        CrossEncoder()


# -- broken model directories ----------------------------------------------------------------


def _copy(bert_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(bert_dir, dst)
    return dst


def _edit_config(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


BROKEN_DIRS: dict[str, tuple[Callable[[Path], None], type[Exception], str]] = {
    "weights cut in half": (lambda d: _truncate(d / "model.safetensors", 0.5), OSError,
                            "model.safetensors"),
    "weights cut to 5 bytes": (lambda d: _truncate(d / "model.safetensors", 0.0001), OSError,
                               "model.safetensors"),
    "weights empty": (lambda d: (d / "model.safetensors").write_bytes(b""), OSError,
                      "model.safetensors"),
    "weights random bytes": (
        lambda d: (d / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096)),
        OSError, "model.safetensors"),
    "pytorch_model.bin not a zip": (
        lambda d: ((d / "model.safetensors").unlink(),
                   (d / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not really")),
        OSError, "pytorch_model.bin"),
    "no weights": (lambda d: (d / "model.safetensors").unlink(), OSError, "weights"),
    "config.json cut short": (lambda d: _truncate(d / "config.json", 0.5), OSError,
                              "config.json"),
    "config.json a list": (lambda d: (d / "config.json").write_text("[1, 2]"), OSError,
                           "config.json"),
    "config.json not utf-8": (lambda d: (d / "config.json").write_bytes(b"\xff\xfe{"), OSError,
                              "config.json"),
    "hidden_size not a number": (
        lambda d: _edit_config(d, lambda c: c.update(hidden_size="big")), OSError,
        "hidden_size"),
    "hidden_size wrong": (lambda d: _edit_config(d, lambda c: c.update(hidden_size=64)),
                          OSError, "64"),
    "more layers than weights": (
        lambda d: _edit_config(d, lambda c: c.update(num_hidden_layers=5)), OSError,
        "layer.2"),
    "heads do not divide width": (
        lambda d: _edit_config(d, lambda c: c.update(num_attention_heads=5)), OSError,
        "heads"),
    "no model_type": (lambda d: _edit_config(d, lambda c: c.pop("model_type")), OSError,
                      "model_type"),
    "unsupported model_type": (lambda d: _edit_config(d, lambda c: c.update(model_type="gpt2")),
                               ValueError, "gpt2.*not supported.*bert"),
    "tokenizer.json cut short": (lambda d: _truncate(d / "tokenizer.json", 0.5), OSError,
                                 "tokenizer.json"),
    "custom modelling code": (
        lambda d: _edit_config(d, lambda c: c.update(
            model_type="my-reranker", auto_map={"AutoModel": "modeling.MyModel"})),
        ValueError, "custom modelling code.*trust_remote_code"),
    "a causal LM of an encoder family": (
        lambda d: _edit_config(d, lambda c: c.update(architectures=["BertForCausalLM"])),
        OSError, "causal language model.*qwen3"),
}


@pytest.mark.parametrize("case", list(BROKEN_DIRS))
def test_broken_model_directory(bert_dir: Path, tmp_path: Path, case: str) -> None:
    breaker, error, message = BROKEN_DIRS[case]
    model_dir = _copy(bert_dir, tmp_path)
    breaker(model_dir)
    with pytest.raises(error, match=message):
        CrossEncoder(str(model_dir))


def test_tokenizer_that_does_not_match_the_weights(bert_dir: Path, tmp_path: Path) -> None:
    """A vocabulary larger than the embedding table: a ValueError when such an id comes up."""
    model_dir = _copy(bert_dir, tmp_path)
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    rows = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    tokenizer["model"]["vocab"]["zebra"] = rows + 500
    (model_dir / "tokenizer.json").write_text(json.dumps(tokenizer))
    model = CrossEncoder(str(model_dir))
    assert model.predict(GOOD).shape == (2,)  # ids inside the table still work
    with pytest.raises(ValueError, match=f"token id {rows + 500} .*embedding"):
        model.predict([("a zebra", "d")])
    with pytest.raises(ValueError, match="embedding"):
        model.rank("zebra", ["d"])
    assert model.predict(GOOD).shape == (2,)  # and the model is still usable
