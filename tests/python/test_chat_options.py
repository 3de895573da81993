"""Tokenizer options (sentence-transformers 6.x's ``processing_kwargs``, the per-call
``max_length``, a chat template given at load) against the ids and logits
sentence-transformers 6.2.0 recorded for them (tests/fixtures/options/, written by
scripts/make_fixtures.py), and the errors for what crossrank refuses."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES

from crossrank import CrossEncoder, _processing

TOL = 1e-4  # relative to max(1, |reference|), float32
OPTIONS = {p.stem: json.loads(p.read_text(encoding="utf-8"))
           for p in sorted((FIXTURES / "options").glob("*.json"))}
CHAT = "qwen3-vars-st6"
PAIR = "bert-st6-gelu-maxlen"
VARIANTS = [(name, v) for name, rec in OPTIONS.items() for v in rec["variants"]]


def _identity(x: Any) -> Any:
    return x


def _close(got: Any, want: Any) -> None:
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    want = np.asarray(want, dtype=np.float64).reshape(-1)
    assert got.shape == want.shape
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max(initial=0.0) <= TOL, f"max relative error {err.max():.3e}"


def _path(name: str) -> Path:
    return FIXTURES / "models" / name


def _pairs(name: str, indices: list[int] | None = None) -> list[tuple[str, str]]:
    pairs = [(q, d) for q, d in OPTIONS[name]["pairs"]]
    return pairs if indices is None else [pairs[i] for i in indices]


def _ids(model: CrossEncoder, pairs: list[tuple[str, str]], call: dict[str, Any]
         ) -> list[list[int]]:
    """The ids ``model.predict(pairs, **call)`` scores (sentence-transformers' preprocess)."""
    per_call = _processing.check(call.get("processing_kwargs"), "processing_kwargs")
    plan = _processing.plan(_processing.merge(model.processing_kwargs, per_call),
                            call.get("max_length"), model._chat is not None)
    return model._encode(pairs, call.get("prompt"), plan)


@pytest.fixture(scope="module")
def chat_model() -> CrossEncoder:
    return CrossEncoder(str(_path(CHAT)))


@pytest.mark.parametrize(("name", "variant"), VARIANTS,
                         ids=[f"{n}-{v['name']}" for n, v in VARIANTS])
def test_variant_ids_and_logits(name: str, variant: dict[str, Any]) -> None:
    model = CrossEncoder(str(_path(name)), processing_kwargs=variant["instance"])
    pairs = _pairs(name, variant["fit"])
    assert _ids(model, pairs, variant["call"]) == variant["input_ids"]
    logits = model.predict(pairs, activation_fn=_identity, **variant["call"])
    _close(logits, variant["logits"])


@pytest.mark.parametrize(("name", "variant"),
                         [(n, v) for n, v in VARIANTS if v["too_long"]],
                         ids=[f"{n}-{v['name']}" for n, v in VARIANTS if v["too_long"]])
def test_inputs_beyond_the_positions_are_refused(name: str, variant: dict[str, Any]) -> None:
    # sentence-transformers runs them anyway (RoPE past the table, or an index error for
    # learned positions); crossrank says which inputs do not fit.
    model = CrossEncoder(str(_path(name)), processing_kwargs=variant["instance"])
    positions = OPTIONS[name]["max_positions"]
    first = variant["too_long"][0]
    with pytest.raises(ValueError, match=rf"longer than the {positions} positions.*input {first}:"):
        model.predict(_pairs(name), **variant["call"])
    assert model.max_length == OPTIONS[name]["max_length"]  # unchanged after the error


def test_instance_options_from_sentence_bert_config(tmp_path: Path) -> None:
    """sentence-transformers reads the model's processing_kwargs from its saved config."""
    variant = next(v for v in OPTIONS[CHAT]["variants"] if v["name"] == "variables_instance")
    copy = tmp_path / "m"
    shutil.copytree(_path(CHAT), copy)
    config = json.loads((copy / "sentence_bert_config.json").read_text(encoding="utf-8"))
    config["processing_kwargs"] = variant["instance"]
    (copy / "sentence_bert_config.json").write_text(json.dumps(config), encoding="utf-8")
    model = CrossEncoder(str(copy))
    assert model.processing_kwargs == variant["instance"]
    pairs = _pairs(CHAT, variant["fit"])
    _close(model.predict(pairs, activation_fn=_identity), variant["logits"])
    # Saved again as sentence-transformers keeps them, and read back.
    model.save(tmp_path / "saved")
    again = CrossEncoder(str(tmp_path / "saved"))
    assert again.processing_kwargs == variant["instance"]
    _close(again.predict(pairs, activation_fn=_identity), variant["logits"])


def test_processing_kwargs_attribute(chat_model: CrossEncoder) -> None:
    """``model.processing_kwargs = ...`` (6.x: ``model[0].processing_kwargs``)."""
    variant = next(v for v in OPTIONS[CHAT]["variants"] if v["name"] == "variables_instance")
    pairs = _pairs(CHAT, variant["fit"])
    model = CrossEncoder(str(_path(CHAT)))
    model.processing_kwargs = variant["instance"]
    _close(model.predict(pairs, activation_fn=_identity), variant["logits"])
    model.processing_kwargs = None
    assert model.processing_kwargs == {}
    _close(model.predict(pairs, activation_fn=_identity),
           chat_model.predict(pairs, activation_fn=_identity))


def test_rank_and_async_take_processing_kwargs(chat_model: CrossEncoder) -> None:
    rec = OPTIONS[CHAT]["rank"]
    hits = chat_model.rank(rec["query"], rec["documents"], **rec["call"])
    scores = [0.0] * len(rec["documents"])
    for hit in hits:
        scores[int(hit["corpus_id"])] = float(hit["score"])
    _close(scores, rec["scores"])
    hits = asyncio.run(chat_model.arank(rec["query"], rec["documents"], **rec["call"]))
    _close(sorted(float(h["score"]) for h in hits), sorted(rec["scores"]))
    variant = next(v for v in OPTIONS[CHAT]["variants"] if v["name"] == "text_max_length")
    got = asyncio.run(chat_model.apredict(_pairs(CHAT, variant["fit"]), activation_fn=_identity,
                                          **variant["call"]))
    _close(got, variant["logits"])


def test_concurrent_calls_keep_their_own_lengths(chat_model: CrossEncoder) -> None:
    """Calls at different lengths run together; each is cut at its own (the length goes to
    the native call: the model's max_length never changes)."""
    short = next(v for v in OPTIONS[CHAT]["variants"] if v["name"] == "text_max_length")
    pairs = _pairs(CHAT)
    plain = chat_model.predict(pairs, activation_fn=_identity)

    async def both() -> list[Any]:
        calls = []
        for _ in range(4):
            calls.append(chat_model.apredict(pairs, activation_fn=_identity, batch_size=4))
            calls.append(chat_model.apredict(pairs, activation_fn=_identity, batch_size=4,
                                             **short["call"]))
        return list(await asyncio.gather(*calls))

    results = asyncio.run(both())
    for i, got in enumerate(results):
        _close(got, plain if i % 2 == 0 else short["logits"])
    assert chat_model.max_length == OPTIONS[CHAT]["max_length"]


def test_native_calls_take_their_own_length(chat_model: CrossEncoder) -> None:
    """The native entry points cut at a call's max_length without touching the model's, and
    refuse lengths the model cannot run."""
    native = chat_model._native
    own = native.max_length
    texts = chat_model._chat.render(_pairs(CHAT), None, _processing.DEFAULT)  # type: ignore[union-attr]
    cut = native.tokenize_rendered(texts, [], max_length=12)
    assert max(len(ids) for ids in cut) == 12
    assert native.max_length == own
    assert native.tokenize_rendered(texts, []) == native.tokenize_rendered(texts, [],
                                                                          max_length=own)
    logits = native.predict_rendered(texts[:3], [], max_length=12)
    assert logits.shape == (3, 1) and np.all(np.isfinite(logits))
    for bad in (0, native.max_positions + 1):
        with pytest.raises(ValueError, match="max_length"):
            native.tokenize_rendered(texts, [], max_length=bad)
        with pytest.raises(ValueError, match="max_length"):
            native.predict_rendered(texts, [], max_length=bad)
        with pytest.raises(ValueError, match="max_length"):
            native.predict_logits([("a", "b")], max_length=bad)
        with pytest.raises(ValueError, match="max_length"):
            native.tokenize([("a", "b")], max_length=bad)


def test_template_at_load() -> None:
    """processor_kwargs (and its old name tokenizer_kwargs) go to the tokenizer's loading in
    6.x: a chat_template there replaces the saved one."""
    rec = OPTIONS[CHAT]["template_at_load"]
    pairs = _pairs(CHAT)
    for key in ("processor_kwargs", "tokenizer_kwargs"):
        model = CrossEncoder(str(_path(CHAT)), **{key: rec["processor_kwargs"]})
        assert _ids(model, pairs, {}) == rec["input_ids"]
        _close(model.predict(pairs, activation_fn=_identity), rec["logits"])


def test_template_at_load_is_saved(tmp_path: Path) -> None:
    rec = OPTIONS[CHAT]["template_at_load"]
    model = CrossEncoder(str(_path(CHAT)), processor_kwargs=rec["processor_kwargs"])
    model.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "chat_template.jinja").read_text(encoding="utf-8") == (
        rec["processor_kwargs"]["chat_template"])
    again = CrossEncoder(str(tmp_path / "saved"))
    _close(again.predict(_pairs(CHAT), activation_fn=_identity), rec["logits"])


