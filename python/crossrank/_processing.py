"""sentence-transformers 6.x's ``processing_kwargs``: what they change in crossrank.

sentence-transformers keeps call-time tokenizer options in a nested dict (its Transformer
module's ``processing_kwargs``: saved in ``sentence_bert_config.json``, set on
``model[0].processing_kwargs``), with keys ``"common"``, ``"text"``, ``"chat_template"`` (and
``"audio"`` / ``"image"`` / ``"video"``, which text pairs never use); ``predict(...,
processing_kwargs=...)`` merges per-call entries on top, shallowly per key. This module
merges them the same way and reduces them to what crossrank acts on: the chat template's
variables, the template itself, the cut length and whether the template's suffix is restored.

The cut length goes to the native call (its ``max_length`` argument); the model's own
:attr:`max_length` never changes during a call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ._arguments import is_int

logger = logging.getLogger("sentence_transformers.base.modules.transformer")

#: The top-level keys sentence-transformers accepts (others: a warning, then ignored).
VALID_KEYS = frozenset({"common", "text", "audio", "image", "video", "chat_template"})
#: The chat-template entries sentence-transformers hands to the tokenizer, not the template.
SIZE_KEYS = frozenset({"padding", "truncation", "max_length", "return_tensors"})
#: Tokenizer options that change nothing in crossrank (it packs batches without padding and
#: scores the last token of each sequence).
_NO_EFFECT = frozenset({"padding", "pad_to_multiple_of", "padding_side", "return_tensors",
                        "return_attention_mask", "return_token_type_ids", "verbose",
                        "logits_to_keep", "return_length"})
#: apply_chat_template arguments sentence-transformers passes itself: given again they are
#: a TypeError there ("got multiple values").
_RESERVED = frozenset({"tokenize", "return_dict", "tokenizer_kwargs", "common_kwargs",
                       "processor_kwargs", "text_kwargs"})
#: apply_chat_template arguments crossrank cannot honour (False / None are fine).
_UNSUPPORTED = frozenset({"continue_final_message", "sanitize_control_tokens",
                          "return_assistant_tokens_mask"})
_TRUNCATIONS = frozenset({True, False, None, "longest_first", "only_first", "only_second",
                          "do_not_truncate"})


def check(value: Any, name: str) -> dict[str, dict[str, Any]]:
    """A copy of ``value`` if it is a processing_kwargs dict; unknown top-level keys are
    logged and dropped, as sentence-transformers does."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict like {{'text': {{...}}, 'chat_template': "
                        f"{{...}}}}, got {type(value).__name__}")
    unknown = set(value) - VALID_KEYS
    if unknown:
        logger.warning(f"Unknown keys in `{name}`: {unknown}. Valid keys are: "
                       f"{sorted(VALID_KEYS)}. Unknown keys will be ignored.")
    out: dict[str, dict[str, Any]] = {}
    for key, entries in value.items():
        if key not in VALID_KEYS:
            continue
        if entries is None:
            entries = {}
        if not isinstance(entries, dict):
            raise TypeError(f"{name}[{key!r}] must be a dict of keyword arguments, got "
                            f"{type(entries).__name__}")
        out[key] = dict(entries)
    return out


def merge(instance: dict[str, dict[str, Any]], per_call: dict[str, dict[str, Any]]
          ) -> dict[str, dict[str, Any]]:
    """Per-call entries over the instance's, key by key (sentence-transformers'
    ``_merge_processing_kwargs``)."""
    if not per_call:
        return instance
    merged: dict[str, dict[str, Any]] = {}
    for key in VALID_KEYS:
        entries = {**instance.get(key, {}), **per_call.get(key, {})}
        if entries:
            merged[key] = entries
    return merged


@dataclass(frozen=True)
class Plan:
    """How one call tokenizes: ``truncate`` at ``max_length`` (None: the model's
    :attr:`max_length`) or not at all; for a chat template, ``restore`` its suffix over the
    end of a cut text, render it with ``variables``, and with ``template`` (None: the
    model's; else a template source or the name of one of the model's templates)."""

    truncate: bool = True
    max_length: int | None = None
    restore: bool = True
    variables: dict[str, Any] = field(default_factory=dict)
    template: str | None = None

    @property
    def default_length(self) -> bool:
        return self.truncate and self.max_length is None


