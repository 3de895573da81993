"""``evaluate`` and ``model_card_data``: sentence-transformers' evaluators on a crossrank model
report what they report for sentence-transformers' CrossEncoder of the same model.

The comparisons need sentence-transformers (and torch): without it (as in CI) they skip. The
tests of ``model_card_data`` / ``evaluate`` with a plain callable evaluator run everywhere.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest

from crossrank import CrossEncoder
from crossrank.model_card import CrossEncoderModelCardData

# The old CE* evaluators warn that they are deprecated; that is what is being tested.
pytestmark = pytest.mark.filterwarnings("ignore:.*(deprecated|renamed):DeprecationWarning")

QUERIES = [
    "How many people live in Berlin?",
    "What is the capital of France?",
    "Who wrote Moby-Dick?",
    "How do plants make food?",
    "When did the first moon landing happen?",
    "What is the boiling point of water?",
]
DOCUMENTS = [
    "Berlin had about 3.6 million inhabitants in 2019.",
    "Paris is the capital and most populous city of France.",
    "Moby-Dick is an 1851 novel by Herman Melville.",
    "Plants make their food by photosynthesis, using sunlight.",
    "Apollo 11 landed on the Moon on 20 July 1969.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The museum has a collection of ancient coins.",
    "Bananas are rich in potassium.",
    "The train leaves at seven in the morning.",
    "Mount Everest is the highest mountain on Earth.",
    "A violin has four strings.",
    "The stock market fell sharply on Monday.",
]
PAIRS = [[q, d] for i, q in enumerate(QUERIES) for d in DOCUMENTS[i:i + 4]]
GOLD = [1.0 if j == 0 else 0.1 * j for _ in QUERIES for j in range(4)]
BINARY = [1 if j == 0 else 0 for _ in QUERIES for j in range(4)]
THREE_CLASS = [(i + j) % 3 for i, _ in enumerate(QUERIES) for j in range(4)]


def _negatives(i: int) -> list[str]:
    return [d for j, d in enumerate(DOCUMENTS) if j != i][i:i + 5]


NEGATIVE_SAMPLES = [{"query": q, "positive": [DOCUMENTS[i]], "negative": _negatives(i)}
                    for i, q in enumerate(QUERIES)]
# Ranked lists with the positive somewhere (or missing: the evaluator reranks it anyway).
DOCUMENT_SAMPLES = [{"query": q, "positive": [DOCUMENTS[i]],
                     "documents": _negatives(i)[: i % 3] + ([DOCUMENTS[i]] if i != 4 else [])
                     + _negatives(i)[i % 3:]}
                    for i, q in enumerate(QUERIES)]


# -- torch-free: model_card_data and evaluate ---------------------------------------------------


class RecordingEvaluator:
    """The smallest evaluator: scores the pairs, records a metric, returns it."""

    def __init__(self, name: str = "tiny") -> None:
        self.name = name
        self.primary_metric = f"{name}_mean"
        self.calls: list[tuple[Any, Any]] = []

    def __call__(self, model: CrossEncoder, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        self.calls.append((model, output_path))
        metrics = {self.primary_metric: float(model.predict(PAIRS).mean()),
                   f"{self.name}_count": float(len(PAIRS))}
        model.model_card_data.set_evaluation_metrics(self, metrics, epoch, steps)
        return metrics


def test_evaluate_returns_what_the_evaluator_returns(bert_model: CrossEncoder) -> None:
    evaluator = RecordingEvaluator()
    got = bert_model.evaluate(evaluator)
    assert got == {"tiny_mean": float(bert_model.predict(PAIRS).mean()), "tiny_count": 24.0}
    assert evaluator.calls == [(bert_model, None)]
    assert bert_model.model_card_data.eval_results_dict[evaluator] == got


def test_evaluate_creates_the_output_directory(bert_model: CrossEncoder,
                                               tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert bert_model.evaluate(lambda model, path: (model, path), str(out)) == (bert_model,
                                                                                str(out))
    assert out.is_dir()
    assert bert_model.evaluate(lambda model, path: 0.5, out) == 0.5  # a PathLike, a score


def test_evaluate_rejects_what_it_cannot_call(bert_model: CrossEncoder) -> None:
    with pytest.raises(TypeError, match="evaluator must be callable"):
        bert_model.evaluate({"not": "an evaluator"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="output_path must be a str"):
        bert_model.evaluate(RecordingEvaluator(), output_path=3)  # type: ignore[arg-type]


def test_model_card_data_defaults(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir), local_files_only=True)
    data = model.model_card_data
    assert isinstance(data, CrossEncoderModelCardData)
    assert data.model is model
    assert data.local_files_only is True
    assert data.tags == ["sentence-transformers", "cross-encoder", "reranker"]
    assert data.eval_results_dict == {} and data.training_logs == []
    assert data.base_model is None and data.model_id is None


def test_training_logs_gather_primary_metrics_by_step() -> None:
    data = CrossEncoderModelCardData()
    first, second = RecordingEvaluator("a"), RecordingEvaluator("b")
    data.set_evaluation_metrics(first, {"a_mean": 0.5, "a_count": 3.0}, epoch=1, step=10)
    data.set_evaluation_metrics(second, {"b_mean": 0.25, "b_count": 3.0}, epoch=1, step=10)
    data.set_evaluation_metrics(first, {"a_mean": 0.75, "a_count": 3.0}, epoch=2, step=20)
    assert data.training_logs == [{"Epoch": 1, "Step": 10, "a_mean": 0.5, "b_mean": 0.25},
                                  {"Epoch": 2, "Step": 20, "a_mean": 0.75}]
    assert data.eval_results_dict == {first: {"a_mean": 0.75, "a_count": 3.0},
                                      second: {"b_mean": 0.25, "b_count": 3.0}}


def test_metrics_are_copied_when_recorded() -> None:
    data = CrossEncoderModelCardData()
    metrics = {"tiny_mean": 0.5}
    evaluator = RecordingEvaluator()
    data.set_evaluation_metrics(evaluator, metrics)
    metrics["tiny_mean"] = 0.0
    assert data.eval_results_dict[evaluator] == {"tiny_mean": 0.5}


def test_a_sequential_evaluator_logs_its_members_primary_metrics() -> None:
    class Sequential:
        primary_metric = "sequential_score"

        def __init__(self, evaluators: list[Any]) -> None:
            self.evaluators = evaluators

    data = CrossEncoderModelCardData()
    sequential = Sequential([RecordingEvaluator("a"), RecordingEvaluator("b")])
    data.set_evaluation_metrics(sequential, {"a_mean": 1.0, "b_mean": 2.0, "b_count": 3.0})
    assert data.training_logs == [{"Epoch": 0, "Step": 0, "a_mean": 1.0, "b_mean": 2.0}]


def test_an_evaluator_without_a_primary_metric_is_recorded_without_a_log_row() -> None:
    data = CrossEncoderModelCardData()
    evaluator = RecordingEvaluator()
    evaluator.primary_metric = None  # type: ignore[assignment]
    data.set_evaluation_metrics(evaluator, {"x": 1.0})
    assert data.eval_results_dict == {evaluator: {"x": 1.0}} and data.training_logs == []


def test_model_card_data_setters() -> None:
    data = CrossEncoderModelCardData(language="en", license="mit", model_id="me/model")
    data.set_language("de")
    data.set_license("apache-2.0")
    data.set_model_id("me/other")
    data.add_tags("mine")
    data.add_tags(["mine", "reranker", "theirs"])
    assert data.set_base_model("org/base", revision="v1") is True
    assert (data.language, data.license, data.model_id) == (["de"], "apache-2.0", "me/other")
    assert data.tags == ["sentence-transformers", "cross-encoder", "reranker", "mine", "theirs"]
    assert (data.base_model, data.base_model_revision) == ("org/base", "v1")


def test_a_given_model_card_data_is_used(bert_dir: Path) -> None:
    data = CrossEncoderModelCardData(model_id="me/reranker", language="en")
    model = CrossEncoder(str(bert_dir), model_card_data=data)
    assert model.model_card_data is data and data.model is model
    evaluator = RecordingEvaluator()
    model.evaluate(evaluator)
    assert evaluator in data.eval_results_dict


def test_a_foreign_recorder_is_used_as_it_is(bert_dir: Path) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[Any] = []

        def set_evaluation_metrics(self, *args: Any) -> None:
            self.seen.append(args)

    recorder = Recorder()
    model = CrossEncoder(str(bert_dir), model_card_data=recorder)
    metrics = model.evaluate(RecordingEvaluator())
    assert recorder.seen and recorder.seen[0][1] == metrics


def test_model_card_data_must_record_evaluations(bert_dir: Path) -> None:
    with pytest.raises(TypeError, match="model_card_data must be a CrossEncoderModelCardData"):
        CrossEncoder(str(bert_dir), model_card_data={"model_id": "x"})


def test_model_card_data_does_not_keep_the_model_alive(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir))
    data = model.model_card_data
    del model
    gc.collect()
    assert data.model is None


def test_a_pickled_model_gets_fresh_model_card_data(bert_dir: Path) -> None:
    model = CrossEncoder(str(bert_dir))
    model.evaluate(RecordingEvaluator())
    again = pickle.loads(pickle.dumps(model))
    assert isinstance(again.model_card_data, CrossEncoderModelCardData)
    assert again.model_card_data.eval_results_dict == {}
    assert again.model_card_data.model is again


# -- sentence-transformers' evaluators, against sentence-transformers --------------------------


def _st() -> Any:
    st = pytest.importorskip("sentence_transformers")
    return st


def _st_evaluation() -> Any:
    _st()
    from sentence_transformers.cross_encoder import evaluation

    return evaluation


def _st_model(path: Path, **kwargs: Any) -> Any:
    from sentence_transformers import CrossEncoder as STCrossEncoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return STCrossEncoder(str(path), device="cpu", local_files_only=True, **kwargs)


@pytest.fixture(scope="module")
def st_bert(bert_dir: Path) -> Any:
    _st()
    return _st_model(bert_dir)


@pytest.fixture(scope="module")
def st_multilabel(multilabel_dir: Path) -> Any:
    _st()
    return _st_model(multilabel_dir)


@pytest.fixture(scope="module")
def multilabel_model(multilabel_dir: Path) -> CrossEncoder:
    return CrossEncoder(str(multilabel_dir))


def _assert_same_metrics(got: Any, expected: Any) -> None:
    """Equal keys; equal values, floats within 1e-5 (they come from float32 scores);
    the model-card strings ("0.5000 (+0.1000)") equal."""
    assert isinstance(got, dict) and isinstance(expected, dict)
    assert list(got) == list(expected)
    for key, want in expected.items():
        have = got[key]
        if isinstance(want, str):
            assert have == want, key
        else:
            assert math.isclose(float(have), float(want), rel_tol=1e-5, abs_tol=1e-5), (
                key, have, want)


def _run_both(evaluator: Any, model: CrossEncoder, st_model: Any) -> tuple[Any, Any]:
    """The evaluator on sentence-transformers' model, then on crossrank's; also checks that
    both recorded the same in their model card data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = evaluator(st_model)
        got = model.evaluate(evaluator)
    _assert_same_metrics(model.model_card_data.eval_results_dict[evaluator],
                         st_model.model_card_data.eval_results_dict[evaluator])
    return got, expected