def _first_sentence(message: str) -> str:
    return message.split(" Pair inputs are mapped", 1)[0]


@pytest.mark.parametrize("failure", OPTIONS[CHAT]["role_failures"],
                         ids=[f["name"] for f in OPTIONS[CHAT]["role_failures"]])
def test_templates_without_pair_roles(failure: dict[str, Any]) -> None:
    """sentence-transformers' _verify_pair_roles_supported: at the first pair scored."""
    path = str(_path(CHAT))
    model = CrossEncoder(path, processor_kwargs={"chat_template": failure["template"]})
    assert model.predict([]).shape == (0,)  # no pair, no check (as in 6.x)
    with pytest.raises(ValueError) as info:
        model.predict(_pairs(CHAT)[:2])
    got = str(info.value).replace(path, "<model>")
    assert _first_sentence(got) == _first_sentence(failure["error"])
    assert "chat_template" in got  # says how to give one
    # The same template given for one call.
    plain = CrossEncoder(path)
    call = {"processing_kwargs": {"chat_template": {"chat_template": failure["template"]}}}
    with pytest.raises(ValueError, match="cannot carry a 'query'/'document' pair"):
        plain.predict(_pairs(CHAT)[:2], **call)
    plain.predict(_pairs(CHAT)[:2])  # the model's own template still works


