"""``CrossEncoder``: sentence-transformers' API in front of crossrank's Rust engine.

Everything here is about Python argument forms (5.x and 6.x call styles, old aliases),
activations, output types and progress bars. Tokenisation and the model run in Rust with
the GIL released.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import _activations
from ._crossrank import NativeCrossEncoder
from ._inputs import is_single_pair, normalize_pairs, validate_batch_size
from .config import ModelConfig
from .tokenizer import Tokenizer

logger = logging.getLogger("sentence_transformers.cross_encoder.CrossEncoder")

_UNSET: Any = object()

# Positional parameters after the first, in each version's order.
_PREDICT_5X = ("batch_size", "show_progress_bar", "activation_fn", "apply_softmax",
               "convert_to_numpy", "convert_to_tensor")
_PREDICT_6X = ("prompt_name", "prompt", "batch_size", "show_progress_bar", "activation_fn",
               "apply_softmax", "convert_to_numpy", "convert_to_tensor", "device", "pool",
               "chunk_size")
_RANK_5X = ("top_k", "return_documents", "batch_size", "show_progress_bar", "activation_fn",
            "apply_softmax", "convert_to_numpy", "convert_to_tensor")
_RANK_6X = ("top_k", "return_documents", "prompt_name", "prompt", "batch_size",
            "show_progress_bar", "activation_fn", "device", "pool", "chunk_size")


def _bind_positional(
    method: str, args: tuple, kwargs: dict[str, Any], orders: tuple[tuple[str, ...], ...],
    pick: Callable[[tuple], int],
) -> None:
    """Moves extra positional arguments into ``kwargs`` by the call style they fit."""
    if not args:
        return
    order = orders[pick(args)]
    if len(args) > len(order):
        raise TypeError(f"{method}() takes at most {len(order) + 1} positional arguments "
                        f"after self ({len(args) + 1} given)")
    for name, value in zip(order, args):
        if name in kwargs:
            raise TypeError(f"{method}() got multiple values for argument {name!r}")
        kwargs[name] = value


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


class CrossEncoder:
    """A cross-encoder: scores (query, document) pairs with a sequence-classification model.

    A drop-in replacement for ``sentence_transformers.CrossEncoder`` running on crossrank's
    Rust engine (CPU, float32, no PyTorch).

    Args:
        model_name_or_path: A local model directory, or a Hugging Face Hub model id such as
            ``"cross-encoder/ms-marco-MiniLM-L12-v2"``.
        num_labels: Number of labels of the classifier. Defaults to the model's own.
        max_length: Maximum length of a tokenized pair (special tokens included); longer
            pairs are truncated, the longest text first.
        activation_fn: Activation applied to the logits by :meth:`predict`. Defaults to the
            one saved with the model, else Sigmoid for one label and Identity otherwise.
        device: Accepted for compatibility; crossrank runs on the CPU.
        cache_folder: Where hub models are cached.
        revision: Branch, tag or commit of a hub model.
        local_files_only: Only use models already in the cache.
        token: Hugging Face token for private or gated models.
        config_kwargs: Entries that override the model's ``config.json``.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | None = None,
        num_labels: int | None = None,
        max_length: int | None = None,
        activation_fn: Callable[..., Any] | None = None,
        device: str | None = None,
        cache_folder: str | os.PathLike[str] | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        model_card_data: Any = None,
        backend: str = "torch",
        *,
        processor_kwargs: dict[str, Any] | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        keep_in_fp32_modules: list[str] | None = None,
        # Old aliases sentence-transformers still accepts.
        model_name: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        tokenizer_args: dict[str, Any] | None = None,
        automodel_args: dict[str, Any] | None = None,
        config_args: dict[str, Any] | None = None,
        default_activation_function: Callable[..., Any] | None = None,
        classifier_dropout: float | None = None,
    ) -> None:
        model_name_or_path = _alias("model_name", model_name, "model_name_or_path",
                                    model_name_or_path)
        cache_folder = _alias("cache_dir", cache_dir, "cache_folder", cache_folder)
        tokenizer_kwargs = _alias("tokenizer_args", tokenizer_args, "tokenizer_kwargs",
                                  _alias("processor_kwargs", processor_kwargs,
                                         "tokenizer_kwargs", tokenizer_kwargs))
        model_kwargs = _alias("automodel_args", automodel_args, "model_kwargs", model_kwargs)
        config_kwargs = _alias("config_args", config_args, "config_kwargs", config_kwargs)
        activation_fn = _alias("default_activation_function", default_activation_function,
                               "activation_fn", activation_fn)
        if model_name_or_path is None:
            raise TypeError("CrossEncoder() needs model_name_or_path: a model directory or a "
                            "Hugging Face Hub model id")
        if not isinstance(model_name_or_path, (str, os.PathLike)):
            raise TypeError("model_name_or_path must be a str or os.PathLike, got "
                            f"{type(model_name_or_path).__name__}")
        _check_optional_int("num_labels", num_labels)
        _check_optional_int("max_length", max_length)
        if activation_fn is not None and not callable(activation_fn):
            raise TypeError(f"activation_fn must be callable, got {type(activation_fn).__name__}")
        _check_backend(backend)
        self._device = _check_device(device)
        if trust_remote_code:
            logger.info("trust_remote_code has no effect: crossrank runs no model code from the hub")
        _warn_ignored("model_kwargs", model_kwargs)
        tokenizer_kwargs = dict(tokenizer_kwargs or {})
        if max_length is None and "model_max_length" in tokenizer_kwargs:
            max_length = int(tokenizer_kwargs.pop("model_max_length"))
        _warn_ignored("tokenizer_kwargs", tokenizer_kwargs)

        self._load_args = dict(
            model_name_or_path=os.fspath(model_name_or_path), num_labels=num_labels,
            max_length=max_length, cache_folder=cache_folder, revision=revision,
            local_files_only=local_files_only, token=token, config_kwargs=config_kwargs,
        )
        path = _resolve_model_path(os.fspath(model_name_or_path), cache_folder=cache_folder,
                                   revision=revision, local_files_only=local_files_only,
                                   token=token)
        self.model_name_or_path = os.fspath(model_name_or_path)
        self._native = NativeCrossEncoder(
            os.fspath(path), num_labels=num_labels, max_length=max_length,
            config_overrides=json.dumps(config_kwargs) if config_kwargs else None,
        )
        for message in self._native.warnings:
            warnings.warn(message, stacklevel=2)
        self.config = ModelConfig(json.loads(self._native.config_json))
        if num_labels is not None:
            self.config["num_labels"] = num_labels
        self.tokenizer = Tokenizer(self._native)
        st_config = _read_json(Path(path) / "config_sentence_transformers.json")
        self.prompts: dict[str, str] = dict(st_config.get("prompts") or {})
        self.prompts.update(prompts or {})
        self.default_prompt_name = default_prompt_name or st_config.get("default_prompt_name")
        self.activation_fn: Callable[..., Any] | None = (
            activation_fn if activation_fn is not None
            else _activations.from_saved_name(self._native.default_activation)
        )

    # -- properties users read -------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        return self._native.num_labels

    @property
    def max_length(self) -> int:
        return self._native.max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        _check_optional_int("max_length", value)
        self._native.max_length = value

    max_seq_length = max_length

    @property
    def device(self) -> str:
        return self._device

    @property
    def model_type(self) -> str:
        return self._native.model_type

    def __repr__(self) -> str:
        return (
            f"CrossEncoder(model_type={self._native.model_type!r}, "
            f"layers={self._native.num_layers}, hidden_size={self._native.hidden_size}, "
            f"num_labels={self.num_labels}, max_length={self.max_length}, "
            f"device={self.device!r}, activation_fn={self.activation_fn!r}, "
            f"source={str(self._native.source)!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles as "load it again from where it came from".
        return (_reload, (self._load_args, self.max_length, self.activation_fn))

    # -- scoring ---------------------------------------------------------------------------

    def predict(
        self,
        inputs: Any = _UNSET,
        *args: Any,
        sentences: Any = _UNSET,
        **kwargs: Any,
    ) -> Any:
        """Performs predictions with the CrossEncoder on the given sentence pairs.

        Args:
            inputs (``sentences`` in 5.x): A list of (query, document) pairs, or one pair.
            batch_size: Batch size for encoding. Defaults to 32.
            show_progress_bar: Output progress bar. Defaults to None (shown when the
                sentence-transformers logger level is INFO or DEBUG).
            activation_fn: Activation applied to the logits for this call. Defaults to
                ``model.activation_fn``.
            apply_softmax: If True, applies softmax over the labels of each pair.
            convert_to_numpy: Whether the output should be a numpy array. If False, a list.
            convert_to_tensor: Whether the output should be one torch tensor (needs torch).
            prompt_name, prompt: A prompt (or the name of a saved one) prepended to each query.
            device, pool, chunk_size: Accepted for compatibility; crossrank uses all cores.

        Returns:
            float32 scores in input order: shape ``(N,)`` for one label, ``(N, num_labels)``
            otherwise; unbatched for a single pair.
        """
        inputs = _alias("sentences", sentences, "inputs", inputs, unset=_UNSET)
        if inputs is _UNSET:
            raise TypeError("predict() missing 1 required positional argument: 'inputs'")
        _bind_positional("predict", args, kwargs, (_PREDICT_5X, _PREDICT_6X),
                         lambda a: 0 if _is_int(a[0]) else 1)
        options = _PredictOptions.from_kwargs("predict", kwargs)
        return self._predict(inputs, options)

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        *args: Any,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Ranks documents by their score with the query.

        Args:
            query: A single query.
            documents: A list of documents.
            top_k: Return the top-k documents. If None, all documents are returned.
            return_documents: If True, also returns the documents' text.
            batch_size: Batch size for encoding. Defaults to 32.
            show_progress_bar: Output progress bar. Defaults to None.
            activation_fn: Activation applied to the logits. Defaults to ``model.activation_fn``.

        Returns:
            A list of ``{"corpus_id": int, "score": float}`` (plus ``"text"``), sorted by
            decreasing score; equal scores keep the documents' order.
        """
        _bind_positional("rank", args, kwargs, (_RANK_5X, _RANK_6X),
                         lambda a: 0 if len(a) >= 3 and _is_int(a[2]) else 1)
        top_k = kwargs.pop("top_k", None)
        return_documents = kwargs.pop("return_documents", False)
        for ignored in ("apply_softmax", "convert_to_numpy", "convert_to_tensor"):
            kwargs.pop(ignored, None)
        options = _PredictOptions.from_kwargs("rank", kwargs)
        if top_k is not None and not _is_int(top_k):
            raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}")
        if self.num_labels != 1:
            raise ValueError(
                "CrossEncoder.rank() only works for models with num_labels=1. "
                "Consider using CrossEncoder.predict() with input pairs instead."
            )
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        documents = _as_documents(documents)
        if not documents:
            return []
        options.convert_to_numpy, options.convert_to_tensor = True, False
        scores = self._predict([(query, d) for d in documents], options)
        results: list[dict[str, Any]] = []
        for i, score in enumerate(scores.tolist()):
            hit: dict[str, Any] = {"corpus_id": i, "score": score}
            if return_documents:
                hit["text"] = documents[i]
            results.append(hit)
        results.sort(key=lambda r: r["score"], reverse=True)  # stable: ties keep input order
        return results[:top_k]

    def _predict(self, inputs: Any, options: _PredictOptions) -> Any:
        validate_batch_size(options.batch_size)
        single = is_single_pair(inputs)
        pairs = normalize_pairs([inputs] if single else inputs)
        prompt = self._resolve_prompt(options.prompt, options.prompt_name)
        if prompt:
            pairs = [(prompt + q, d) for q, d in pairs]
        logits = self._logits(pairs, options.batch_size, options.show_progress_bar)
        activation = options.activation_fn if options.activation_fn is not None else (
            self.activation_fn)
        scores = _activations.apply(activation, logits) if len(logits) else logits
        if options.apply_softmax and len(scores):
            scores = _activations.softmax(scores)
        if self.num_labels == 1 and scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if len(pairs) == 0:
            scores = np.zeros((0,), dtype=np.float32)
        result: Any
        if options.convert_to_tensor:
            result = _to_torch(scores)
        elif options.convert_to_numpy:
            result = scores
        else:
            result = list(scores)
        if single:
            return result[0]
        return result

    def _logits(self, pairs: list[tuple[str, str]], batch_size: int,
                show_progress_bar: bool | None) -> np.ndarray:
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        if not pairs:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        if not show_progress_bar:
            return self._native.predict_logits(pairs, batch_size)
        from tqdm.auto import tqdm

        total = -(-len(pairs) // batch_size)
        with tqdm(total=total, desc="Batches") as bar:
            def progress(done: int, _total: int) -> None:
                bar.update(done - bar.n)

            return self._native.predict_logits(pairs, batch_size, progress)

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt is not None:
            if prompt_name is not None:
                logger.warning("Provide either a `prompt`, a `prompt_name`, or neither, but not "
                               "both. Ignoring the `prompt_name` in favor of `prompt`.")
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ValueError(f"Prompt name '{prompt_name}' not found in the configured "
                                 f"prompts dictionary with keys {list(self.prompts)!r}.")
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name)
        return None


class _PredictOptions:
    """The keyword arguments of predict / rank, checked once."""

    __slots__ = ("batch_size", "show_progress_bar", "activation_fn", "apply_softmax",
                 "convert_to_numpy", "convert_to_tensor", "prompt_name", "prompt")

    @classmethod
    def from_kwargs(cls, method: str, kwargs: dict[str, Any]) -> _PredictOptions:
        o = cls()
        o.batch_size = kwargs.pop("batch_size", 32)
        o.show_progress_bar = kwargs.pop("show_progress_bar", None)
        o.activation_fn = _alias("activation_fct", kwargs.pop("activation_fct", None),
                                 "activation_fn", kwargs.pop("activation_fn", None))
        o.apply_softmax = bool(kwargs.pop("apply_softmax", False))
        o.convert_to_numpy = bool(kwargs.pop("convert_to_numpy", True))
        o.convert_to_tensor = bool(kwargs.pop("convert_to_tensor", False))
        o.prompt_name = kwargs.pop("prompt_name", None)
        o.prompt = kwargs.pop("prompt", None)
        _check_device(kwargs.pop("device", None))
        for accepted in ("pool", "chunk_size", "num_workers"):
            kwargs.pop(accepted, None)
        if kwargs:
            name = next(iter(kwargs))
            raise TypeError(f"{method}() got an unexpected keyword argument {name!r}")
        if o.activation_fn is not None and not callable(o.activation_fn):
            raise TypeError("activation_fn must be callable or None, got "
                            f"{type(o.activation_fn).__name__}")
        if o.prompt is not None and not isinstance(o.prompt, str):
            raise TypeError(f"prompt must be a str, got {type(o.prompt).__name__}")
        return o


def _alias(old: str, old_value: Any, new: str, new_value: Any, unset: Any = None) -> Any:
    """Accepts a deprecated keyword in place of its new name, never both."""
    if old_value is unset:
        return new_value
    if new_value is not unset:
        raise TypeError(f"got both {old!r} and {new!r}; {old!r} is an old alias of {new!r}")
    return old_value


def _check_optional_int(name: str, value: Any) -> None:
    if value is None:
        return
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _check_backend(backend: str) -> None:
    if backend == "torch":
        return
    if backend in ("onnx", "openvino"):
        raise ValueError(f"backend={backend!r} is not available in crossrank, which runs its "
                         "own Rust engine; drop the argument or use backend='torch'")
    raise ValueError(f"backend must be 'torch', 'onnx' or 'openvino', got {backend!r}")


def _check_device(device: Any) -> str:
    if device is None:
        return "cpu"
    if isinstance(device, list):
        for d in device:
            _check_device(d)
        return "cpu"
    name = str(device)
    if name != "cpu" and not name.startswith("cpu:"):
        warnings.warn(f"crossrank runs on the CPU; device={name!r} is ignored", stacklevel=3)
    return "cpu"


def _warn_ignored(name: str, value: dict[str, Any] | None) -> None:
    if value:
        logger.warning("%s %s have no effect in crossrank (float32 on the CPU)", name,
                       sorted(value))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _as_documents(documents: Any) -> list[str]:
    if isinstance(documents, str):
        raise TypeError("documents must be a list of strings, not a single string")
    if isinstance(documents, np.ndarray):
        documents = documents.tolist()
    try:
        docs = list(documents)
    except TypeError:
        raise TypeError("documents must be a list of strings, got "
                        f"{type(documents).__name__}") from None
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise TypeError(f"documents[{i}] must be a str, got {type(d).__name__}")
    return docs


def _to_torch(scores: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError("convert_to_tensor=True needs PyTorch, which is not installed; "
                          "use the default numpy output instead") from None
    return torch.from_numpy(scores)


def _resolve_model_path(name: str, **hub_options: Any) -> Path:
    from . import hub

    return hub.resolve_model(name, **hub_options)


def _reload(load_args: dict[str, Any], max_length: int,
            activation_fn: Callable[..., Any] | None) -> CrossEncoder:
    model = CrossEncoder(**load_args)
    model.max_length = max_length
    model.activation_fn = activation_fn
    return model


__all__ = ["CrossEncoder"]