@pytest.mark.parametrize("samples", [NEGATIVE_SAMPLES, DOCUMENT_SAMPLES],
                         ids=["negatives", "ranked-documents"])
def test_reranking_evaluator(bert_model: CrossEncoder, st_bert: Any,
                             samples: list[dict[str, Any]]) -> None:
    evaluator = _st_evaluation().CrossEncoderRerankingEvaluator(samples, at_k=3,
                                                                name="tiny", batch_size=5)
    got, expected = _run_both(evaluator, bert_model, st_bert)
    _assert_same_metrics(got, expected)
    assert "tiny_ndcg@3" in got and ("tiny_base_map" in got) == (samples is DOCUMENT_SAMPLES)


def test_reranking_without_always_rerank_positives(bert_model: CrossEncoder,
                                                   st_bert: Any) -> None:
    evaluator = _st_evaluation().CrossEncoderRerankingEvaluator(
        DOCUMENT_SAMPLES, always_rerank_positives=False)
    _assert_same_metrics(*_run_both(evaluator, bert_model, st_bert))


def test_reranking_with_a_prompt(bert_dir: Path) -> None:
    evaluation = _st_evaluation()
    prompts = {"query": "query: "}
    model = CrossEncoder(str(bert_dir), prompts=prompts)
    st_model = _st_model(bert_dir, prompts=prompts)
    evaluator = evaluation.CrossEncoderRerankingEvaluator(NEGATIVE_SAMPLES, prompt_name="query")
    got, expected = _run_both(evaluator, model, st_model)
    _assert_same_metrics(got, expected)
    plain = evaluation.CrossEncoderRerankingEvaluator(NEGATIVE_SAMPLES)(model)
    assert plain != got  # the prompt was applied


