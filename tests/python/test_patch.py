"""crossrank.patch(): frameworks that call ``sentence_transformers.CrossEncoder`` get crossrank.

The framework tests build each framework's own reranker over a fixture model directory and
check its scores and order against crossrank's ``predict`` / ``rank`` on the same pairs.
Frameworks that are not installed are skipped; so are the tests for the stand-in when a real
sentence-transformers is installed, and the other way round (run the file in both kinds of
environment).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import crossrank
from crossrank import CrossEncoder

QUERY = "How many people live in Berlin?"
DOCUMENTS = [
    "Berlin had about 3.6 million people in 2019.",
    "The museum has ancient coins.",
    "Paris is the capital of France.",
    "Berlin is the capital of Germany and its largest city.",
    "Many people moved to Berlin after 1990.",
]
PAIRS = [(QUERY, d) for d in DOCUMENTS]


def _real_sentence_transformers() -> bool:
    module = sys.modules.get("sentence_transformers")
    if module is not None:
        return not crossrank.is_patched()
    return importlib.util.find_spec("sentence_transformers") is not None


HAS_ST = _real_sentence_transformers()
needs_st = pytest.mark.skipif(not HAS_ST, reason="sentence-transformers is not installed")
needs_no_st = pytest.mark.skipif(HAS_ST, reason="sentence-transformers is installed: the "
                                 "stand-in is not used")


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    assert not crossrank.is_patched()
    yield
    crossrank.unpatch()


@pytest.fixture(scope="module")
def reference(bert_dir: Path) -> CrossEncoder:
    """crossrank's own model, to compute what the frameworks should return."""
    return CrossEncoder(str(bert_dir))


def expected_order(model: CrossEncoder, top_k: int) -> list[str]:
    return [DOCUMENTS[int(hit["corpus_id"])] for hit in model.rank(QUERY, DOCUMENTS, top_k=top_k)]


# -- the stand-in (sentence-transformers absent) --------------------------------------------


@needs_no_st
def test_stand_in_holds_crossrank_class_and_unpatch_removes_it() -> None:
    crossrank.patch()
    import sentence_transformers
    from sentence_transformers import CrossEncoder as FromPackage
    from sentence_transformers.cross_encoder import CrossEncoder as FromSubpackage

    assert FromPackage is CrossEncoder and FromSubpackage is CrossEncoder
    assert sentence_transformers.__all__ == ["CrossEncoder"]
    assert importlib.util.find_spec("sentence_transformers") is not None
    crossrank.unpatch()
    assert "sentence_transformers" not in sys.modules
    assert "sentence_transformers.cross_encoder" not in sys.modules
    assert importlib.util.find_spec("sentence_transformers") is None
    with pytest.raises(ImportError):
        import sentence_transformers  # noqa: F401, F811


@needs_no_st
def test_stand_in_refuses_everything_else_naming_the_patch() -> None:
    torch_loaded = "torch" in sys.modules
    crossrank.patch()
    import sentence_transformers

    with pytest.raises(ImportError, match=r"SentenceTransformer is not available.*"
                                          r"crossrank\.patch\(\).*only CrossEncoder"):
        from sentence_transformers import SentenceTransformer  # noqa: F401
    with pytest.raises(ImportError, match=r"sentence_transformers\.util is not available"):
        import sentence_transformers.util  # noqa: F401
    with pytest.raises(ImportError, match="CrossEncoderTrainer is not available"):
        from sentence_transformers.cross_encoder import CrossEncoderTrainer  # noqa: F401
    assert not hasattr(sentence_transformers, "__version__")  # dunders: plain AttributeError
    assert ("torch" in sys.modules) == torch_loaded  # no torch, real or pretended


@needs_no_st
def test_stand_in_patch_and_unpatch_are_idempotent() -> None:
    crossrank.patch()
    module = sys.modules["sentence_transformers"]
    finders = len(sys.meta_path)
    crossrank.patch()
    assert sys.modules["sentence_transformers"] is module and len(sys.meta_path) == finders
    crossrank.unpatch()
    crossrank.unpatch()
    assert "sentence_transformers" not in sys.modules and len(sys.meta_path) == finders - 1
    assert not crossrank.is_patched()


