"""The command line (``crossrank`` and ``python -m crossrank``), run as subprocesses on a
local fixture model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import model_dir

from crossrank import CrossEncoder

QUERY = "how many people live in berlin?"
DOCS = ["Berlin has a population of 3.5 million.", "Paris is the capital of France.",
        "Berlin is a city in Germany.", "It rains a lot."]


def fixture(name: str) -> str:
    path = model_dir(name)
    assert path is not None
    return str(path)


def run(*args: str, stdin: str | None = None, module: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if module:
        command = [sys.executable, "-m", "crossrank", *args]
    else:
        script = shutil.which("crossrank", path=os.path.dirname(sys.executable))
        if script is None:
            pytest.skip("the crossrank console script is not installed next to this Python")
        command = [script, *args]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60,
                          env=full_env, check=False)


@pytest.fixture(scope="module")
def bert() -> str:
    return fixture("bert-st5-1label")


@pytest.fixture(scope="module")
def expected_ranking(bert: str) -> list[dict[str, Any]]:
    ranking: Any = CrossEncoder(bert).rank(QUERY, DOCS, return_documents=True)
    return list(ranking)


def test_rank_from_arguments_as_json_lines(bert: str,
                                           expected_ranking: list[dict[str, Any]]) -> None:
    result = run("rank", "--model", bert, QUERY, *DOCS)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rank"] for r in lines] == [1, 2, 3, 4]
    assert [r["corpus_id"] for r in lines] == [h["corpus_id"] for h in expected_ranking]
    assert [r["text"] for r in lines] == [h["text"] for h in expected_ranking]
    np.testing.assert_allclose([r["score"] for r in lines],
                               [h["score"] for h in expected_ranking], rtol=1e-6)


def test_threads_option_gives_the_same_ranking(bert: str,
                                               expected_ranking: list[dict[str, Any]]) -> None:
    result = run("rank", "--model", bert, "--threads", "1", QUERY, *DOCS)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["corpus_id"] for r in lines] == [h["corpus_id"] for h in expected_ranking]
    np.testing.assert_allclose([r["score"] for r in lines],
                               [h["score"] for h in expected_ranking], rtol=1e-6)
    usage = run("rank", "--threads", "0", "q", "d")
    assert usage.returncode == 2 and "--threads" in usage.stderr


def test_rank_documents_from_stdin_as_a_table_with_top_k(
    bert: str, expected_ranking: list[dict[str, Any]]
) -> None:
    result = run("rank", "-m", bert, "--top-k", "2", "--format", "table", "--batch-size", "3",
                 QUERY, stdin="\n".join(DOCS) + "\n\n", module=False)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["rank", "score", "id", "text"]
    assert len(rows) == 2
    for number, (row, hit) in enumerate(zip(rows, expected_ranking), 1):
        rank, score, corpus_id, text = row.split(maxsplit=3)
        assert (int(rank), int(corpus_id), text) == (number, hit["corpus_id"], hit["text"])
        assert float(score) == pytest.approx(hit["score"], abs=1e-4)


def test_rank_documents_from_a_file_and_requests_as_json_lines(
    bert: str, tmp_path: Path, expected_ranking: list[dict[str, Any]]
) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    from_file = run("rank", "-m", bert, "--file", str(docs), "-k", "1", QUERY)
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["corpus_id"] == expected_ranking[0]["corpus_id"]

    requests = "\n".join(json.dumps({"query": q, "documents": DOCS[:n]})
                         for q, n in ((QUERY, 4), ("weather", 2)))
    result = run("rank", "-m", bert, "--max-length", "16", stdin=requests)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["query_id"], r["rank"]) for r in lines] == [
        (0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2)]
    short = CrossEncoder(bert, max_length=16).rank("weather", DOCS[:2])
    np.testing.assert_allclose([r["score"] for r in lines[4:]], [float(h["score"]) for h in short],
                               rtol=1e-6)


def test_predict_tsv_and_jsonl(bert: str, tmp_path: Path) -> None:
    pairs = [(QUERY, d) for d in DOCS]
    expected = CrossEncoder(bert).predict(pairs)
    tsv = run("predict", "-m", bert, stdin="".join(f"{q}\t{d}\n" for q, d in pairs))
    assert tsv.returncode == 0, tsv.stderr
    np.testing.assert_allclose([float(x) for x in tsv.stdout.split()], expected, rtol=1e-6)

    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join([json.dumps(list(pairs[0])),
                                json.dumps({"query": pairs[1][0], "document": pairs[1][1]})]),
                     encoding="utf-8")
    raw = run("predict", "-m", bert, "--file", str(jsonl), "--format", "jsonl",
              "--activation", "none", module=False)
    assert raw.returncode == 0, raw.stderr
    logits = CrossEncoder(bert).predict(pairs[:2], activation_fn=lambda x: x)
    np.testing.assert_allclose([json.loads(line)["score"] for line in raw.stdout.splitlines()],
                               logits, rtol=1e-6)


def test_predict_several_labels(tmp_path: Path) -> None:
    model = fixture("bert-st6-3label")
    pairs = [(QUERY, d) for d in DOCS[:2]]
    result = run("predict", "-m", model, "--format", "jsonl", "--apply-softmax",
                 stdin="".join(f"{q}\t{d}\n" for q, d in pairs))
    assert result.returncode == 0, result.stderr
    scores = [json.loads(line)["scores"] for line in result.stdout.splitlines()]
    np.testing.assert_allclose(scores, CrossEncoder(model).predict(pairs, apply_softmax=True),
                               rtol=1e-6)


def test_errors(bert: str, tmp_path: Path) -> None:
    missing = run("rank", "-m", str(tmp_path / "nowhere"), "q", "d")
    assert missing.returncode == 1
    assert "model directory not found" in missing.stderr

    offline = run("predict", "-m", "org/not-cached", stdin="a\tb\n",
                  env={"HF_HOME": str(tmp_path / "hf")})
    assert offline.returncode == 1
    assert "not in the cache" in offline.stderr and "HF_HUB_OFFLINE=1" in offline.stderr

    bad = run("predict", "-m", bert, stdin="only one field\n")
    assert bad.returncode == 2
    assert "<stdin>, line 1: expected query<TAB>document" in bad.stderr

    usage = run("rank", "--batch-size", "0", "q", "d")
    assert usage.returncode == 2 and "--batch-size" in usage.stderr


def test_help_names_the_default_model() -> None:
    result = run("rank", "--help")
    assert result.returncode == 0
    assert "cross-encoder/ms-marco-MiniLM-L12-v2" in result.stdout
