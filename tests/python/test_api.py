"""The sentence-transformers API contract: argument forms, defaults, return types, progress."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import crossrank
from crossrank import CrossEncoder

PAIRS = [
    ("How many people live in Berlin?", "Berlin had about 3.6 million people in 2019."),
    ("How many people live in Berlin?", "The museum has ancient coins."),
    ("What is the capital of France?", "Paris is the capital of France."),
    ("", "an empty query"),
    ("Ünïcödé ✓ 東京", "emoji 🎉 and accents é"),
]

try:
    import torch  # noqa: F401

    HAS_TORCH = True
except ImportError:
    HAS_TORCH = False


@pytest.fixture(scope="module")
def multilabel_model(multilabel_dir: Path) -> CrossEncoder:
    return CrossEncoder(str(multilabel_dir))


@pytest.fixture
def fresh_model(bert_dir: Path) -> CrossEncoder:
    """A model of its own, for tests that change settings."""
    return CrossEncoder(str(bert_dir))


# -- loading ----------------------------------------------------------------------------------


def test_properties(bert_model: CrossEncoder) -> None:
    assert bert_model.num_labels == 1
    assert isinstance(bert_model.max_length, int) and bert_model.max_length > 0
    assert bert_model.max_seq_length == bert_model.max_length
    assert bert_model.device == "cpu"
    assert bert_model.config["model_type"] == "bert"
    assert bert_model.config.num_labels == 1
    assert repr(bert_model.activation_fn) == "Sigmoid()"
    assert bert_model.get_backend() == "torch"
    assert bert_model.tokenizer is not None
    assert bert_model.model_type in crossrank.SUPPORTED_MODEL_TYPES


def test_repr_is_readable(bert_model: CrossEncoder, bert_dir: Path) -> None:
    text = repr(bert_model)
    assert text.startswith("CrossEncoder(")
    for part in ("model_type='bert'", "num_layers=2", "num_labels=1",
                 f"max_length={bert_model.max_length}", "device='cpu'",
                 "activation_fn=Sigmoid()", repr(str(bert_dir))):
        assert part in text, (part, text)
    assert "\n" not in text


def test_constructor_aliases_of_5x_and_6x(bert_dir: Path, caplog: pytest.LogCaptureFixture
                                          ) -> None:
    with caplog.at_level(logging.WARNING):
        model = CrossEncoder(model_name=str(bert_dir), cache_dir=None, tokenizer_args={},
                             automodel_args={}, config_args={},
                             default_activation_function=lambda x: x, classifier_dropout=0.2)
    assert "renamed and is now deprecated" in caplog.text
    assert model.config["classifier_dropout"] == 0.2
    np.testing.assert_allclose(model.predict(PAIRS[:2]),
                                CrossEncoder(str(bert_dir), activation_fn=lambda x: x)
                                .predict(PAIRS[:2]), rtol=1e-6)
    # Old and new name together: the new one wins, as in sentence-transformers.
    model = CrossEncoder(str(bert_dir), model_name="ignored/because-the-path-wins")
    assert model.num_labels == 1
    # 6.x spellings
    model = CrossEncoder(str(bert_dir), processor_kwargs={"model_max_length": 20},
                         config_kwargs={"num_labels": 1}, prompts={"q": "query: "})
    assert model.max_length == 20
    assert model.prompts["q"] == "query: "


def test_positional_constructor_of_5x(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir), None, 16)  # num_labels, max_length
    assert model.max_length == 16


def test_unknown_constructor_keyword_is_a_type_error(bert_dir: Path) -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        CrossEncoder(str(bert_dir), no_such_option=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("backend", ["onnx", "openvino", "tensorflow"])
def test_other_backends_are_refused(bert_dir: Path, backend: str) -> None:
    with pytest.raises(ValueError, match="backend"):
        CrossEncoder(str(bert_dir), backend=backend)


def test_a_gpu_device_is_ignored_with_a_warning(bert_dir: Path) -> None:
    with pytest.warns(UserWarning, match="CPU"):
        model = CrossEncoder(str(bert_dir), device="cuda")
    assert model.device == "cpu"


def test_device_warnings_name_the_callers_line(bert_model: CrossEncoder, bert_dir: Path
                                              ) -> None:
    calls = [
        lambda: CrossEncoder(str(bert_dir), device="cuda"),
        lambda: bert_model.predict(PAIRS[:1], device="cuda:0"),
        lambda: bert_model.predict(PAIRS[:1], None, None, 32, False, None, False, True, False,
                                   ["cuda:0", "cuda:1"]),
        lambda: bert_model.rank("q", ["d"], device="mps"),
    ]
    for call in calls:
        with pytest.warns(UserWarning, match="runs on the CPU") as caught:
            call()
        assert {w.filename for w in caught} == {__file__}


def test_max_length_is_settable(fresh_model: CrossEncoder) -> None:
    long_pair = ("word " * 100, "other " * 100)
    fresh_model.max_length = 12
    assert len(fresh_model.tokenizer(*long_pair)["input_ids"]) == 12
    fresh_model.max_seq_length = 20
    assert fresh_model.max_length == 20
    with pytest.warns(UserWarning, match="positions"):  # clamped to the position table
        fresh_model.max_length = 10_000
    assert fresh_model.max_length == fresh_model._native.max_positions
    with pytest.raises(TypeError):
        fresh_model.max_length = None  # type: ignore[assignment]
    with pytest.raises(ValueError):
        fresh_model.max_length = 0


def _bare_encoder_dir(src: Path, dst: Path) -> Path:
    """The fixture as a bare BertModel checkpoint: no classifier, no id2label."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    for key in ("id2label", "label2id", "sentence_transformers"):
        config.pop(key, None)
    (dst / "config.json").write_text(json.dumps(config))
    header, data = _read_safetensors(dst / "model.safetensors")
    kept = {k: v for k, v in header.items() if not k.startswith("classifier")}
    _write_safetensors(dst / "model.safetensors", kept, data)
    return dst