def test_blocked_package_gets_the_stand_in_and_the_block_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.modules[name] = None`` (how tests hide a package) counts as absent, here with
    sentence-transformers installed or not; unpatch puts back what was there."""
    subpackage = "sentence_transformers.cross_encoder"
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    before = sys.modules.get(subpackage, "absent")
    crossrank.patch()
    from sentence_transformers.cross_encoder import CrossEncoder as FromStandIn

    assert FromStandIn is CrossEncoder
    with pytest.raises(ImportError, match=r"crossrank's stand-in"):
        from sentence_transformers import SentenceTransformer  # noqa: F401
    crossrank.unpatch()
    assert sys.modules["sentence_transformers"] is None
    assert sys.modules.get(subpackage, "absent") is before


# -- the real package (sentence-transformers installed) -------------------------------------


def _holders() -> list[str]:
    import sentence_transformers

    defining = sentence_transformers.CrossEncoder.__module__  # cross_encoder.model in 6.x
    return list(dict.fromkeys(["sentence_transformers", "sentence_transformers.cross_encoder",
                               defining]))


@needs_st
def test_real_package_attribute_replaced_and_restored() -> None:
    import sentence_transformers

    names = _holders()
    original = sentence_transformers.CrossEncoder
    assert original is not CrossEncoder
    crossrank.patch()
    crossrank.patch()
    for name in names:
        assert sys.modules[name].CrossEncoder is CrossEncoder, name
    from sentence_transformers import SentenceTransformer  # the rest stays real

    assert SentenceTransformer.__module__.startswith("sentence_transformers.")
    crossrank.unpatch()
    crossrank.unpatch()
    for name in names:
        assert sys.modules[name].CrossEncoder is original, name


# -- either way ----------------------------------------------------------------------------


def test_patched_context_manager_nests() -> None:
    with crossrank.patched():
        assert sys.modules["sentence_transformers"].CrossEncoder is CrossEncoder
        with crossrank.patched():
            pass
        assert crossrank.is_patched()  # the inner block did not patch, so did not unpatch
    assert not crossrank.is_patched()
    crossrank.patch()
    with crossrank.patched():
        pass
    assert crossrank.is_patched()


def test_overlapping_patched_blocks_unpatch_when_the_last_exits() -> None:
    first, second = crossrank.patched(), crossrank.patched()  # as two threads would
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert crossrank.is_patched()
    second.__exit__(None, None, None)
    assert not crossrank.is_patched()


def test_concurrent_patch_unpatch_leave_a_consistent_state() -> None:
    def flip() -> None:
        for _ in range(200):
            crossrank.patch()
            crossrank.unpatch()

    unpatched_inside: list[object] = []  # a thread's assert would not fail the test

    def in_blocks() -> None:
        for _ in range(200):
            with crossrank.patched():
                found = sys.modules["sentence_transformers"].CrossEncoder
                if found is not CrossEncoder:
                    unpatched_inside.append(found)

    for target in (flip, in_blocks):
        threads = [threading.Thread(target=target) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not crossrank.is_patched()
    assert unpatched_inside == []
    if not HAS_ST:
        assert "sentence_transformers" not in sys.modules
    else:
        assert sys.modules["sentence_transformers"].CrossEncoder is not CrossEncoder


def test_keyword_arguments_frameworks_pass_are_accepted(bert_dir: Path,
                                                        reference: CrossEncoder) -> None:
    with pytest.warns(UserWarning, match="device='cuda' is ignored"):
        model = CrossEncoder(
            str(bert_dir), max_length=512, device="cuda", trust_remote_code=True,
            model_kwargs={"device_map": "auto"}, tokenizer_kwargs={}, config_kwargs={},
            backend="torch", local_files_only=True, token=None, activation_fn=None,
        )
    np.testing.assert_array_equal(model.predict(PAIRS), reference.predict(PAIRS))
    old_names = CrossEncoder(str(bert_dir), automodel_args={"torch_dtype": "float32"},
                             tokenizer_args={"model_max_length": 32})  # 5.x names
    assert old_names.max_length == 32 and old_names.precision == "float32"


# -- the frameworks ------------------------------------------------------------------------


def test_langchain_huggingface_cross_encoder_and_reranker(bert_dir: Path,
                                                           reference: CrossEncoder) -> None:
    cross_encoders = pytest.importorskip("langchain_community.cross_encoders")
    compressors = pytest.importorskip("langchain_classic.retrievers.document_compressors")
    from langchain_core.documents import Document

    crossrank.patch()
    encoder = cross_encoders.HuggingFaceCrossEncoder(model_name=str(bert_dir),
                                                     model_kwargs={"device": "cpu"})
    assert isinstance(encoder.client, CrossEncoder)
    np.testing.assert_array_equal(np.asarray(encoder.score(PAIRS)), reference.predict(PAIRS))

    reranker = compressors.CrossEncoderReranker(model=encoder, top_n=3)
    kept = reranker.compress_documents([Document(page_content=d) for d in DOCUMENTS], QUERY)
    assert [d.page_content for d in kept] == expected_order(reference, top_k=3)


def test_llama_index_sentence_transformer_rerank(bert_dir: Path,
                                                 reference: CrossEncoder) -> None:
    postprocessor = pytest.importorskip("llama_index.core.postprocessor")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    crossrank.patch()
    # device="cpu": with device=None LlamaIndex imports torch to pick one (see the next test).
    rerank = postprocessor.SentenceTransformerRerank(model=str(bert_dir), top_n=3,
                                                     device="cpu")
    nodes = [NodeWithScore(node=TextNode(text=d), score=0.0) for d in DOCUMENTS]
    kept = rerank.postprocess_nodes(nodes, QueryBundle(QUERY))
    assert [n.node.get_content() for n in kept] == expected_order(reference, top_k=3)
    scores = dict(zip(DOCUMENTS, reference.predict(PAIRS)))
    for n in kept:
        assert n.score == scores[n.node.get_content()]


def test_llama_index_without_device_needs_torch(bert_dir: Path) -> None:
    postprocessor = pytest.importorskip("llama_index.core.postprocessor")
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed: LlamaIndex picks the device with it")
    crossrank.patch()
    with pytest.raises(ImportError, match="torch"):
        postprocessor.SentenceTransformerRerank(model=str(bert_dir), top_n=3)


@pytest.fixture
def fresh_haystack_ranker_module() -> Iterator[None]:
    """The Haystack ranker module binds ``CrossEncoder`` when imported: import it under the
    patch, and drop it afterwards so no other test sees that binding."""
    prefix = "haystack_integrations.components.rankers.sentence_transformers"
    yield
    for name in [n for n in sys.modules if n.startswith(prefix)]:
        del sys.modules[name]


def test_haystack_sentence_transformers_similarity_ranker(
        bert_dir: Path, reference: CrossEncoder, fresh_haystack_ranker_module: None) -> None:
    # The ranker's module runs `from torch.nn import Identity, Sigmoid`: it needs torch.
    pytest.importorskip("torch")
    pytest.importorskip("haystack")
    try:
        found = importlib.util.find_spec(
            "haystack_integrations.components.rankers.sentence_transformers")
    except ImportError:
        found = None
    if found is None:
        pytest.skip("sentence-transformers-haystack is not installed")
    from haystack import Document

    crossrank.patch()
    from haystack_integrations.components.rankers.sentence_transformers import (
        SentenceTransformersSimilarityRanker,
    )

    ranker = SentenceTransformersSimilarityRanker(model=str(bert_dir), top_k=3)
    ranker.warm_up()
    assert isinstance(ranker._cross_encoder, CrossEncoder)
    documents = [Document(content=d) for d in DOCUMENTS]
    kept = ranker.run(query=QUERY, documents=documents)["documents"]
    hits = reference.rank(QUERY, DOCUMENTS, top_k=3)
    assert [d.content for d in kept] == [DOCUMENTS[int(h["corpus_id"])] for h in hits]
    np.testing.assert_allclose([d.score for d in kept], [h["score"] for h in hits],
                               rtol=1e-6)

    raw = ranker.run(query=QUERY, documents=documents, scale_score=False)["documents"]
    logits = reference.predict(PAIRS, activation_fn=lambda x: x)
    np.testing.assert_allclose(sorted((d.score for d in raw), reverse=True),
                               sorted(logits.tolist(), reverse=True)[:3], rtol=1e-6)