DEFAULT = Plan()


def plan(merged: dict[str, dict[str, Any]], max_length: Any, chat: bool) -> Plan:
    """The :class:`Plan` for ``merged`` processing_kwargs and a ``max_length`` argument, as
    sentence-transformers reads them for a chat-template model (``chat``) or for text pairs.
    Raises a ValueError for options crossrank cannot honour."""
    if not merged and max_length is None:
        return DEFAULT
    text: dict[str, Any] = {"padding": True, "truncation": "longest_first"}
    if max_length is not None:
        text["max_length"] = max_length
    text.update(merged.get("text", {}))
    common = dict(merged.get("common", {}))
    for where, entries in (("text", text), ("common", common)):
        for key in entries:
            if key not in SIZE_KEYS and key not in _NO_EFFECT:
                raise ValueError(f"processing_kwargs[{where!r}][{key!r}] is not supported by "
                                 f"crossrank (supported: 'max_length', 'truncation'; "
                                 f"{sorted(_NO_EFFECT)} have no effect)")
    if not chat:
        # The tokenizer is called with the text entries, then the common ones over them.
        sizes = {**text, **common}
        return _sized(Plan(), sizes.get("truncation"), sizes.get("max_length"), pairs=True)
    ct = dict(merged.get("chat_template", {}))
    restore = ct.pop("restore_suffix", True)
    # The chat-template bucket's size entries win over the text ones, which win over common.
    for key in SIZE_KEYS & ct.keys():
        text[key] = ct.pop(key)
    sizes = {**{k: common[k] for k in SIZE_KEYS & common.keys()},
             **{k: text[k] for k in SIZE_KEYS & text.keys()}}
    template = ct.pop("chat_template", None)
    if template is not None and not isinstance(template, str):
        raise TypeError("processing_kwargs['chat_template']['chat_template'] must be a "
                        f"template (a str) or a template's name, got {type(template).__name__}")
    for key in ct:
        if key in _RESERVED:
            raise ValueError(f"processing_kwargs['chat_template'][{key!r}] cannot be given: "
                             "sentence-transformers passes it to apply_chat_template itself")
        if key in _UNSUPPORTED and ct[key]:
            raise ValueError(f"processing_kwargs['chat_template'][{key!r}] is not supported "
                             "by crossrank")
    variables = {k: v for k, v in ct.items() if k not in _UNSUPPORTED}
    base = Plan(restore=bool(restore), variables=variables, template=template)
    return _sized(base, sizes.get("truncation"), sizes.get("max_length"), pairs=False)


def _sized(base: Plan, truncation: Any, max_length: Any, pairs: bool) -> Plan:
    try:
        known = truncation in _TRUNCATIONS
    except TypeError:  # unhashable
        known = False
    if not known:
        raise ValueError(f"truncation={truncation!r} is not a truncation strategy (True, "
                         "False, 'longest_first', 'only_first', 'only_second', "
                         "'do_not_truncate')")
    if truncation in ("only_first", "only_second") and (pairs or truncation == "only_second"):
        what = "text pairs (crossrank truncates them 'longest_first')" if pairs else (
            "a chat-rendered conversation (one sequence: there is no second one to cut)")
        raise ValueError(f"truncation={truncation!r} is not supported for {what}")
    if max_length is not None and (not is_int(max_length) or max_length < 1):
        raise ValueError(f"max_length must be an int of at least 1, got {max_length!r}")
    # A max_length without a truncation strategy truncates, as in transformers.
    truncate = (truncation not in (False, "do_not_truncate")
                and not (truncation is None and max_length is None))
    restore = base.restore and truncate
    max_length = None if max_length is None else int(max_length)
    return Plan(truncate=truncate, max_length=max_length, restore=restore,
                variables=base.variables, template=base.template)
