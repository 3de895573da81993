"""The example notebook, executed end to end in a real Jupyter kernel, outputs checked."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def executed(bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs the notebook once; returns its code cells by tag."""
    # A kernelspec for exactly this interpreter, so the kernel imports the crossrank under test
    # whatever other "python3" kernels the machine has.
    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_dir / "kernels" / "crossrank-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "crossrank test", "language": "python",
    }))
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(jupyter_dir))
    mp.setenv("CROSSRANK_EXAMPLE_MODEL", str(bert_dir))
    mp.setenv("TQDM_DISABLE", "0")
    try:
        nb = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            nb, kernel_name="crossrank-test", timeout=120, allow_errors=False,
            resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        )
        client.execute()
    finally:
        mp.undo()
    cells: dict[str, Any] = {
        "__widgets__": nb.metadata.get("widgets", {})
        .get("application/vnd.jupyter.widget-state+json", {}).get("state", {}),
    }
    for cell in nb.cells:
        if cell.cell_type == "code":
            (tag,) = cell.metadata["tags"]
            cells[tag] = cell
    return cells


def _text(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out and "text/plain" in out.data:
            parts.append(out.data["text/plain"])
    return "\n".join(parts)


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_every_cell_ran_without_error(executed: dict[str, Any]) -> None:
    cells = {tag: cell for tag, cell in executed.items() if tag != "__widgets__"}
    assert set(cells) == {"load", "predict", "rank", "progress", "interop"}
    for tag, cell in cells.items():
        assert cell.execution_count is not None, tag
        assert not [o for o in cell.outputs if o.output_type == "error"], tag


def test_model_repr_is_shown(executed: dict[str, Any]) -> None:
    text = _text(executed["load"])
    assert text.startswith("CrossEncoder(") and "model_type='bert'" in text
    assert "num_labels=1" in text and "device='cpu'" in text


def test_scores_and_ranking(executed: dict[str, Any]) -> None:
    assert "array([" in _text(executed["predict"])
    assert "dtype=float32" in _text(executed["predict"])
    lines = _text(executed["rank"]).strip().splitlines()
    assert len(lines) == 3
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def test_progress_bar_in_the_notebook(executed: dict[str, Any]) -> None:
    cell = executed["progress"]
    assert "((400,), dtype('float32'))" in _text(cell)
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # tqdm.auto falls back to text
        assert "Batches" in _text(cell)
        return
    # tqdm.auto draws a widget in Jupyter (not text on stderr)...
    assert any("data" in o and WIDGET in o.data for o in cell.outputs), cell.outputs
    assert not [o for o in cell.outputs if o.get("name") == "stderr"]
    # ...and the widget's final state, as the kernel left it: 25 batches of 16, all done.
    state = executed["__widgets__"]
    bars = [m["state"] for m in state.values() if m["model_name"] == "FloatProgressModel"]
    assert [(b["value"], b["max"], b["bar_style"]) for b in bars] == [(25, 25, "success")]
    labels = " ".join(m["state"].get("value", "") for m in state.values()
                      if m["model_name"] == "HTMLModel")
    assert "Batches" in labels and "25/25" in labels


def test_numpy_interop_cell(executed: dict[str, Any]) -> None:
    assert _text(executed["interop"]).strip() == "True"
