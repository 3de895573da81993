"""``model.tokenizer`` with the face of a Hugging Face tokenizer: encode, decode, __call__ with
padding / truncation / tensors, special tokens, vocabulary. Checked against itself and
predict's tokens here, and against transformers' AutoTokenizer where transformers is
installed (skipped without it)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES, model_dir

from crossrank import CrossEncoder
from crossrank.tokenizer import BatchEncoding

FIXTURE_NAMES = sorted(p.name for p in (FIXTURES / "models").iterdir()
                       if (p / "config.json").is_file())
TEXTS = ["How many people live in Berlin?",
         "Berlin had about 3.6 million people in 2019, isn't it?",
         "Ünïcödé ✓ 東京 emoji 🎉 and accents é", "", "word " * 30]
# Longer than any fixture's max_length: tokenized in pieces (see Tokenizer._sequences).
LONG_TEXTS = ["word " * 300, "Ünïcödé ✓ 東京 emoji 🎉 and accents é, isn't it? " * 40,
              "double  spaces\n and\ttabs   here " * 60]
PAIRS = [("What is the capital of France?", "Paris is the capital of France. " * 6),
         ("short", "x"), ("Ünïcödé ✓ 東京", "emoji 🎉 and accents é"),
         ("long " * 40, "other " * 40)]


def _model(name: str) -> CrossEncoder:
    path = model_dir(name)
    assert path is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CrossEncoder(str(path))


@pytest.fixture(scope="module")
def tok(bert_dir: Path) -> Any:
    return CrossEncoder(str(bert_dir)).tokenizer


def test_special_tokens_and_vocab(tok: Any, bert_dir: Path) -> None:
    vocab = json.loads((bert_dir / "tokenizer.json").read_text())["model"]["vocab"]
    assert (tok.cls_token, tok.sep_token, tok.pad_token, tok.unk_token, tok.mask_token) == (
        "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")
    assert tok.eos_token is None and tok.eos_token_id is None and tok.bos_token is None
    assert tok.cls_token_id == vocab["[CLS]"] and tok.sep_token_id == vocab["[SEP]"]
    assert tok.pad_token_id == vocab["[PAD]"] and tok.unk_token_id == vocab["[UNK]"]
    assert tok.vocab_size == len(vocab) == len(tok)
    assert tok.get_vocab() == vocab
    assert tok.convert_tokens_to_ids("[CLS]") == tok.cls_token_id
    assert tok.convert_tokens_to_ids(["[SEP]", "not-a-token-xyz"]) == [tok.sep_token_id,
                                                                        tok.unk_token_id]
    assert tok.convert_ids_to_tokens(tok.cls_token_id) == "[CLS]"
    assert tok.convert_ids_to_tokens([tok.cls_token_id, tok.sep_token_id]) == ["[CLS]", "[SEP]"]
    assert tok.model_max_length == 48
    assert set(tok.all_special_tokens) == {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"}


def test_call_pairs_are_what_the_model_sees(bert_model: CrossEncoder) -> None:
    tok = bert_model.tokenizer
    qs, ds = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    native = bert_model._native.tokenize(list(zip(qs, ds)))
    for kwargs in ({}, {"truncation": True}, {"truncation": "longest_first"},
                   {"max_length": tok.model_max_length}):
        enc = tok(qs, ds, **kwargs)
        assert isinstance(enc, BatchEncoding) and isinstance(enc, dict)
        assert enc.input_ids == enc["input_ids"] == [list(n[0]) for n in native]
        assert enc["token_type_ids"] == [list(n[1]) for n in native]
        assert enc["attention_mask"] == [[1] * len(n[0]) for n in native]
    assert tok(PAIRS)["input_ids"] == tok(qs, ds)["input_ids"]  # a list of pairs
    one = tok(*PAIRS[1])
    assert one["input_ids"] == list(native[1][0])  # unbatched for one pair


def test_single_texts_and_encode(tok: Any) -> None:
    ids = tok.encode("hello world")
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.encode("hello world", add_special_tokens=False) == ids[1:-1]
    assert tok("hello world")["input_ids"] == ids
    assert tok(["hello world", "x"])["input_ids"][0] == ids
    pair = tok.encode("hello world", "x")
    assert pair[:len(ids)] == ids and pair[-1] == tok.sep_token_id
    assert tok.tokenize("hello world") == tok.convert_ids_to_tokens(ids[1:-1])
    short = tok.encode("word " * 30, truncation=True, max_length=10)
    assert len(short) == 10 and short[-1] == tok.sep_token_id


def test_truncation_strategies(tok: Any) -> None:
    q, d = "long " * 40, "other " * 40
    for strategy in (True, "longest_first", "only_first", "only_second"):
        first, second = {"only_first": (q, "x"), "only_second": ("x", d)}.get(
            str(strategy), (q, d))
        enc = tok(first, second, truncation=strategy, max_length=20)
        assert len(enc["input_ids"]) == 20, strategy
    halves = tok(q, d, truncation=True, max_length=21)["token_type_ids"]
    assert halves.count(0) == 1 + 9 + 1 and halves.count(1) == 9 + 1  # 18 tokens, split evenly
    with pytest.raises(ValueError, match="truncation"):
        tok(q, d, truncation="sideways")


def test_padding_and_tensors(tok: Any) -> None:
    qs, ds = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    enc = tok(qs, ds, padding=True)
    lengths = {len(row) for row in enc["input_ids"]}
    assert lengths == {max(len(r) for r in tok(qs, ds)["input_ids"])}
    short = tok(qs, ds)["input_ids"][1]
    assert enc["input_ids"][1][len(short):] == [tok.pad_token_id] * (
        len(enc["input_ids"][1]) - len(short))
    assert enc["attention_mask"][1] == [1] * len(short) + [0] * (len(enc["input_ids"][1])
                                                                 - len(short))
    fixed = tok(qs, ds, padding="max_length", truncation=True, max_length=30,
                return_tensors="np")
    assert fixed["input_ids"].shape == (len(PAIRS), 30) and fixed["input_ids"].dtype == np.int64
    single = tok("hello", return_tensors="np")
    assert single["input_ids"].shape == (1, len(tok.encode("hello")))
    assert tok(qs, ds, padding="longest", pad_to_multiple_of=8)["input_ids"][0].__len__() % 8 == 0
    with pytest.raises(ValueError, match="padding=True"):
        tok(qs, ds, return_tensors="np")  # ragged


def test_return_tensors_pt(tok: Any) -> None:
    torch = pytest.importorskip("torch", reason="return_tensors='pt' needs torch")
    enc = tok(["a b", "c"], padding=True, return_tensors="pt")
    assert isinstance(enc["input_ids"], torch.Tensor) and enc["input_ids"].dtype == torch.int64
    assert enc.to("cpu") is enc


def test_long_single_texts_fill_max_length(tok: Any) -> None:
    m = tok.model_max_length
    ids = tok.encode("word " * 300)  # the pair template has one [SEP] more: not a limit
    assert len(ids) == m and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert ids[1:-1] == tok.encode("word " * 300, add_special_tokens=False)[:m - 2]
    assert len(tok.encode("word " * 300, add_special_tokens=False)) == m
    assert tok.encode("word " * 300, truncation=True, max_length=m) == ids


def test_decode(tok: Any) -> None:
    ids = tok.encode("Hello, world! Isn't it nice?")
    assert tok.decode(ids, skip_special_tokens=True) == "hello, world! isn't it nice?"
    assert tok.decode(ids).startswith("[CLS] hello") and tok.decode(ids).endswith("[SEP]")
    assert tok.decode(np.asarray(ids), skip_special_tokens=True) == tok.decode(
        ids, skip_special_tokens=True)
    assert tok.batch_decode([ids, ids], skip_special_tokens=True) == [
        tok.decode(ids, skip_special_tokens=True)] * 2


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_decode_round_trips_on_every_fixture(name: str) -> None:
    tok = _model(name).tokenizer
    text = "the capital of france is paris"
    ids = tok.encode(text)
    assert tok.decode(ids, skip_special_tokens=True).lower() == text
    assert tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(ids)) == ids


def test_reload_keeps_the_tokenizer_working(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir))
    before = model.tokenizer(*PAIRS[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.bfloat16()
    model.max_length = 12
    assert len(model.tokenizer(*PAIRS[0])["input_ids"]) == 12
    model.max_length = 48
    assert model.tokenizer(*PAIRS[0]) == before


# -- against transformers --------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_matches_transformers_auto_tokenizer(name: str) -> None:
    transformers = pytest.importorskip(
        "transformers", reason="the comparison with AutoTokenizer needs transformers")
    transformers.logging.set_verbosity_error()
    path = model_dir(name)
    assert path is not None
    tok = _model(name).tokenizer
    hf = transformers.AutoTokenizer.from_pretrained(str(path))
    m = tok.model_max_length  # crossrank's; ask transformers for the same explicitly
    for attr in ("pad_token", "eos_token", "cls_token", "sep_token", "unk_token", "bos_token",
                 "mask_token", "pad_token_id", "eos_token_id", "cls_token_id", "sep_token_id",
                 "unk_token_id", "bos_token_id", "mask_token_id", "vocab_size", "padding_side",
                 "model_input_names"):
        assert getattr(tok, attr) == getattr(hf, attr), attr
    assert len(tok) == len(hf) and tok.get_vocab() == hf.get_vocab()
    for text in TEXTS:
        for special in (True, False):
            kwargs = {"add_special_tokens": special, "truncation": True, "max_length": m - 5}
            assert tok.encode(text, **kwargs) == hf.encode(text, **kwargs), text
        ids = hf.encode(text[:60])
        assert tok.encode(text[:60]) == ids
        assert tok.convert_ids_to_tokens(ids) == hf.convert_ids_to_tokens(ids)
        for skip in (False, True):
            assert tok.decode(ids, skip_special_tokens=skip) == hf.decode(
                ids, skip_special_tokens=skip)
    for text in LONG_TEXTS:
        for kwargs in ({"truncation": True, "max_length": m},
                       {"truncation": True, "max_length": m, "add_special_tokens": False},
                       {"truncation": True, "max_length": m // 2}):
            assert tok.encode(text, **kwargs) == hf.encode(text, **kwargs), (text[:20], kwargs)
        assert dict(tok(text, LONG_TEXTS[0], truncation=True, max_length=m,
                        add_special_tokens=False)) == dict(
            hf(text, LONG_TEXTS[0], truncation=True, max_length=m,
               add_special_tokens=False).data)
    qs, ds = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    for kwargs in ({"truncation": True, "max_length": m},
                   {"truncation": "longest_first", "max_length": 20},
                   {"truncation": "only_second", "max_length": m},
                   {"padding": True, "truncation": True, "max_length": m},
                   {"padding": "max_length", "truncation": True, "max_length": 30},
                   {"add_special_tokens": False, "truncation": True, "max_length": 16},
                   {"max_length": m - 3}):
        # only_second cannot fit the last pair (its first text is too long): use the others.
        n = 3 if kwargs.get("truncation") == "only_second" else len(qs)
        assert dict(tok(qs[:n], ds[:n], **kwargs)) == dict(hf(qs[:n], ds[:n], **kwargs).data)
    mine = tok(qs, ds, padding=True, truncation=True, max_length=m, return_tensors="np")
    theirs = hf(qs, ds, padding=True, truncation=True, max_length=m, return_tensors="np")
    assert {k: v.tolist() for k, v in mine.items()} == {k: v.tolist() for k, v in theirs.items()}
    assert dict(tok(PAIRS[1:3])) == dict(hf(PAIRS[1:3]).data)  # a list of pairs, untruncated