def test_named_templates_without_default(caplog: pytest.LogCaptureFixture) -> None:
    """A dict is taken as named templates, as transformers takes it: without "default" the
    first pair fails as in 6.x; a dict of variables gets a warning saying where they go."""
    with caplog.at_level(logging.WARNING):
        model = CrossEncoder(str(_path(CHAT)),
                             processor_kwargs={"chat_template": {"instruction": "x"}})
    assert "processing_kwargs" in caplog.text
    with pytest.raises(ValueError, match="multiple chat templates with no default"):
        model.predict(_pairs(CHAT)[:1])
    alt = OPTIONS[CHAT]["template_at_load"]["processor_kwargs"]["chat_template"]
    named = CrossEncoder(str(_path(CHAT)), processor_kwargs={"chat_template": {"alt": alt}})
    call = {"processing_kwargs": {"chat_template": {"chat_template": "alt"}}}
    _close(named.predict(_pairs(CHAT), activation_fn=_identity, **call),
           OPTIONS[CHAT]["template_at_load"]["logits"])


def test_loading_options_that_are_call_options_warn(caplog: pytest.LogCaptureFixture) -> None:
    """processor_kwargs={"text": ...} has no effect in 6.x (a tokenizer loading argument)."""
    with caplog.at_level(logging.WARNING):
        model = CrossEncoder(str(_path(CHAT)), processor_kwargs={"text": {"max_length": 64}})
    assert "'text'" in caplog.text and "processing_kwargs" in caplog.text
    assert model.processing_kwargs == {}
    assert model.max_length == OPTIONS[CHAT]["max_length"]