def test_old_reranking_evaluator(bert_model: CrossEncoder, st_bert: Any) -> None:
    evaluator = _st_evaluation().CERerankingEvaluator(NEGATIVE_SAMPLES, name="old")
    _assert_same_metrics(*_run_both(evaluator, bert_model, st_bert))


@pytest.mark.parametrize("name", ["CrossEncoderCorrelationEvaluator", "CECorrelationEvaluator"])
def test_correlation_evaluator(bert_model: CrossEncoder, st_bert: Any, name: str) -> None:
    evaluator = getattr(_st_evaluation(), name)(PAIRS, GOLD, name="sts")
    got, expected = _run_both(evaluator, bert_model, st_bert)
    _assert_same_metrics(got, expected)
    assert set(got) == {"sts_pearson", "sts_spearman"}


@pytest.mark.parametrize("name", ["CrossEncoderClassificationEvaluator",
                                  "CEBinaryAccuracyEvaluator",
                                  "CEBinaryClassificationEvaluator"])
def test_binary_classification_evaluator(bert_model: CrossEncoder, st_bert: Any,
                                         name: str) -> None:
    evaluator = getattr(_st_evaluation(), name)(PAIRS, BINARY, name="binary")
    got, expected = _run_both(evaluator, bert_model, st_bert)
    _assert_same_metrics(got, expected)
    assert "binary_average_precision" in got


