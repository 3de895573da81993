"""Property-based: arbitrary unicode pairs give finite scores of the right shape, every time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Any unicode text (surrogates cannot be str items of a pair), including control characters,
# zero-width joiners, combining marks, RTL and emoji; sometimes long.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)
PAIR = st.tuples(TEXT, TEXT)


@pytest.fixture(scope="module")
def models(bert_dir: Path, multilabel_dir: Path) -> tuple[CrossEncoder, CrossEncoder]:
    return CrossEncoder(str(bert_dir)), CrossEncoder(str(multilabel_dir))


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pairs=st.lists(PAIR, min_size=0, max_size=8), batch_size=st.integers(1, 5))
def test_arbitrary_unicode_pairs(models: tuple[CrossEncoder, CrossEncoder],
                                 pairs: list[tuple[str, str]], batch_size: int) -> None:
    one, multi = models
    scores = one.predict(pairs, batch_size=batch_size)
    assert scores.dtype == np.float32 and scores.shape == (len(pairs),)
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()  # sigmoid
    # Deterministic, and independent of batching and of the other pairs in the call.
    np.testing.assert_array_equal(one.predict(pairs, batch_size=batch_size), scores)
    alone = np.array([one.predict(p) for p in pairs], dtype=np.float32)
    np.testing.assert_allclose(alone.reshape(-1), scores, rtol=1e-5, atol=1e-6)

    logits = multi.predict(pairs, batch_size=batch_size)
    assert logits.shape == ((len(pairs), 3) if pairs else (0,))
    assert np.isfinite(logits).all()

    if pairs:
        ranked = one.rank(pairs[0][0], [d for _, d in pairs])
        assert sorted(h["corpus_id"] for h in ranked) == list(range(len(pairs)))
        tokens = one.tokenizer(*pairs[0])["input_ids"]
        assert 2 <= len(tokens) <= one.max_length