def _read_safetensors(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return header, raw[8 + n:]


def _write_safetensors(path: Path, header: dict[str, Any], data: bytes) -> None:
    out = bytearray()
    new_header = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        new_header[name] = {**info, "data_offsets": [len(out), len(out) + end - start]}
        out += data[start:end]
    blob = json.dumps(new_header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + bytes(out))


def test_bare_encoder_needs_explicit_num_labels(bert_dir: Path, tmp_path: Path) -> None:
    bare = _bare_encoder_dir(bert_dir, tmp_path / "bare")
    with pytest.raises(OSError, match="num_labels"):
        CrossEncoder(str(bare))
    with pytest.warns(UserWarning, match="random"):
        model = CrossEncoder(str(bare), num_labels=1)
    assert model.predict(PAIRS).shape == (len(PAIRS),)


# -- predict: argument forms ------------------------------------------------------------------


def test_predict_returns_float32_in_input_order(bert_model: CrossEncoder) -> None:
    scores = bert_model.predict(PAIRS)
    assert isinstance(scores, np.ndarray)
    assert scores.dtype == np.float32 and scores.shape == (len(PAIRS),)
    one_by_one = [bert_model.predict(p) for p in PAIRS]
    np.testing.assert_allclose(scores, one_by_one, rtol=1e-5, atol=1e-6)
    reverse = bert_model.predict(PAIRS[::-1])
    np.testing.assert_allclose(scores, reverse[::-1], rtol=1e-5, atol=1e-6)


def test_single_pair_is_unbatched(bert_model: CrossEncoder,
                                  multilabel_model: CrossEncoder) -> None:
    for pair in (PAIRS[0], list(PAIRS[0]), np.array(PAIRS[0])):
        score = bert_model.predict(pair)
        assert isinstance(score, np.float32)
    assert multilabel_model.predict(PAIRS[0]).shape == (multilabel_model.num_labels,)


@pytest.mark.parametrize("form", ["list of tuples", "list of lists", "tuple of tuples",
                                  "numpy", "generator"])
def test_input_containers(bert_model: CrossEncoder, form: str) -> None:
    want = bert_model.predict(PAIRS)
    inputs: Any = {
        "list of tuples": list(PAIRS),
        "list of lists": [list(p) for p in PAIRS],
        "tuple of tuples": tuple(PAIRS),
        "numpy": np.array(PAIRS),
        "generator": (p for p in PAIRS),
    }[form]
    np.testing.assert_array_equal(bert_model.predict(inputs), want)


def test_pandas_columns(bert_model: CrossEncoder) -> None:
    pd = pytest.importorskip("pandas")
    want = bert_model.predict(PAIRS)
    frame = pd.DataFrame(PAIRS, columns=["query", "document"])
    np.testing.assert_array_equal(bert_model.predict(frame), want)
    np.testing.assert_array_equal(bert_model.predict(frame[["query", "document"]].values), want)
    np.testing.assert_array_equal(bert_model.predict(pd.Series(PAIRS)), want)
    np.testing.assert_array_equal(
        bert_model.predict(list(zip(frame["query"], frame["document"]))), want)
    ranked = bert_model.rank(PAIRS[0][0], frame["document"])
    assert len(ranked) == len(PAIRS)


def test_datasets_column(bert_model: CrossEncoder) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"pairs": [list(p) for p in PAIRS]})
    np.testing.assert_array_equal(bert_model.predict(ds["pairs"]), bert_model.predict(PAIRS))