@pytest.mark.parametrize("name", ["CrossEncoderClassificationEvaluator", "CEF1Evaluator",
                                  "CESoftmaxAccuracyEvaluator"])
def test_multiclass_classification_evaluator(multilabel_model: CrossEncoder,
                                             st_multilabel: Any, name: str) -> None:
    evaluator = getattr(_st_evaluation(), name)(PAIRS, THREE_CLASS, name="three")
    got, expected = _run_both(evaluator, multilabel_model, st_multilabel)
    _assert_same_metrics(got, expected)
    assert set(got) == {"three_f1_macro", "three_f1_micro", "three_f1_weighted"}


def test_from_input_examples(bert_model: CrossEncoder, st_bert: Any) -> None:
    st = _st()
    examples = [st.InputExample(texts=pair, label=label) for pair, label in zip(PAIRS, BINARY)]
    evaluator = _st_evaluation().CEBinaryClassificationEvaluator.from_input_examples(examples)
    _assert_same_metrics(*_run_both(evaluator, bert_model, st_bert))


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_evaluate_writes_the_csv_sentence_transformers_writes(bert_model: CrossEncoder,
                                                              st_bert: Any,
                                                              tmp_path: Path) -> None:
    evaluator = _st_evaluation().CrossEncoderRerankingEvaluator(DOCUMENT_SAMPLES, name="csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = st_bert.evaluate(evaluator, str(tmp_path / "st"))
        got = bert_model.evaluate(evaluator, str(tmp_path / "crossrank"))
    _assert_same_metrics(got, expected)
    (st_csv,) = (tmp_path / "st").iterdir()
    cr_csv = tmp_path / "crossrank" / st_csv.name
    st_rows, cr_rows = _read_csv(st_csv), _read_csv(cr_csv)
    assert cr_rows[0] == st_rows[0] and len(cr_rows) == len(st_rows) == 2
    for have, want in zip(cr_rows[1], st_rows[1]):
        assert math.isclose(float(have), float(want), abs_tol=1e-5)


def test_sequential_evaluator_and_training_logs(bert_model: CrossEncoder,
                                                st_bert: Any) -> None:
    evaluation = _st_evaluation()
    from sentence_transformers.base.evaluation import SequentialEvaluator

    sequential = SequentialEvaluator([
        evaluation.CrossEncoderRerankingEvaluator(NEGATIVE_SAMPLES, name="r"),
        evaluation.CrossEncoderCorrelationEvaluator(PAIRS, GOLD, name="c"),
    ])
    fresh = CrossEncoder(bert_model.model_name_or_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sequential(st_bert, epoch=1, steps=5)
        got = sequential(fresh, epoch=1, steps=5)
    _assert_same_metrics(got, expected)
    st_logs = [row for row in st_bert.model_card_data.training_logs if row["Step"] == 5]
    assert len(fresh.model_card_data.training_logs) == 1
    _assert_same_metrics(fresh.model_card_data.training_logs[0], st_logs[-1])


# -- NanoBEIR, from a dataset built here -------------------------------------------------------


def _write_nanobeir(root: Path, names: list[str]) -> None:
    """A NanoBEIR-shaped dataset (corpus, queries, qrels, bm25 subsets; one split per
    dataset) on disk, which ``datasets.load_dataset(root, subset, split=...)`` reads."""
    configs = []
    for subset in ("corpus", "queries", "qrels", "bm25"):
        files = []
        for split in names:
            path = root / subset / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = _nanobeir_rows(subset, offset=len(split))
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            files.append(f"  - split: {split}\n    path: {subset}/{split}.jsonl\n")
        configs.append(f"- config_name: {subset}\n  data_files:\n" + "".join(files))
    (root / "README.md").write_text("---\nconfigs:\n" + "".join(configs) + "---\n",
                                    encoding="utf-8")


def _nanobeir_rows(subset: str, offset: int) -> list[dict[str, Any]]:
    """Queries q0..q5, documents d0..d11; query i's relevant document is d_i; BM25's ranking
    rotates the documents by ``offset`` so that the splits differ."""
    n_docs = len(DOCUMENTS)
    if subset == "corpus":
        return [{"_id": f"d{j}", "title": "", "text": t} for j, t in enumerate(DOCUMENTS)]
    if subset == "queries":
        return [{"_id": f"q{i}", "text": q} for i, q in enumerate(QUERIES)]
    if subset == "qrels":
        return [{"query-id": f"q{i}", "corpus-id": f"d{i}"} for i in range(len(QUERIES))]
    return [{"query-id": f"q{i}",
             "corpus-ids": [f"d{(i + offset + k) % n_docs}" for k in range(n_docs)]}
            for i in range(len(QUERIES))]


def test_nanobeir_evaluator_on_a_local_dataset(bert_model: CrossEncoder, st_bert: Any,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    evaluation = _st_evaluation()
    datasets = pytest.importorskip("datasets")
    import inspect

    if "dataset_id" not in inspect.signature(evaluation.CrossEncoderNanoBEIREvaluator).parameters:
        pytest.skip("this sentence-transformers reads NanoBEIR from fixed Hub ids only")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    root = tmp_path / "NanoBEIR-local"
    _write_nanobeir(root, ["NanoMSMARCO", "NanoSciFact"])
    evaluator = evaluation.CrossEncoderNanoBEIREvaluator(
        ["msmarco", "scifact"], dataset_id=str(root), rerank_k=6, at_k=4)
    got, expected = _run_both(evaluator, bert_model, st_bert)
    _assert_same_metrics(got, expected)
    assert "NanoMSMARCO_R6_ndcg@4" in got and "NanoBEIR_R6_mean_ndcg@4" in got
