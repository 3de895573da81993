"""``model.tokenizer``: the Rust tokenizer the model uses, with the face of a Hugging Face
tokenizer for what code reads from one.

Token ids come from the native tokenizer (the one ``predict`` uses), so they are the model's.
The vocabulary, the special tokens and the post-processing template (where ``[CLS]`` and
``[SEP]`` go) are read from the tokenizer's ``tokenizer.json`` (as the native side gives it)
and the model's ``tokenizer_config.json`` / ``special_tokens_map.json``, with the ``json``
module: the ``tokenizers`` package is not needed. ``decode`` maps ids back to tokens and
joins them as the tokenizer's decoder says (WordPiece, byte-level BPE, Metaspace).

The native tokenizer encodes pairs and truncates them at the model's ``max_length``; a
single text is encoded as a pair with an empty second text and the pair template taken off,
and a text too long for that is encoded in pieces split where whitespace starts (a token
boundary for WordPiece, byte-level BPE and Metaspace tokenizers), so its ids are all there.
One difference from transformers remains: no encoding is longer than
:attr:`~Tokenizer.model_max_length` (crossrank's ``max_length``, what the model sees), even
with ``truncation=False``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    from ._chat import ChatFormat
    from ._crossrank import NativeCrossEncoder

#: An item of a post-processing template: ("special", ids, type_id) or ("seq", "A"/"B", type_id).
_Item = tuple[str, Any, int]

_SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                  "mask_token")

# Tokenizer classes whose model_input_names leave out token_type_ids (transformers' own).
_NO_TOKEN_TYPES = ("RobertaTokenizer", "XLMRobertaTokenizer", "CamembertTokenizer",
                   "DistilBertTokenizer", "MPNetTokenizer", "BartTokenizer", "GPT2Tokenizer",
                   "LongformerTokenizer", "ModernBertTokenizer")

TextInput = Union[str, Sequence[str], Sequence[Sequence[str]]]


class BatchEncoding(dict):  # type: ignore[type-arg]
    """What a tokenizer call returns: a dict (``input_ids``, ``token_type_ids``,
    ``attention_mask``) whose entries are also attributes, as transformers' BatchEncoding."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data(self) -> dict[str, Any]:
        return dict(self)

    def to(self, device: Any) -> BatchEncoding:
        """Moves torch tensors to ``device`` (a no-op for lists and numpy arrays)."""
        for key, value in self.items():
            if hasattr(value, "to") and not isinstance(value, np.ndarray):
                self[key] = value.to(device)
        return self