def test_5x_and_6x_positional_forms(bert_model: CrossEncoder) -> None:
    want = bert_model.predict(PAIRS)
    np.testing.assert_array_equal(bert_model.predict(PAIRS, 2), want)  # 5.x batch_size
    np.testing.assert_array_equal(bert_model.predict(PAIRS, 2, False), want)
    np.testing.assert_array_equal(bert_model.predict(PAIRS, None, None, 2), want)  # 6.x
    np.testing.assert_array_equal(bert_model.predict(sentences=PAIRS), want)  # 5.x keyword
    np.testing.assert_array_equal(bert_model.predict(inputs=PAIRS, batch_size=3), want)
    raw = bert_model.predict(PAIRS, 2, False, lambda x: x)  # 5.x activation_fn positional
    np.testing.assert_allclose(1 / (1 + np.exp(-raw)), want, rtol=1e-5)


def test_unknown_or_doubled_arguments_are_type_errors(bert_model: CrossEncoder) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'batchsize'"):
        bert_model.predict(PAIRS, batchsize=2)
    with pytest.raises(TypeError, match="multiple values"):
        bert_model.predict(PAIRS, 2, batch_size=3)
    with pytest.raises(TypeError, match="positional"):
        bert_model.predict(PAIRS, 2, False, None, False, True, False, "extra")
    with pytest.raises(TypeError, match="inputs"):
        bert_model.predict()
    with pytest.raises(TypeError, match="unexpected keyword argument 'documents_'"):
        bert_model.rank("q", ["d"], documents_=1)


def test_deprecated_keywords_still_work(bert_model: CrossEncoder) -> None:
    want = bert_model.predict(PAIRS, activation_fn=lambda x: x)
    got = bert_model.predict(PAIRS, activation_fct=lambda x: x, num_workers=4)
    np.testing.assert_array_equal(got, want)


def test_6x_only_arguments_are_accepted(bert_model: CrossEncoder) -> None:
    want = bert_model.predict(PAIRS)
    got = bert_model.predict(PAIRS, device="cpu", pool=None, chunk_size=None,
                             prompt_name=None, prompt=None)
    np.testing.assert_array_equal(got, want)


