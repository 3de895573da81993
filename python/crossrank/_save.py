"""``CrossEncoder.save``: a model directory that crossrank and sentence-transformers (5.x and
6.x) load with the same scores.

crossrank does not change a model's weights, so saving copies the files it was loaded from
(config, weights, tokenizer files) and writes the settings changed since in the places each
loader reads them:

- the activation: ``config_sentence_transformers.json``'s ``activation_fn`` (6.x) and
  ``config.json``'s ``sentence_transformers`` key (5.x), both as the torch class path;
- ``max_length``: ``tokenizer_config.json``'s ``model_max_length`` (both versions read it),
  and ``sentence_bert_config.json``'s ``max_seq_length`` where the model has one;
- prompts and the default prompt name: ``config_sentence_transformers.json``;
- ``config_kwargs`` given at load: merged into ``config.json``.

``modules.json`` and ``sentence_bert_config.json`` are written as 6.x writes them for a
CrossEncoder (one Transformer module, sequence classification; for a ``*ForCausalLM``, a
text-generation Transformer then ``LogitScore`` with the tokenizer's "yes" / "no") unless
the model has its own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import _activations

if TYPE_CHECKING:
    from .cross_encoder import CrossEncoder

logger = logging.getLogger("sentence_transformers.cross_encoder.CrossEncoder")

# Files rewritten (not copied as they are).
_WRITTEN = ("config.json", "config_sentence_transformers.json", "tokenizer_config.json",
            "modules.json", "sentence_bert_config.json")

_MODULES_6X = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.base.modules.transformer.Transformer"}]
_SENTENCE_BERT_6X = {
    "transformer_task": "sequence-classification",
    "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
    "module_output_name": "scores",
}

# NumPy functions users pass as activation_fn, and the torch class that computes the same.
_NUMPY_TWINS = {"tanh": "torch.nn.modules.activation.Tanh"}


def activation_path(fn: Callable[..., Any] | None) -> str | None:
    """The torch class path sentence-transformers saves for an activation (and instantiates
    with no arguments when it loads it), or None for a callable that has none (a lambda)."""
    if fn is None:
        return None
    if isinstance(fn, _activations.NamedActivation):
        return fn.torch_path
    cls = type(fn)
    if "torch" in sys.modules and any(c.__module__.startswith("torch.nn")
                                      for c in cls.__mro__):
        return f"{cls.__module__}.{cls.__name__}"  # a torch module instance
    import numpy as np

    if isinstance(fn, np.ufunc) and fn.__name__ in _NUMPY_TWINS:
        return _NUMPY_TWINS[fn.__name__]
    return None


def save(model: CrossEncoder, path: str | os.PathLike[str], create_model_card: bool) -> None:
    out = Path(path)
    source = Path(model._native.source)
    out.mkdir(parents=True, exist_ok=True)
    same = out.resolve() == source.resolve()
    if not same:
        for item in sorted(source.iterdir()):
            if item.name.startswith(".") or item.name in _WRITTEN or not item.is_file():
                continue
            if item.name == "README.md" and not create_model_card:
                continue
            shutil.copyfile(item, out / item.name)  # follows the hub cache's links
    modules = _read_json(source / "modules.json", None)
    causal = _is_causal_lm(_read_json(source / "config.json", {}))
    if isinstance(modules, list):
        if not same:
            for module in modules:  # modules saved in folders of their own (1_Dense...)
                sub = module.get("path") if isinstance(module, dict) else None
                if sub and (source / sub).is_dir():
                    shutil.copytree(source / sub, out / sub, dirs_exist_ok=True)
    elif causal:
        modules = [*_MODULES_6X, _LOGIT_SCORE_MODULE]
        _write_logit_score(model, out / _LOGIT_SCORE_FOLDER)
    else:
        modules = _MODULES_6X
    _write_json(out / "modules.json", modules)

    sbert = _read_json(source / "sentence_bert_config.json", None)
    if not isinstance(sbert, dict):
        sbert = _sentence_bert_6x(model, causal)
    if "max_seq_length" in sbert:
        sbert["max_seq_length"] = model.max_length
    # The call-time options, where sentence-transformers keeps them (its Transformer
    # module's config); written only when there are some, as it does.
    if model.processing_kwargs:
        try:
            json.dumps(model.processing_kwargs)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"processing_kwargs must hold JSON values to be saved: {exc}"
                            ) from None
        sbert["processing_kwargs"] = model.processing_kwargs
    else:
        sbert.pop("processing_kwargs", None)
    _write_json(out / "sentence_bert_config.json", sbert)
    if isinstance(model._chat_override, str):
        # A template given at load is saved as the tokenizer's, as transformers saves it.
        (out / "chat_template.jinja").write_text(model._chat_override, encoding="utf-8")

    fn_path = activation_path(model.activation_fn)
    if fn_path is None:
        kept = activation_path(model._saved_activation())
        logger.warning("activation_fn %r has no torch class path sentence-transformers could "
                       "load; the saved model keeps its own activation (%s)",
                       model.activation_fn, kept)
        fn_path = kept

    config = _read_json(source / "config.json", {})
    config.update(model._load_args.get("config_kwargs") or {})
    config.pop("sbert_ce_default_activation_function", None)  # the pre-4.x key, superseded
    # 5.x parses "version" as the sentence-transformers release that made the model (and
    # fails on anything else): keep the one the model came with, if any.
    saved_with = (config.get("sentence_transformers") or {}).get("version")
    config["sentence_transformers"] = {"activation_fn": fn_path}
    if isinstance(saved_with, str):
        config["sentence_transformers"]["version"] = saved_with
    _write_json(out / "config.json", config)

    st_config = _read_json(source / "config_sentence_transformers.json", {})
    versions = st_config.get("__version__")
    st_config.update({
        "__version__": {**(versions if isinstance(versions, dict) else {}),
                        "crossrank": _version()},
        "model_type": "CrossEncoder",
        "activation_fn": fn_path,
        "prompts": dict(model.prompts),
        "default_prompt_name": model.default_prompt_name,
    })
    _write_json(out / "config_sentence_transformers.json", st_config, sort_keys=True)

    tokenizer_config = _read_json(source / "tokenizer_config.json", {})
    tokenizer_config["model_max_length"] = model.max_length
    _write_json(out / "tokenizer_config.json", tokenizer_config)


_LOGIT_SCORE_FOLDER = "1_LogitScore"
_LOGIT_SCORE_MODULE = {"idx": 1, "name": "1", "path": _LOGIT_SCORE_FOLDER,
                       "type": "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"}


def _is_causal_lm(config: dict[str, Any]) -> bool:
    architectures = config.get("architectures") or [""]
    return isinstance(architectures[0], str) and architectures[0].endswith("ForCausalLM")


def _sentence_bert_6x(model: CrossEncoder, causal: bool) -> dict[str, Any]:
    """sentence_bert_config.json as 6.x writes it: a classifier, or a causal LM read by
    LogitScore (with the chat template's message format when the model has one)."""
    if not causal:
        return dict(_SENTENCE_BERT_6X)
    entry = {"method": "forward", "method_output_name": "logits"}
    modality: dict[str, Any] = {"text": dict(entry)}
    if model._chat is not None:
        fmt = "structured" if model._chat.structured else "flat"
        modality["message"] = {**entry, "format": fmt}
    return {"transformer_task": "text-generation", "modality_config": modality,
            "module_output_name": "causal_logits"}


def _write_logit_score(model: CrossEncoder, folder: Path) -> None:
    """The LogitScore module 6.x builds for a bare causal LM: the tokenizer's "yes" / "no"."""
    tokenizer = json.loads(model._native.tokenizer_json())
    ids = {name: _token_id(tokenizer, name) for name in ("yes", "no")}
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "config.json", {"true_token_id": ids["yes"],
                                         "false_token_id": ids["no"],
                                         "module_input_name": "causal_logits"})


def _token_id(tokenizer: dict[str, Any], token: str) -> int | None:
    """A token's id in a tokenizer.json: its added tokens, then the model's vocabulary."""
    for added in tokenizer.get("added_tokens") or []:
        if added.get("content") == token:
            return int(added["id"])
    vocab = (tokenizer.get("model") or {}).get("vocab")
    if isinstance(vocab, dict):
        found = vocab.get(token)
        return None if found is None else int(found)
    if isinstance(vocab, list):  # Unigram: [token, score] rows
        return next((i for i, row in enumerate(vocab) if row and row[0] == token), None)
    return None


def _version() -> str:
    from ._crossrank import __version__

    return __version__


def _read_json(path: Path, default: Any) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def _write_json(path: Path, data: Any, sort_keys: bool = False) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=sort_keys, ensure_ascii=False)
        f.write("\n")