def test_unknown_top_level_keys_are_ignored(chat_model: CrossEncoder,
                                            caplog: pytest.LogCaptureFixture) -> None:
    pairs = _pairs(CHAT)[:3]
    with caplog.at_level(logging.WARNING):
        got = chat_model.predict(pairs, processing_kwargs={"bogus": {"max_length": 8}})
    assert "bogus" in caplog.text
    _close(got, chat_model.predict(pairs))
    # A flat dict is not read either: its keys are unknown top-level keys in 6.x too.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        got = chat_model.predict(pairs, processing_kwargs={"max_length": 8, "instruction": "x"})
    assert "max_length" in caplog.text and "instruction" in caplog.text
    _close(got, chat_model.predict(pairs))


def test_restore_suffix_in_the_instance_options(chat_model: CrossEncoder) -> None:
    variant = next(v for v in OPTIONS[CHAT]["variants"] if v["name"] == "restore_suffix_false")
    model = CrossEncoder(str(_path(CHAT)), processing_kwargs=variant["call"]["processing_kwargs"])
    _close(model.predict(_pairs(CHAT), activation_fn=_identity), variant["logits"])
    # A call can switch it back on.
    on = {"processing_kwargs": {"chat_template": {"restore_suffix": True}}}
    _close(model.predict(_pairs(CHAT), activation_fn=_identity, **on),
           chat_model.predict(_pairs(CHAT), activation_fn=_identity))


def test_chunked_calls_use_the_options(chat_model: CrossEncoder) -> None:
    variant = next(v for v in OPTIONS[CHAT]["variants"] if v["name"] == "variable_per_call")
    pool = chat_model.start_multi_process_pool()
    try:
        got = chat_model.predict(_pairs(CHAT), activation_fn=_identity, pool=pool, chunk_size=7,
                                 **variant["call"])
    finally:
        chat_model.stop_multi_process_pool(pool)
    _close(got, variant["logits"])


@pytest.mark.parametrize(("call", "error", "match"), [
    ({"processing_kwargs": "text"}, TypeError, "processing_kwargs must be a dict"),
    ({"processing_kwargs": {"text": 5}}, TypeError, r"processing_kwargs\['text'\] must be a dict"),
    ({"processing_kwargs": {"text": {"stride": 2}}}, ValueError, r"\['stride'\] is not supported"),
    ({"processing_kwargs": {"common": {"add_special_tokens": True}}}, ValueError,
     r"\['add_special_tokens'\] is not supported"),
    ({"processing_kwargs": {"text": {"truncation": "only_second"}}}, ValueError,
     "'only_second' is not supported for a chat-rendered conversation"),
    ({"processing_kwargs": {"text": {"truncation": "sideways"}}}, ValueError,
     "not a truncation strategy"),
    ({"processing_kwargs": {"text": {"max_length": 0}}}, ValueError, "max_length must be"),
    ({"processing_kwargs": {"chat_template": {"max_length": "long"}}}, ValueError,
     "max_length must be"),
    ({"processing_kwargs": {"chat_template": {"tokenize": False}}}, ValueError,
     r"\['tokenize'\] cannot be given"),
    ({"processing_kwargs": {"chat_template": {"continue_final_message": True}}}, ValueError,
     r"\['continue_final_message'\] is not supported"),
    ({"processing_kwargs": {"chat_template": {"chat_template": 3}}}, TypeError,
     "must be a template"),
    ({"processing_kwargs": {"chat_template": {"tools": [print]}}}, ValueError,
     "tools given as Python functions"),
    ({"max_length": 0}, ValueError, "max_length must be at least 1"),
    ({"max_length": "64"}, TypeError, "max_length must be an int"),
])
def test_bad_options(chat_model: CrossEncoder, call: dict[str, Any], error: type[Exception],
                     match: str) -> None:
    with pytest.raises(error, match=match):
        chat_model.predict(_pairs(CHAT)[:2], **call)


def test_bad_options_at_load() -> None:
    with pytest.raises(ValueError, match=r"\['stride'\] is not supported"):
        CrossEncoder(str(_path(CHAT)), processing_kwargs={"text": {"stride": 2}})
    with pytest.raises(TypeError, match="processing_kwargs must be a dict"):
        CrossEncoder(str(_path(CHAT)), processing_kwargs=["text"])  # type: ignore[arg-type]
    model = CrossEncoder(str(_path(CHAT)))
    with pytest.raises(ValueError, match=r"\['stride'\] is not supported"):
        model.processing_kwargs = {"text": {"stride": 2}}
    assert model.processing_kwargs == {}