def test_prompt_is_prepended_to_the_query(fresh_model: CrossEncoder) -> None:
    prompted = [("query: " + q, d) for q, d in PAIRS]
    want = fresh_model.predict(prompted)
    np.testing.assert_array_equal(fresh_model.predict(PAIRS, prompt="query: "), want)
    fresh_model.prompts["q"] = "query: "
    np.testing.assert_array_equal(fresh_model.predict(PAIRS, prompt_name="q"), want)
    with pytest.raises(ValueError, match="not found"):
        fresh_model.predict(PAIRS, prompt_name="nope")
    fresh_model.default_prompt_name = "q"
    np.testing.assert_array_equal(fresh_model.predict(PAIRS), want)


# -- predict: outputs -------------------------------------------------------------------------


def test_empty_input(bert_model: CrossEncoder, multilabel_model: CrossEncoder) -> None:
    for model in (bert_model, multilabel_model):
        for empty in ([], (), np.empty((0, 2), dtype=str)):
            out = model.predict(empty)
            assert isinstance(out, np.ndarray)
            assert out.dtype == np.float32 and out.shape == (0,)
        assert model.predict([], convert_to_numpy=False) == []


def test_convert_to_numpy_false_gives_a_list(bert_model: CrossEncoder,
                                             multilabel_model: CrossEncoder) -> None:
    out = bert_model.predict(PAIRS, convert_to_numpy=False)
    assert isinstance(out, list) and len(out) == len(PAIRS)
    np.testing.assert_array_equal(np.array(out), bert_model.predict(PAIRS))
    out = multilabel_model.predict(PAIRS, convert_to_numpy=False)
    assert isinstance(out, list) and all(o.shape == (3,) for o in out)


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed")
def test_convert_to_tensor_without_torch_is_a_clear_error(bert_model: CrossEncoder) -> None:
    with pytest.raises(ImportError, match="PyTorch"):
        bert_model.predict(PAIRS, convert_to_tensor=True)


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_torch_interop(bert_model: CrossEncoder) -> None:
    import torch

    out = bert_model.predict(PAIRS, convert_to_tensor=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), bert_model.predict(PAIRS))
    assert bert_model.predict([], convert_to_tensor=True).shape == (0,)
    raw = bert_model.predict(PAIRS, activation_fn=lambda x: x)
    for fn in (torch.nn.Sigmoid(), torch.sigmoid):
        np.testing.assert_allclose(bert_model.predict(PAIRS, activation_fn=fn),
                                   1 / (1 + np.exp(-raw)), rtol=1e-5)


def test_multilabel_shape_and_softmax(multilabel_model: CrossEncoder) -> None:
    scores = multilabel_model.predict(PAIRS)
    assert scores.shape == (len(PAIRS), 3) and scores.dtype == np.float32
    probs = multilabel_model.predict(PAIRS, apply_softmax=True)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probs.argmax(axis=1), scores.argmax(axis=1))


def test_softmax_over_one_label_leaves_the_scores(bert_model: CrossEncoder) -> None:
    # 6.x squeezes (N, 1) to (N,) before its softmax, which then does not run; 5.x gave 1.0.
    scores = bert_model.predict(PAIRS)
    np.testing.assert_array_equal(bert_model.predict(PAIRS, apply_softmax=True), scores)
    raw = bert_model.predict(PAIRS, activation_fn=lambda x: x, apply_softmax=True)
    np.testing.assert_array_equal(raw, bert_model.predict(PAIRS, activation_fn=lambda x: x))
    assert bert_model.predict(PAIRS[0], apply_softmax=True) == scores[0]


