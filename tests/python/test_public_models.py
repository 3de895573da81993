"""Opt-in: the public models and numbers from sentence-transformers' own test suite.

These need the Hugging Face Hub (or the models in the local HF cache). They run only when
``CROSSRANK_PUBLIC_MODELS=1`` is set; no machine in this project's CI reaches the hub.
The expected values are the ones sentence-transformers' tests assert (fp32, relative 1e-4).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("CROSSRANK_PUBLIC_MODELS") != "1",
    reason="set CROSSRANK_PUBLIC_MODELS=1 (needs the Hugging Face Hub or a warm cache)",
)

QUERY = "is toprol xl the same as metoprolol?"
DOCUMENTS = [  # as in sentence-transformers' tests/cross_encoder/test_pretrained.py
    "Metoprolol succinate is also known by the brand name Toprol XL. It is the extended-release "
    "form of metoprolol. Metoprolol succinate is approved to treat high blood pressure, chronic "
    "chest pain, and congestive heart failure.",
    "Pill with imprint 1 is White, Round and has been identified as Metoprolol Tartrate 25 mg.",
    "Interactions between your drugs No interactions were found between Allergy Relief and "
    "metoprolol. This does not necessarily mean no interactions exist. Always consult your "
    "healthcare provider.",
]
EXPECTED = {
    "cross-encoder/ms-marco-MiniLM-L6-v2": [8.12545108795166, -3.045016050338745,
                                            -3.1524128913879395],
    "cross-encoder/ms-marco-TinyBERT-L2-v2": [8.142767906188965, 1.2057735919952393,
                                              -2.7283530235290527],
    "cross-encoder/stsb-distilroberta-base": [0.4977430999279022, 0.255491703748703,
                                              0.28261035680770874],
    "mixedbread-ai/mxbai-rerank-xsmall-v1": [0.9224735498428345, 0.04793589934706688,
                                             0.03315146267414093],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_public_model_scores(name: str) -> None:
    from crossrank import CrossEncoder

    model = CrossEncoder(name)
    scores = model.predict([(QUERY, d) for d in DOCUMENTS])
    np.testing.assert_allclose(scores, EXPECTED[name], rtol=1e-4)