class Tokenizer:
    """Tokenizes texts and (query, document) pairs exactly as the model sees them, with the
    calls of a Hugging Face tokenizer: ``tokenizer(text, text_pair, padding=..., truncation=...,
    max_length=..., return_tensors=...)``, ``encode``, ``decode``, ``convert_tokens_to_ids``,
    ``convert_ids_to_tokens``, the special tokens and their ids, ``vocab_size``, ``len()``.
    """

    def __init__(self, native: NativeCrossEncoder, chat: ChatFormat | None = None) -> None:
        self._native = native
        self._data: _TokenizerData | None = None
        self._chat = chat

    @property
    def chat_template(self) -> str | dict[str, str] | None:
        """The model's chat template, as transformers' tokenizer has it: the template, its
        named templates (a dict), or None for a model that reads pairs as text."""
        if self._chat is None:
            return None
        return dict(self._chat.named) if self._chat.named else self._chat.template_source

    def apply_chat_template(
        self,
        conversation: list[dict[str, Any]] | list[list[dict[str, Any]]],
        tools: list[dict[str, Any]] | None = None,
        documents: list[dict[str, Any]] | None = None,
        chat_template: str | None = None,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Renders a conversation (or a batch of them) with the model's chat template, as
        transformers 5's ``apply_chat_template`` does (``kwargs``: template variables); with
        ``tokenize``, its token ids without added special tokens and uncut (a
        :class:`BatchEncoding` with ``input_ids`` and ``attention_mask`` when
        ``return_dict``, else the ids). A pair's conversation is the messages
        ``{"role": "query"}`` and ``{"role": "document"}`` (after a ``"system"`` prompt).
        The ids :meth:`CrossEncoder.predict` scores are these, cut at ``max_length`` with the
        template's suffix restored."""
        if self._chat is None:
            raise ValueError("Cannot use chat template functions because tokenizer.chat_template "
                             "is not set: this model reads pairs as text")
        from ._processing import Plan

        for name in ("padding", "truncation", "max_length", "return_tensors",
                     "continue_final_message", "return_assistant_tokens_mask",
                     "sanitize_control_tokens", "tokenizer_kwargs"):
            if kwargs.get(name):
                raise ValueError(f"apply_chat_template({name}=...) is not supported by "
                                 "crossrank's tokenizer")
            kwargs.pop(name, None)
        variables = {**kwargs, "add_generation_prompt": add_generation_prompt}
        if tools is not None:
            variables["tools"] = tools
        if documents is not None:
            variables["documents"] = documents
        plan = Plan(variables=variables, template=chat_template)
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        chats: list[Any] = list(conversation) if batched else [conversation]
        template = self._chat._template(plan)
        texts = [self._chat._render(template, list(chat), plan) for chat in chats]
        if not tokenize:
            return texts if batched else texts[0]
        ids = self._native.tokenize_rendered(texts)
        if not return_dict:
            return ids if batched else ids[0]
        masks = [[1] * len(row) for row in ids]
        return BatchEncoding({"input_ids": ids if batched else ids[0],
                              "attention_mask": masks if batched else masks[0]})

    def _rebind(self, native: NativeCrossEncoder) -> None:
        """The model was reloaded (another precision): tokenize with the new native model."""
        self._native = native

    @property
    def _d(self) -> _TokenizerData:
        if self._data is None:
            self._data = _TokenizerData(self._native)
        return self._data

    # -- what code reads ---------------------------------------------------------------------

    @property
    def model_max_length(self) -> int:
        """The longest encoding, special tokens included: the model's ``max_length``."""
        return self._native.max_length

    @property
    def vocab_size(self) -> int:
        """The size of the base vocabulary (added tokens not counted), as transformers'."""
        return len(self._d.model_vocab)

    def __len__(self) -> int:
        """The vocabulary's size with the added tokens."""
        return len(self._d.vocab)

    def get_vocab(self) -> dict[str, int]:
        """Token to id, added tokens included."""
        return dict(self._d.vocab)

    @property
    def padding_side(self) -> str:
        return self._d.padding_side

    @property
    def pad_token_type_id(self) -> int:
        return 0

    @property
    def model_input_names(self) -> list[str]:
        return list(self._d.model_input_names)

    @property
    def special_tokens_map(self) -> dict[str, str]:
        return {name: tok for name in _SPECIAL_NAMES if (tok := self._d.special[name])}

    @property
    def all_special_tokens(self) -> list[str]:
        seen: list[str] = []
        for tok in [*self.special_tokens_map.values(), *self._d.additional_special]:
            if tok not in seen:
                seen.append(tok)
        return seen

    @property
    def all_special_ids(self) -> list[int]:
        return [self._d.vocab[t] for t in self.all_special_tokens if t in self._d.vocab]

    @property
    def bos_token(self) -> str | None:
        """The bos token's text (from the tokenizer config), None if the tokenizer has none."""
        return self._d.special["bos_token"]

    @property
    def bos_token_id(self) -> int | None:
        return self._token_id(self._d.special["bos_token"])

    @property
    def eos_token(self) -> str | None:
        """The eos token's text (from the tokenizer config), None if the tokenizer has none."""
        return self._d.special["eos_token"]

    @property
    def eos_token_id(self) -> int | None:
        return self._token_id(self._d.special["eos_token"])

    @property
    def unk_token(self) -> str | None:
        """The unk token's text (from the tokenizer config), None if the tokenizer has none."""
        return self._d.special["unk_token"]

    @property
    def unk_token_id(self) -> int | None:
        return self._token_id(self._d.special["unk_token"])

    @property
    def sep_token(self) -> str | None:
        """The sep token's text (from the tokenizer config), None if the tokenizer has none."""
        return self._d.special["sep_token"]

    @property
    def sep_token_id(self) -> int | None:
        return self._token_id(self._d.special["sep_token"])

    @property
    def pad_token(self) -> str | None:
        """The pad token's text (from the tokenizer config), None if the tokenizer has none."""
        return self._d.special["pad_token"]

    @property
    def pad_token_id(self) -> int | None:
        return self._token_id(self._d.special["pad_token"])

    @property
    def cls_token(self) -> str | None:
        """The cls token's text (from the tokenizer config), None if the tokenizer has none."""
        return self._d.special["cls_token"]

    @property
    def cls_token_id(self) -> int | None:
        return self._token_id(self._d.special["cls_token"])

    @property
    def mask_token(self) -> str | None:
        """The mask token's text (from the tokenizer config), None if the tokenizer has none."""
        return self._d.special["mask_token"]

    @property
    def mask_token_id(self) -> int | None:
        return self._token_id(self._d.special["mask_token"])

    def _token_id(self, token: str | None) -> int | None:
        return None if token is None else self._d.vocab.get(token)

    # -- tokens and ids ----------------------------------------------------------------------

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> Any:
        """A token's id (the unknown token's for one not in the vocabulary, None without
        one); a list for a list."""
        if isinstance(tokens, str):
            return self._one_token_id(tokens)
        return [self._one_token_id(t) for t in tokens]

    def _one_token_id(self, token: str) -> int | None:
        found = self._d.vocab.get(token)
        return found if found is not None else self.unk_token_id

    def convert_ids_to_tokens(self, ids: int | Sequence[int],
                              skip_special_tokens: bool = False) -> Any:
        """An id's token (None for one outside the vocabulary); a list for a list."""
        if isinstance(ids, (int, np.integer)):
            return self._d.id_to_token.get(int(ids))
        return [self._d.id_to_token.get(int(i)) for i in _as_id_list(ids)
                if not (skip_special_tokens and int(i) in self._d.special_ids)]

    def tokenize(self, text: str, pair: str | None = None,
                 add_special_tokens: bool = False) -> list[str]:
        """The tokens of a text (or pair), without special tokens unless asked."""
        ids = self.encode(text, pair, add_special_tokens=add_special_tokens)
        return [self._d.id_to_token.get(i, "") for i in ids]

    def decode(self, token_ids: Any, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None) -> str:
        """The text of ``token_ids`` (a list, numpy array or torch tensor), joined as the
        tokenizer's decoder does; ``skip_special_tokens`` leaves out [CLS], [SEP], padding...
        ``clean_up_tokenization_spaces`` (default: the tokenizer config's) removes the space
        before punctuation."""
        ids = _as_id_list(token_ids)
        tokens = [self._d.id_to_token[i] for i in ids if i in self._d.id_to_token
                  and not (skip_special_tokens and i in self._d.special_ids)]
        text = self._d.decode_tokens(tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self._d.clean_up_tokenization_spaces
        return _clean_up(text) if clean_up_tokenization_spaces else text

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None) -> list[str]:
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces)
                for s in sequences]

    # -- encoding ----------------------------------------------------------------------------

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True,
               padding: bool | str = False, truncation: bool | str | None = None,
               max_length: int | None = None, return_tensors: str | None = None,
               **kwargs: Any) -> Any:
        """The ids of one text or pair (``tokenizer(...)["input_ids"]``)."""
        out = self(text, text_pair, add_special_tokens=add_special_tokens, padding=padding,
                   truncation=truncation, max_length=max_length, return_tensors=return_tensors,
                   **kwargs)
        return out["input_ids"]

    def __call__(
        self,
        text: TextInput,
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Encodes a text, a pair, or a batch of them, as transformers' tokenizers do.

        ``text``: a str, a list of str, or a list of (text, text_pair) pairs; ``text_pair``:
        a str or a list of str. ``padding``: False, True / ``"longest"``, ``"max_length"``.
        ``truncation``: True / ``"longest_first"``, ``"only_first"``, ``"only_second"``,
        False (a ``max_length`` without ``truncation`` truncates ``"longest_first"``, as
        transformers does). ``return_tensors``: None (lists), ``"np"`` or ``"pt"``. Returns a
        :class:`BatchEncoding` with ``input_ids``, ``token_type_ids`` (where the model's
        tokenizer has them) and ``attention_mask``.

        The native tokenizer never gives more than :attr:`model_max_length` tokens: longer
        inputs are cut there even without truncation, and a ``max_length`` above it acts
        as :attr:`model_max_length`.
        """
        for ignored in ("return_overflowing_tokens", "return_offsets_mapping"):
            if kwargs.pop(ignored, False):
                raise NotImplementedError(f"crossrank's tokenizer does not give {ignored[7:]}")
        for accepted in ("verbose", "return_special_tokens_mask", "return_length", "stride",
                         "is_split_into_words", "padding_side"):
            kwargs.pop(accepted, None)
        if kwargs:
            raise TypeError(f"unexpected keyword argument {next(iter(kwargs))!r}")
        batched, texts, pairs = _batch(text, text_pair)
        strategy = _truncation(truncation, max_length)
        limit = self.model_max_length
        if strategy is not None and max_length is not None:
            limit = min(int(max_length), limit)
        encoded = self._encode(texts, pairs, add_special_tokens, strategy, limit)
        ids = [e[0] for e in encoded]
        types = [e[1] for e in encoded]
        masks = [[1] * len(e[0]) for e in encoded]
        pad_to = _pad_length(padding, max_length, self.model_max_length,
                             [len(i) for i in ids], pad_to_multiple_of)
        if pad_to is not None:
            pad_id = self.pad_token_id
            if pad_id is None:
                raise ValueError("this tokenizer has no pad_token to pad with")
            left = self.padding_side == "left"
            for row in range(len(ids)):
                n = pad_to - len(ids[row])
                if n <= 0:
                    continue
                for seq, value in ((ids, pad_id), (types, 0), (masks, 0)):
                    seq[row] = [value] * n + seq[row] if left else seq[row] + [value] * n
        want_types = (return_token_type_ids if return_token_type_ids is not None
                      else "token_type_ids" in self._d.model_input_names)
        want_mask = (return_attention_mask if return_attention_mask is not None
                     else "attention_mask" in self._d.model_input_names)
        out: dict[str, Any] = {"input_ids": ids}
        if want_types:
            out["token_type_ids"] = types
        if want_mask:
            out["attention_mask"] = masks
        for key, value in out.items():
            out[key] = _convert(value if batched else value[0], return_tensors, batched)
        return BatchEncoding(out)

    def _encode(self, texts: list[str], pairs: list[str] | None, add_special_tokens: bool,
                strategy: str | None, limit: int) -> list[tuple[list[int], list[int]]]:
        d = self._d
        native_limit = self.model_max_length
        if not texts:
            return []
        if pairs is not None and add_special_tokens and limit == native_limit and (
                strategy in (None, "longest_first")):
            # The native call is that exactly: the pair template, longest_first at max_length.
            return [(list(a), list(b)) for a, b in self._native.tokenize(list(zip(texts, pairs)))]
        firsts = self._sequences(texts, "A")
        seconds = self._sequences(pairs, "B") if pairs is not None else None
        if strategy is None:  # never longer than the model's max_length (see __call__)
            strategy, limit = "longest_first", native_limit
        template = d.pair if pairs is not None else d.single
        specials = sum(len(item[1]) for item in template if item[0] == "special")
        budget = max(0, limit - (specials if add_special_tokens else 0))
        out = []
        for row, first in enumerate(firsts):
            second = seconds[row] if seconds is not None else None
            first, second = _truncate(first, second, budget, strategy)
            out.append(d.assemble(first, second, add_special_tokens))
        return out

    def _sequences(self, texts: list[str], which: str) -> list[list[int]]:
        """The tokens of each text as sequence ``which`` of a pair, without special tokens.

        The native tokenizer cuts a pair at max_length; a text that fills that is tokenized
        again in pieces split where a run of whitespace starts (a token boundary for the
        WordPiece, byte-level and Metaspace tokenizers), so its tokens are all there.
        """
        def encode(chunks: list[str]) -> list[list[int]]:
            pairs = [(c, "") if which == "A" else ("", c) for c in chunks]
            return self._d.sequences_of(self._native.tokenize(pairs), which)

        full = self.model_max_length - self._d.pair_specials
        out = encode(texts)
        for i, tokens in enumerate(out):
            if len(tokens) >= full > 0:
                out[i] = self._untruncated(texts[i], full, encode)
        return out

    @staticmethod
    def _untruncated(text: str, full: int, encode: Any) -> list[int]:
        """The tokens of ``text``, from pieces short enough not to be cut."""
        pieces = [text]
        tokens: list[list[int]] = [[0] * full]
        while True:
            again = [i for i, t in enumerate(tokens) if len(t) >= full
                     and _split_points(pieces[i])]
            if not again:
                return [tok for piece in tokens for tok in piece]
            new_pieces: list[str] = []
            for i, piece in enumerate(pieces):
                if i in again:
                    points = _split_points(piece)
                    cut = min(points, key=lambda p: abs(p - len(piece) // 2))
                    new_pieces += [piece[:cut], piece[cut:]]
                else:
                    new_pieces.append(piece)
            pieces = new_pieces
            tokens = encode(pieces)

    def to_json(self) -> str:
        """The tokenizer.json of the tokenizer in use (truncation settings included)."""
        return self._native.tokenizer_json()

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}, model_max_length="
                f"{self.model_max_length}, padding_side={self.padding_side!r})")


class _TokenizerData:
    """What ``tokenizer.json`` and the tokenizer config files say, read once."""

    def __init__(self, native: NativeCrossEncoder) -> None:
        spec = json.loads(native.tokenizer_json())
        model = spec.get("model") or {}
        vocab = model.get("vocab") or {}
        if isinstance(vocab, list):  # Unigram: [piece, score] by id
            self.model_vocab = {str(entry[0]): i for i, entry in enumerate(vocab)}
        else:
            self.model_vocab = {str(k): int(v) for k, v in vocab.items()}
        self.vocab = dict(self.model_vocab)
        self.special_ids: set[int] = set()
        for added in spec.get("added_tokens") or []:
            self.vocab[added["content"]] = int(added["id"])
            if added.get("special"):
                self.special_ids.add(int(added["id"]))
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.model_type = str(model.get("type") or "")
        self.subword_prefix = str(model.get("continuing_subword_prefix") or "##")
        self.decoder = spec.get("decoder")
        self.single, self.pair = _templates(spec.get("post_processor"), self.vocab)
        self.pair_specials = sum(len(item[1]) for item in self.pair if item[0] == "special")

        config = _read_json(Path(native.source) / "tokenizer_config.json")
        special_map = _read_json(Path(native.source) / "special_tokens_map.json")
        self.special: dict[str, str | None] = {}
        for name in _SPECIAL_NAMES:
            value = config.get(name, special_map.get(name))
            self.special[name] = _token_text(value)
        extra = config.get("additional_special_tokens",
                           special_map.get("additional_special_tokens")) or []
        self.additional_special = [t for t in (_token_text(v) for v in extra) if t]
        self.padding_side = str(config.get("padding_side") or "right")
        names = config.get("model_input_names")
        if not isinstance(names, list):
            cls = str(config.get("tokenizer_class") or "").removesuffix("Fast")
            names = (["input_ids", "attention_mask"] if cls in _NO_TOKEN_TYPES
                     else ["input_ids", "attention_mask", "token_type_ids"]
                     if cls in ("DebertaV2Tokenizer", "DebertaTokenizer")
                     else ["input_ids", "token_type_ids", "attention_mask"])
        self.model_input_names = [str(n) for n in names]
        clean = config.get("clean_up_tokenization_spaces")
        self.clean_up_tokenization_spaces = bool(clean) if clean is not None else False

    def sequences_of(self, encoded: list[tuple[list[int], list[int]]], which: str
                     ) -> list[list[int]]:
        """The tokens of sequence ``which`` ("A" or "B") in pair encodings whose other text
        is empty: the pair template's special tokens around it taken off."""
        before = after = 0
        seen = False
        for kind, value, _ in self.pair:
            if kind == "seq" and value == which:
                seen = True
            elif kind == "special":
                if seen:
                    after += len(value)
                else:
                    before += len(value)
        return [list(ids[before:len(ids) - after]) for ids, _ in encoded]

    def assemble(self, first: list[int], second: list[int] | None, add_special_tokens: bool
                 ) -> tuple[list[int], list[int]]:
        """Ids and type ids of the sequences with the template's special tokens."""
        if not add_special_tokens:
            ids = first + (second or [])
            return ids, [0] * len(first) + [1] * len(second or [])
        ids, types = [], []
        for kind, value, type_id in (self.pair if second is not None else self.single):
            part = value if kind == "special" else (first if value == "A" else second or [])
            ids.extend(part)
            types.extend([type_id] * len(part))
        return ids, types

    def decode_tokens(self, tokens: list[str]) -> str:
        decoder = self.decoder
        if decoder is None and self.model_type == "WordPiece":  # vocab.txt-only BERT models
            decoder = {"type": "WordPiece", "prefix": self.subword_prefix, "cleanup": True}
        return "".join(_decode(decoder, tokens))


# -- post-processing templates --------------------------------------------------------------


def _templates(processor: Any, vocab: dict[str, int]) -> tuple[list[_Item], list[_Item]]:
    """(single, pair) templates of a post_processor (TemplateProcessing, BertProcessing,
    RobertaProcessing, or a Sequence holding one)."""
    if not isinstance(processor, dict):
        return [("seq", "A", 0)], [("seq", "A", 0), ("seq", "B", 1)]
    kind = processor.get("type")
    if kind == "Sequence":
        found = ([("seq", "A", 0)], [("seq", "A", 0), ("seq", "B", 1)])
        for inner in processor.get("processors") or []:
            if inner.get("type") in ("TemplateProcessing", "BertProcessing",
                                     "RobertaProcessing"):
                found = _templates(inner, vocab)
        return found
    if kind in ("BertProcessing", "RobertaProcessing"):
        cls = [int(processor["cls"][1])]
        sep = [int(processor["sep"][1])]
        single: list[_Item] = [("special", cls, 0), ("seq", "A", 0), ("special", sep, 0)]
        if kind == "BertProcessing":
            pair: list[_Item] = [("special", cls, 0), ("seq", "A", 0), ("special", sep, 0),
                                 ("seq", "B", 1), ("special", sep, 1)]
        else:
            pair = [("special", cls, 0), ("seq", "A", 0), ("special", sep + sep, 0),
                    ("seq", "B", 0), ("special", sep, 0)]
        return single, pair
    if kind == "TemplateProcessing":
        specials = processor.get("special_tokens") or {}

        def items(template: list[dict[str, Any]]) -> list[_Item]:
            out: list[_Item] = []
            for piece in template:
                if "SpecialToken" in piece:
                    name = piece["SpecialToken"]["id"]
                    ids = specials.get(name, {}).get("ids") or [vocab.get(name, 0)]
                    out.append(("special", [int(i) for i in ids],
                                int(piece["SpecialToken"].get("type_id", 0))))
                else:
                    seq = piece["Sequence"]
                    out.append(("seq", seq["id"], int(seq.get("type_id", 0))))
            return out

        return items(processor.get("single") or []), items(processor.get("pair") or [])
    return [("seq", "A", 0)], [("seq", "A", 0), ("seq", "B", 1)]


def _split_points(text: str) -> list[int]:
    """Where a run of whitespace starts (not at the beginning)."""
    return [i for i in range(1, len(text)) if text[i].isspace() and not text[i - 1].isspace()]


def _truncate(first: list[int], second: list[int] | None, budget: int, strategy: str
              ) -> tuple[list[int], list[int] | None]:
    """Cuts the sequences to ``budget`` tokens in all, as the tokenizers library does."""
    if second is None:
        return first[:budget], None
    n1, n2 = len(first), len(second)
    if n1 + n2 <= budget:
        return first, second
    if strategy == "only_first":
        return first[:max(0, budget - n2)], second
    if strategy == "only_second":
        return first, second[:max(0, budget - n1)]
    # longest_first: the shorter keeps its length where it can; else both get half.
    short, long_ = min(n1, n2), max(n1, n2)
    keep_short = short
    keep_long = max(short, budget - short) if short <= budget else short
    if keep_short + keep_long > budget:
        keep_short = budget // 2
        keep_long = keep_short + budget % 2
    k1, k2 = (keep_short, keep_long) if n1 <= n2 else (keep_long, keep_short)
    del long_
    return first[:k1], second[:k2]


# -- decoders ----------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """The byte-level BPE alphabet: printable bytes stand for themselves, the others for the
    code points from 256 up, in byte order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table: dict[int, str] = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_OF_CHAR = {c: b for b, c in _bytes_to_unicode().items()}


def _decode(decoder: Any, tokens: list[str]) -> list[str]:
    """The decoder's output pieces (joined with "" by the caller)."""
    if not isinstance(decoder, dict):
        return [" ".join(tokens)]
    kind = decoder.get("type")
    if kind == "Sequence":
        for inner in decoder.get("decoders") or []:
            tokens = _decode(inner, tokens)
        return tokens
    if kind == "WordPiece":
        prefix = str(decoder.get("prefix", "##"))
        out = []
        for i, tok in enumerate(tokens):
            if i and tok.startswith(prefix):
                tok = tok[len(prefix):]
            elif i:
                tok = " " + tok
            out.append(_clean_up(tok) if decoder.get("cleanup", True) else tok)
        return out
    if kind == "ByteLevel":
        data = bytearray()
        for tok in tokens:
            if all(c in _BYTE_OF_CHAR for c in tok):
                data.extend(_BYTE_OF_CHAR[c] for c in tok)
            else:
                data.extend(tok.encode("utf-8"))
        return [data.decode("utf-8", errors="replace")]
    if kind == "Metaspace":
        replacement = str(decoder.get("replacement", "▁"))
        strip_first = decoder.get("prepend_scheme", "always") != "never" and decoder.get(
            "add_prefix_space", True)
        out = []
        for i, tok in enumerate(tokens):
            tok = tok.replace(replacement, " ")
            if i == 0 and strip_first and tok.startswith(" "):
                tok = tok[1:]
            out.append(tok)
        return out
    if kind == "BPEDecoder":
        suffix = str(decoder.get("suffix", "</w>"))
        return [t.replace(suffix, "" if i == len(tokens) - 1 else " ")
                for i, t in enumerate(tokens)]
    if kind == "Replace":
        pattern = decoder.get("pattern") or {}
        old = pattern.get("String")
        if isinstance(old, str):
            return [t.replace(old, str(decoder.get("content", ""))) for t in tokens]
        return tokens
    if kind == "Fuse":
        return ["".join(tokens)]
    if kind == "Strip":
        content = str(decoder.get("content", " "))
        start, stop = int(decoder.get("start", 0)), int(decoder.get("stop", 0))
        out = []
        for tok in tokens:
            for _ in range(start):
                if tok.startswith(content):
                    tok = tok[len(content):]
            for _ in range(stop):
                if tok.endswith(content):
                    tok = tok[:-len(content)]
            out.append(tok)
        return out
    if kind == "ByteFallback":
        out, pending = [], bytearray()
        for tok in tokens:
            if len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
                pending.append(int(tok[3:5], 16))
                continue
            if pending:
                out.append(pending.decode("utf-8", errors="replace"))
                pending = bytearray()
            out.append(tok)
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
        return out
    return [" ".join(tokens)]


def _clean_up(text: str) -> str:
    """transformers' clean_up_tokenization: no space before punctuation and contractions."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                     (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"),
                     (" 're", "'re")):
        text = text.replace(old, new)
    return text


# -- arguments ---------------------------------------------------------------------------------


def _batch(text: Any, text_pair: Any) -> tuple[bool, list[str], list[str] | None]:
    """(batched, texts, pairs or None) from transformers' input forms."""
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError("text_pair must be a str when text is a str")
        return False, [text], None if text_pair is None else [text_pair]
    if hasattr(text, "tolist"):
        text = text.tolist()
    if not isinstance(text, (list, tuple)):
        raise TypeError("text must be a str, a list of str or a list of (text, text_pair) "
                        f"pairs, got {type(text).__name__}")
    items = list(text)
    if text_pair is None:
        if items and all(isinstance(t, (list, tuple)) for t in items):
            for t in items:
                if len(t) != 2 or not all(isinstance(x, str) for x in t):
                    raise TypeError("each pair must be two strings (text, text_pair)")
            return True, [t[0] for t in items], [t[1] for t in items]
        _check_strings("text", items)
        return True, items, None
    pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
    _check_strings("text", items)
    _check_strings("text_pair", pairs)
    if len(items) != len(pairs):
        raise ValueError(f"got {len(items)} texts and {len(pairs)} text pairs")
    return True, items, pairs


def _check_strings(name: str, items: list[Any]) -> None:
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")


def _truncation(truncation: Any, max_length: int | None) -> str | None:
    """The truncation strategy, or None for none."""
    if truncation is None:
        return "longest_first" if max_length is not None else None
    if truncation is True:
        return "longest_first"
    if truncation is False or truncation == "do_not_truncate":
        return None
    name = str(getattr(truncation, "value", truncation))
    if name in ("longest_first", "only_first", "only_second"):
        return name
    raise ValueError(f"truncation={truncation!r} is not one of True, False, 'longest_first', "
                     "'only_first', 'only_second', 'do_not_truncate'")


def _pad_length(padding: Any, max_length: int | None, model_max_length: int,
                lengths: list[int], multiple: int | None) -> int | None:
    name = str(getattr(padding, "value", padding))
    if padding is False or padding is None or name == "do_not_pad":
        return None
    if padding is True or name == "longest":
        target = max(lengths, default=0)
    elif name == "max_length":
        target = max_length if max_length is not None else model_max_length
    else:
        raise ValueError(f"padding={padding!r} is not one of True, False, 'longest', "
                         "'max_length', 'do_not_pad'")
    if multiple:
        target = -(-target // multiple) * multiple
    return target


def _convert(value: Any, return_tensors: str | None, batched: bool) -> Any:
    if return_tensors is None:
        return value
    rows = value if batched else [value]
    if len({len(r) for r in rows}) > 1:
        raise ValueError("Unable to create tensor, you should probably activate truncation "
                         "and/or padding with 'padding=True' 'truncation=True' to have batched "
                         "tensors with the same length.")
    array = np.asarray(rows, dtype=np.int64).reshape(len(rows), -1)
    if return_tensors == "np":
        return array
    if return_tensors == "pt":
        try:
            import torch
        except ImportError:
            raise ImportError("return_tensors='pt' needs PyTorch, which is not installed; "
                              "use return_tensors='np'") from None
        return torch.from_numpy(array)
    raise ValueError(f"return_tensors={return_tensors!r}: crossrank gives None, 'np' or 'pt'")


def _as_id_list(ids: Any) -> list[int]:
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, (int, np.integer)):
        return [int(ids)]
    return [int(i) for i in ids]


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