def test_activation_fn_per_call_and_per_model(fresh_model: CrossEncoder) -> None:
    raw = fresh_model.predict(PAIRS, activation_fn=lambda x: x)
    assert repr(fresh_model.activation_fn) == "Sigmoid()"  # a per-call choice (6.x)
    np.testing.assert_allclose(fresh_model.predict(PAIRS), 1 / (1 + np.exp(-raw)), rtol=1e-5)
    np.testing.assert_allclose(fresh_model.predict(PAIRS, activation_fn=np.tanh), np.tanh(raw),
                               rtol=1e-5)
    fresh_model.activation_fn = None  # no activation at all
    np.testing.assert_array_equal(fresh_model.predict(PAIRS), raw)
    fresh_model.set_activation_fn(None)  # back to the saved default
    assert repr(fresh_model.activation_fn) == "Sigmoid()"
    with pytest.raises(TypeError, match="callable"):
        fresh_model.predict(PAIRS, activation_fn="sigmoid")


def test_activation_given_at_load(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir), activation_fn=lambda x: x * 0 + 7)
    np.testing.assert_array_equal(model.predict(PAIRS), np.full(len(PAIRS), 7, np.float32))


# -- rank ------------------------------------------------------------------------------------


DOCS = ["Berlin had about 3.6 million people in 2019.", "The museum has ancient coins.",
        "Berlin is a city.", "Paris is the capital of France.", "Berlin is a city."]
QUERY = "How many people live in Berlin?"


def test_rank_sorted_with_python_floats(bert_model: CrossEncoder) -> None:
    ranked = bert_model.rank(QUERY, DOCS)
    scores = bert_model.predict([(QUERY, d) for d in DOCS])
    assert sorted(h["corpus_id"] for h in ranked) == list(range(len(DOCS)))
    assert all(type(h["score"]) is float and type(h["corpus_id"]) is int for h in ranked)
    got = [h["score"] for h in ranked]
    assert got == sorted(got, reverse=True)
    for h in ranked:
        assert h["score"] == float(scores[h["corpus_id"]])
    json.dumps(ranked)  # JSON-serialisable


def test_rank_is_stable_for_equal_scores(bert_model: CrossEncoder) -> None:
    docs = ["same text"] * 6 + ["other"] + ["same text"] * 3
    ranked = bert_model.rank(QUERY, docs)
    same = [h["corpus_id"] for h in ranked if docs[h["corpus_id"]] == "same text"]
    assert same == sorted(same)


def test_rank_top_k_is_a_slice(bert_model: CrossEncoder) -> None:
    full = bert_model.rank(QUERY, DOCS)
    assert bert_model.rank(QUERY, DOCS, top_k=None) == full
    assert bert_model.rank(QUERY, DOCS, top_k=0) == []
    assert bert_model.rank(QUERY, DOCS, top_k=2) == full[:2]
    assert bert_model.rank(QUERY, DOCS, top_k=100) == full
    assert bert_model.rank(QUERY, DOCS, top_k=-1) == full[:-1]
    assert bert_model.rank(QUERY, DOCS, top_k=np.int64(3)) == full[:3]


def test_rank_return_documents_and_positional_forms(bert_model: CrossEncoder) -> None:
    full = bert_model.rank(QUERY, DOCS, return_documents=True)
    assert all(h["text"] == DOCS[h["corpus_id"]] for h in full)  # type: ignore[index]
    assert bert_model.rank(QUERY, DOCS, 2, True, 4) == full[:2]  # 5.x: batch_size 3rd
    assert bert_model.rank(QUERY, DOCS, 2, True, None, None, 4) == full[:2]  # 6.x
    # 5.x arguments that 6.x dropped: accepted, no effect
    assert bert_model.rank(QUERY, DOCS, return_documents=True, apply_softmax=True,
                           convert_to_numpy=False, convert_to_tensor=True) == full


def test_rank_empty_documents(bert_model: CrossEncoder) -> None:
    assert bert_model.rank(QUERY, []) == []


def test_rank_refuses_multilabel(multilabel_model: CrossEncoder) -> None:
    with pytest.raises(ValueError, match=r"only works for models with num_labels=1\. "
                                         r"Consider using CrossEncoder\.predict\(\)"):
        multilabel_model.rank(QUERY, DOCS)


