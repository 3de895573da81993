"""The activations a model's saved sentence-transformers config can name, without torch."""

from __future__ import annotations

import json
import logging
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank._activations import ACTIVATIONS, from_saved_name

PAIRS = [
    ("How many people live in Berlin?", "Berlin had about 3.6 million people in 2019."),
    ("How many people live in Berlin?", "The museum has ancient coins."),
    ("What is the capital of France?", "Paris is the capital of France."),
    ("a", "b"),
]

# The class paths sentence-transformers saves (`fullname(activation_fn)`), and their
# float64 definitions.
SAVED = {
    "torch.nn.modules.activation.Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "torch.nn.modules.linear.Identity": lambda x: x,
    "torch.nn.modules.activation.Tanh": np.tanh,
    "torch.nn.modules.activation.ReLU": lambda x: np.maximum(x, 0.0),
    "torch.nn.modules.activation.GELU": lambda x: np.array(
        [0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in np.ravel(x)],
        dtype=np.float64).reshape(np.shape(x)),
}


def _with_saved_activation(src: Path, dst: Path, where: str, path: str) -> Path:
    """A copy of the fixture model whose saved activation is ``path``, stored where one of
    sentence-transformers' versions stores it."""
    shutil.copytree(src, dst)
    config_path = dst / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("sentence_transformers", None)
    config.pop("sbert_ce_default_activation_function", None)
    (dst / "config_sentence_transformers.json").unlink(missing_ok=True)
    if where == "6.x":  # config_sentence_transformers.json
        (dst / "config_sentence_transformers.json").write_text(json.dumps(
            {"activation_fn": path, "model_type": "CrossEncoder", "prompts": {},
             "default_prompt_name": None}), encoding="utf-8")
    elif where == "5.x":  # config.json's "sentence_transformers" entry
        config["sentence_transformers"] = {"activation_fn": path, "version": "5.1.1"}
    else:  # before 4.x: config.json's "sbert_ce_default_activation_function"
        config["sbert_ce_default_activation_function"] = path
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return dst


def _load_quietly(path: Path, caplog: pytest.LogCaptureFixture) -> CrossEncoder:
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        model = CrossEncoder(str(path))
    messages = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert not [m for m in messages if "activation" in m.lower()], messages
    return model


@pytest.mark.parametrize("where", ["6.x", "5.x", "legacy"])
def test_a_saved_gelu_loads_as_exact_gelu(bert_dir: Path, tmp_path: Path, where: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    path = _with_saved_activation(bert_dir, tmp_path / "gelu", where,
                                  "torch.nn.modules.activation.GELU")
    model = _load_quietly(path, caplog)
    assert repr(model.activation_fn) == "GELU()"
    raw = model.predict(PAIRS, activation_fn=lambda x: x)
    want = SAVED["torch.nn.modules.activation.GELU"](raw.astype(np.float64))
    got = model.predict(PAIRS)
    assert got.dtype == np.float32 and got.shape == raw.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("saved", sorted(SAVED))
def test_each_saved_activation_loads_without_warning(
        bert_dir: Path, tmp_path: Path, saved: str, caplog: pytest.LogCaptureFixture) -> None:
    model = _load_quietly(_with_saved_activation(bert_dir, tmp_path / "m", "6.x", saved),
                          caplog)
    assert repr(model.activation_fn) == saved.rsplit(".", 1)[-1] + "()"
    raw = model.predict(PAIRS, activation_fn=lambda x: x)
    np.testing.assert_allclose(model.predict(PAIRS), SAVED[saved](raw.astype(np.float64)),
                               rtol=1e-6, atol=1e-6)


def test_saved_softmax_loads_without_warning(bert_dir: Path, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = _with_saved_activation(bert_dir, tmp_path / "m", "6.x",
                                  "torch.nn.modules.activation.Softmax")
    model = _load_quietly(path, caplog)
    assert repr(model.activation_fn) == "Softmax()"
    np.testing.assert_array_equal(model.predict(PAIRS), np.ones(len(PAIRS), np.float32))


def test_gelu_matches_the_erf_definition_over_a_wide_range() -> None:
    gelu = ACTIVATIONS["gelu"]
    x = np.concatenate([np.linspace(-12, 12, 4801), [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0,
                                                     np.float32(3.4e38), -np.float32(3.4e38)]]
                       ).astype(np.float32)
    got = gelu(x.reshape(-1, 1))
    assert got.dtype == np.float32 and got.shape == (x.size, 1)
    want = SAVED["torch.nn.modules.activation.GELU"](x.astype(np.float64))
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-6, atol=1e-6)
    assert np.isnan(gelu(np.array([np.nan], np.float32)))[0]
    assert gelu(np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_gelu_matches_torch_when_installed() -> None:
    torch = pytest.importorskip("torch")
    x = np.linspace(-12, 12, 4801, dtype=np.float32)
    want = torch.nn.GELU()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ACTIVATIONS["gelu"](x), want, rtol=1e-6, atol=1e-6)


def test_short_names_and_class_paths_name_the_same_activation() -> None:
    for name, activation in ACTIVATIONS.items():
        assert from_saved_name(name) is activation
        assert from_saved_name(activation.torch_path, trust_remote_code=False) is activation