def test_text_pairs_refuse_one_sided_truncation() -> None:
    model = CrossEncoder(str(_path(PAIR)))
    with pytest.raises(ValueError, match="'only_first' is not supported for text pairs"):
        model.predict(_pairs(PAIR)[:2], processing_kwargs={"text": {"truncation": "only_first"}})


def test_padding_options_change_nothing(chat_model: CrossEncoder) -> None:
    pairs = _pairs(CHAT)[:4]
    call = {"processing_kwargs": {"text": {"padding": "max_length", "pad_to_multiple_of": 8},
                                  "common": {"return_tensors": "np"}}}
    _close(chat_model.predict(pairs, **call), chat_model.predict(pairs))


def test_the_tokenizer_face_stays_the_tokenizer(chat_model: CrossEncoder) -> None:
    """``model.tokenizer`` is the tokenizer, as 6.x's is transformers' own: a (query,
    document) pair is tokenized as a pair of texts, not rendered with the chat template
    (the scored ids are the template's; see ``predict``)."""
    q, d = _pairs(CHAT)[0]
    raw = chat_model.tokenizer(q, d)["input_ids"]
    assert raw == chat_model.tokenizer(q)["input_ids"] + chat_model.tokenizer(d)["input_ids"]
    assert raw != chat_model._encode([(q, d)])[0]


def test_pickle_keeps_the_options() -> None:
    import pickle

    rec = OPTIONS[CHAT]
    variant = next(v for v in rec["variants"] if v["name"] == "variables_instance")
    model = CrossEncoder(str(_path(CHAT)), processing_kwargs=variant["instance"])
    again = pickle.loads(pickle.dumps(model))
    assert again.processing_kwargs == variant["instance"]
    _close(again.predict(_pairs(CHAT, variant["fit"]), activation_fn=_identity),
           variant["logits"])
    loaded = rec["template_at_load"]
    alt = pickle.loads(pickle.dumps(CrossEncoder(str(_path(CHAT)),
                                                 processor_kwargs=loaded["processor_kwargs"])))
    _close(alt.predict(_pairs(CHAT), activation_fn=_identity), loaded["logits"])


def test_async_options_are_checked_before_the_thread(chat_model: CrossEncoder) -> None:
    async def call() -> None:
        # The coroutine raises at once, before any worker thread scores.
        await chat_model.apredict(_pairs(CHAT)[:1], processing_kwargs={"text": {"stride": 1}})

    with pytest.raises(ValueError, match=r"\['stride'\] is not supported"):
        asyncio.run(call())
    with pytest.raises(ValueError, match=r"\['stride'\] is not supported"):
        asyncio.run(chat_model.arank("q", ["d"], processing_kwargs={"text": {"stride": 1}}))


def test_tokenizer_face_as_transformers_tokenizer(chat_model: CrossEncoder) -> None:
    """6.x's ``model.tokenizer`` is transformers' tokenizer: ``tokenizer(q, d)`` is the
    plain pair, ``apply_chat_template`` renders a conversation (template variables as
    keywords) and tokenizes it uncut."""
    rec = OPTIONS[CHAT]["tokenizer"]
    face = chat_model.tokenizer
    # (Pairs longer than max_length: transformers gives them whole with a warning, crossrank's
    # face cuts them at max_length, as its __call__ documents.)
    fit = [i for i, ids in enumerate(rec["pair_ids"]) if len(ids) <= face.model_max_length]
    assert len(fit) >= 20
    pairs = _pairs(CHAT, fit)
    assert [face(q, d)["input_ids"] for q, d in pairs] == [rec["pair_ids"][i] for i in fit]
    assert face.chat_template == (_path(CHAT) / "chat_template.jinja").read_text(
        encoding="utf-8")
    texts = [face.apply_chat_template(m, tokenize=False, **rec["kwargs"])
             for m in rec["messages"]]
    assert texts == rec["texts"]
    ids = [face.apply_chat_template(m, **rec["kwargs"])["input_ids"] for m in rec["messages"]]
    assert ids == rec["input_ids"]
    batch = face.apply_chat_template(rec["messages"], return_dict=False, **rec["kwargs"])
    assert batch == rec["input_ids"]
    with pytest.raises(ValueError, match="not supported"):
        face.apply_chat_template(rec["messages"][0], truncation=True)
    assert CrossEncoder(str(_path(PAIR))).tokenizer.chat_template is None