# -- progress bars ---------------------------------------------------------------------------


class RecordingBar:
    """Stands in for tqdm.auto.tqdm; remembers every bar and update."""

    bars: ClassVar[list[RecordingBar]] = []

    def __init__(self, total: int | None = None, desc: str | None = None, **_: Any) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self.seen: list[int] = []
        self.threads: set[int] = set()
        self.closed = False
        RecordingBar.bars.append(self)

    def update(self, n: int = 1) -> None:
        self.n += n
        self.seen.append(self.n)
        self.threads.add(threading.get_ident())

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> RecordingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[RecordingBar]:
    import tqdm.auto

    RecordingBar.bars = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    return RecordingBar.bars


def test_progress_bar_updates_once_per_batch(bert_model: CrossEncoder,
                                             bars: list[RecordingBar]) -> None:
    pairs = PAIRS * 3  # 15 pairs
    scores = bert_model.predict(pairs, batch_size=4, show_progress_bar=True)
    assert len(bars) == 1
    bar = bars[0]
    assert bar.desc == "Batches" and bar.total == 4
    assert bar.seen == [1, 2, 3, 4] and bar.closed
    assert bar.threads == {threading.get_ident()}  # updated from the calling thread
    np.testing.assert_array_equal(scores, bert_model.predict(pairs))


def test_progress_bar_follows_the_logger_level(bert_model: CrossEncoder,
                                               bars: list[RecordingBar]) -> None:
    st_logger = logging.getLogger("sentence_transformers")
    old = st_logger.level
    try:
        st_logger.setLevel(logging.WARNING)
        bert_model.predict(PAIRS)
        assert bars == []
        st_logger.setLevel(logging.INFO)
        bert_model.predict(PAIRS)
        assert len(bars) == 1
        bert_model.predict(PAIRS, show_progress_bar=False)
        assert len(bars) == 1
        st_logger.setLevel(logging.WARNING)
        bert_model.rank(QUERY, DOCS, show_progress_bar=True)
        assert len(bars) == 2
    finally:
        st_logger.setLevel(old)


def test_real_tqdm_bar_renders(bert_model: CrossEncoder,
                               capsys: pytest.CaptureFixture[str]) -> None:
    bert_model.predict(PAIRS * 2, batch_size=2, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "Batches" in err and "5/5" in err


# -- typing ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_public_api_type_checks(tmp_path: Path) -> None:
    """A user's script written against the 5.x and 6.x forms passes mypy with our types."""
    mypy_api = pytest.importorskip("mypy.api")
    script = tmp_path / "user_code.py"
    script.write_text(
        "import numpy as np\n"
        "from crossrank import CrossEncoder\n"
        "model = CrossEncoder('m', max_length=256)\n"
        "a: np.ndarray = model.predict([('q', 'd')])\n"
        "b: np.ndarray = model.predict([('q', 'd')], 16, False)\n"
        "c: np.ndarray = model.predict(sentences=[('q', 'd')], batch_size=8)\n"
        "d: np.ndarray = model.predict(inputs=[('q', 'd')], prompt='x', apply_softmax=True)\n"
        "e: list[object] = model.predict([('q', 'd')], convert_to_numpy=False)\n"
        "hits = model.rank('q', ['d1', 'd2'], top_k=1, return_documents=True)\n"
        "best: int | float | str = hits[0]['score']\n"
        "n: int = model.num_labels + model.max_length\n"
    )
    out, err, status = mypy_api.run([str(script), "--strict", "--no-incremental",
                                     "--ignore-missing-imports"])
    assert status == 0, out + err
    script.write_text("from crossrank import CrossEncoder\n"
                      "CrossEncoder('m').predict([('q', 'd')], batchsize=8)\n")
    out, err, status = mypy_api.run([str(script), "--no-incremental"])
    assert status == 1 and "No overload variant" in out, out + err
