"""sentence-transformers' argument forms, checked and reduced to what crossrank uses.

``CrossEncoder`` takes the arguments of sentence-transformers 5.x and 6.x: their positional
orders (which differ), the old names they still accept (with their deprecation warnings) and
the arguments that have no meaning here (accepted, some with a warning). This module turns
all of those into plain values, so that ``cross_encoder.py`` only reads the results:
:func:`load_arguments` for the constructor, :func:`predict_arguments` and
:func:`rank_arguments` for the two scoring methods.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _pool, _precision

# sentence-transformers' logger names (5.x, 6.x): their levels decide the default of
# `show_progress_bar`, and deprecation notes go where users of either version look.
logger = logging.getLogger("sentence_transformers.cross_encoder.CrossEncoder")
LOGGER_6X = logging.getLogger("sentence_transformers.cross_encoder.model")

#: Marks an argument that was not passed (where None is a value).
UNSET: Any = object()

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

_warned_once: set[str] = set()


def warning_once(message: str) -> None:
    """Logs a deprecation note the first time it comes up in this process."""
    if message not in _warned_once:
        _warned_once.add(message)
        logger.warning(message)


def is_int(x: object) -> bool:
    """An int (a NumPy integer too), but not a bool."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


# -- the constructor ----------------------------------------------------------------------


@dataclass
class LoadArguments:
    """What the constructor's arguments come to, aliases resolved and values checked."""

    model_name_or_path: str
    num_labels: int | None
    max_length: int | None
    activation_fn: Callable[..., Any] | None
    device: str
    cache_folder: str | os.PathLike[str] | None
    trust_remote_code: bool
    revision: str | None
    local_files_only: bool
    token: bool | str | None
    config_kwargs: dict[str, Any] | None
    precision: _precision.Precision
    #: ``processor_kwargs["chat_template"]``: a template (or named templates) replacing the
    #: saved one, as ``AutoProcessor.from_pretrained`` takes it; None when not given.
    chat_template: Any = None


def load_arguments(
    *,
    model_name_or_path: str | os.PathLike[str] | None,
    num_labels: int | None,
    max_length: int | None,
    activation_fn: Callable[..., Any] | None,
    device: Any,
    cache_folder: str | os.PathLike[str] | None,
    trust_remote_code: bool,
    revision: str | None,
    local_files_only: bool,
    token: bool | str | None,
    model_kwargs: dict[str, Any] | None,
    tokenizer_kwargs: dict[str, Any] | None,
    config_kwargs: dict[str, Any] | None,
    backend: str,
    processor_kwargs: dict[str, Any] | None,
    precision: _precision.Precision | None,
    modules: Any,
    model_name: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None,
    tokenizer_args: dict[str, Any] | None,
    automodel_args: dict[str, Any] | None,
    config_args: dict[str, Any] | None,
    default_activation_function: Callable[..., Any] | None,
    classifier_dropout: float | None,
) -> LoadArguments:
    """Resolves the old names (5.x and before) and checks the constructor's arguments."""
    model_name_or_path = _alias("model_name", model_name, "model_name_or_path",
                                model_name_or_path)
    cache_folder = _alias("cache_dir", cache_dir, "cache_folder", cache_folder)
    tokenizer_kwargs = _alias("tokenizer_args", tokenizer_args, "tokenizer_kwargs",
                              tokenizer_kwargs)
    tokenizer_kwargs = _alias("tokenizer_kwargs", tokenizer_kwargs, "processor_kwargs",
                              processor_kwargs, warn=False)
    model_kwargs = _alias("automodel_args", automodel_args, "model_kwargs", model_kwargs)
    config_kwargs = _alias("config_args", config_args, "config_kwargs", config_kwargs)
    activation_fn = _alias("default_activation_function", default_activation_function,
                           "activation_fn", activation_fn)
    if classifier_dropout is not None:
        logger.warning(
            "The CrossEncoder `classifier_dropout` argument is deprecated. Please use "
            f"`config_kwargs={{'classifier_dropout': {classifier_dropout}}}` instead.")
        config_kwargs = {**(config_kwargs or {}), "classifier_dropout": classifier_dropout}
    if modules is not None:
        raise ValueError("crossrank loads saved models only; building a CrossEncoder from "
                         "`modules` needs sentence-transformers")
    if model_name_or_path is None:
        raise TypeError("CrossEncoder() needs model_name_or_path: a model directory or a "
                        "Hugging Face Hub model id")
    if not isinstance(model_name_or_path, (str, os.PathLike)):
        raise TypeError("model_name_or_path must be a str or os.PathLike, got "
                        f"{type(model_name_or_path).__name__}")
    check_optional_int("num_labels", num_labels)
    check_optional_int("max_length", max_length)
    check_activation_fn(activation_fn)
    if config_kwargs is not None and not isinstance(config_kwargs, dict):
        raise TypeError(f"config_kwargs must be a dict, got {type(config_kwargs).__name__}")
    if num_labels is None and config_kwargs and is_int(config_kwargs.get("num_labels")):
        num_labels = int(config_kwargs["num_labels"])  # 6.x passes num_labels this way
    _check_backend(backend)
    device = check_device(device, stacklevel=3)  # here, CrossEncoder.__init__, the user
    resolved_precision, model_kwargs = _precision.resolve(precision, model_kwargs)
    _warn_ignored("model_kwargs", model_kwargs)
    if tokenizer_kwargs is not None and not isinstance(tokenizer_kwargs, dict):
        raise TypeError("processor_kwargs must be a dict, got "
                        f"{type(tokenizer_kwargs).__name__}")
    tokenizer_kwargs = dict(tokenizer_kwargs or {})
    chat_template = tokenizer_kwargs.pop("chat_template", None)
    if "model_max_length" in tokenizer_kwargs:
        from_tokenizer_kwargs = tokenizer_kwargs.pop("model_max_length")
        if max_length is None:
            check_optional_int("model_max_length", from_tokenizer_kwargs)
            max_length = from_tokenizer_kwargs
    _warn_processor_kwargs(tokenizer_kwargs, chat_template)
    return LoadArguments(
        model_name_or_path=os.fspath(model_name_or_path), num_labels=num_labels,
        max_length=max_length, activation_fn=activation_fn, device=device,
        cache_folder=cache_folder, trust_remote_code=bool(trust_remote_code),
        revision=revision, local_files_only=local_files_only, token=token,
        config_kwargs=config_kwargs, precision=resolved_precision, chat_template=chat_template,
    )


def _alias(old: str, old_value: Any, new: str, new_value: Any, warn: bool = True) -> Any:
    """A deprecated keyword in place of its new name; the new one wins when both are given,
    as in sentence-transformers."""
    if old_value is None:
        return new_value
    if warn:
        logger.warning(f"The CrossEncoder `{old}` argument was renamed and is now deprecated, "
                       f"please use `{new}` instead.")
    return old_value if new_value is None else new_value


def check_optional_int(name: str, value: Any) -> None:
    """None, or an int of at least 1."""
    if value is None:
        return
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def check_activation_fn(activation_fn: Any) -> None:
    """None, or any callable (a NumPy function, a torch module, a lambda...)."""
    if activation_fn is not None and not callable(activation_fn):
        raise TypeError(f"activation_fn must be callable, got {type(activation_fn).__name__}")


def _check_backend(backend: str) -> None:
    if backend == "torch":
        return
    if backend in ("onnx", "openvino"):
        raise ValueError(f"backend={backend!r} is not available in crossrank, which runs its "
                         "own Rust engine; drop the argument or use backend='torch'")
    raise ValueError(f"Unsupported backend '{backend}'. `backend` should be `torch`, `onnx`, "
                     "or `openvino`.")


def check_device(device: Any, stacklevel: int) -> str:
    """Always ``"cpu"``; any other device (or list of devices) is ignored with a warning.

    The warning names the user's line: ``stacklevel`` counts the frames from this function's
    caller (1) to the user's.
    """
    if device is None:
        return "cpu"
    if isinstance(device, list):
        for d in device:
            check_device(d, stacklevel + 1)
        return "cpu"
    name = str(device)
    if name != "cpu" and not name.startswith("cpu:"):
        warnings.warn(f"crossrank runs on the CPU; device={name!r} is ignored",
                      stacklevel=stacklevel + 1)
    return "cpu"


def _warn_processor_kwargs(kwargs: dict[str, Any], chat_template: Any) -> None:
    """processor_kwargs are ``AutoProcessor.from_pretrained`` arguments in
    sentence-transformers 6.x (tokenizer_kwargs its old name): call-time options put there
    (``"text"``, ``"common"``, template variables) have no effect in either library."""
    nested = sorted(k for k in kwargs if k in ("text", "common", "audio", "image", "video"))
    if nested or (isinstance(chat_template, dict) and not all(
            isinstance(v, str) and ("{{" in v or "{%" in v) for v in chat_template.values())):
        logger.warning(
            "processor_kwargs (tokenizer_kwargs) are the tokenizer's loading arguments, as in "
            "sentence-transformers 6.x: %s%s have no effect there. Call-time options go in "
            "processing_kwargs: CrossEncoder(..., processing_kwargs={'text': {...}, "
            "'chat_template': {...}}) or predict(..., processing_kwargs=...)",
            ", ".join(repr(k) for k in nested),
            (" and a 'chat_template' dict that is not templates (taken as named templates)"
             if isinstance(chat_template, dict) else ""))
        for key in nested:
            kwargs.pop(key)
    _warn_ignored("tokenizer_kwargs", kwargs)


def _warn_ignored(name: str, value: dict[str, Any] | None) -> None:
    if value:
        logger.warning("%s %s have no effect in crossrank (it runs on the CPU)", name,
                       sorted(value))


# -- predict and rank -----------------------------------------------------------------------


class PredictOptions:
    """The keyword arguments of predict / rank, checked once."""

    __slots__ = ("activation_fn", "apply_softmax", "batch_size", "chunk_size",
                 "convert_to_numpy", "convert_to_tensor", "devices", "max_length", "pool",
                 "processing_kwargs", "prompt", "prompt_name", "show_progress_bar")

    batch_size: Any
    show_progress_bar: bool | None
    activation_fn: Callable[..., Any] | None
    apply_softmax: bool
    convert_to_numpy: bool
    convert_to_tensor: bool
    prompt_name: str | None
    prompt: str | None
    #: A pool from ``start_multi_process_pool``, or None.
    pool: Any
    #: Pairs per chunk with a pool (None: the default); unchecked without one, as in 6.x.
    chunk_size: Any
    #: ``device`` when it is a non-empty list: 6.x then scores through a pool of its own.
    devices: list[Any] | None
    #: Per-call processing_kwargs (unchecked: see ``_processing.check``), or None.
    processing_kwargs: Any
    #: Per-call max_length (6.x's preprocess argument), or None.
    max_length: Any

    @property
    def chunked(self) -> bool:
        """Whether the pairs are scored in chunks, as 6.x does with a pool or a device list."""
        return self.pool is not None or self.devices is not None

    @classmethod
    def from_kwargs(cls, method: str, kwargs: dict[str, Any]) -> PredictOptions:
        """Takes the options out of ``kwargs``; anything left over is a TypeError."""
        o = cls()
        o.batch_size = kwargs.pop("batch_size", 32)
        o.show_progress_bar = kwargs.pop("show_progress_bar", None)
        o.activation_fn = kwargs.pop("activation_fn", None)
        if "activation_fct" in kwargs:
            old = kwargs.pop("activation_fct")
            warning_once(f"The CrossEncoder.{method} `activation_fct` argument was renamed and "
                         "is now deprecated, please use `activation_fn` instead.")
            if o.activation_fn is None:
                o.activation_fn = old
        o.apply_softmax = bool(kwargs.pop("apply_softmax", False))
        o.convert_to_numpy = bool(kwargs.pop("convert_to_numpy", True))
        o.convert_to_tensor = bool(kwargs.pop("convert_to_tensor", False))
        o.prompt_name = kwargs.pop("prompt_name", None)
        o.prompt = kwargs.pop("prompt", None)
        # Here, predict_arguments / rank_arguments, CrossEncoder.predict / rank, the user.
        device = kwargs.pop("device", None)
        check_device(device, stacklevel=4)
        o.devices = list(device) if isinstance(device, list) and device else None
        o.pool = kwargs.pop("pool", None)
        o.chunk_size = kwargs.pop("chunk_size", None)
        o.processing_kwargs = kwargs.pop("processing_kwargs", None)
        o.max_length = kwargs.pop("max_length", None)
        _pool.check_pool(o.pool)
        if o.chunked:
            _pool.check_chunk_size(o.chunk_size)
        if "num_workers" in kwargs:
            kwargs.pop("num_workers")
            warning_once(f"The CrossEncoder.{method} `num_workers` argument is deprecated and "
                         "has no effect. It will be removed in a future version.")
        if kwargs:
            name = next(iter(kwargs))
            raise TypeError(f"{method}() got an unexpected keyword argument {name!r}")
        if o.activation_fn is not None and not callable(o.activation_fn):
            raise TypeError("activation_fn must be callable or None, got "
                            f"{type(o.activation_fn).__name__}")
        check_optional_int("max_length", o.max_length)
        if o.prompt is not None and not isinstance(o.prompt, str):
            raise TypeError(f"prompt must be a str, got {type(o.prompt).__name__}")
        if o.prompt_name is not None and not isinstance(o.prompt_name, str):
            raise TypeError(f"prompt_name must be a str, got {type(o.prompt_name).__name__}")
        return o


def predict_arguments(inputs: Any, sentences: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> tuple[Any, PredictOptions]:
    """``predict``'s pairs (6.x ``inputs``, 5.x ``sentences``) and options.

    A second positional argument that is an int is 5.x's ``batch_size``; otherwise the
    positional arguments follow 6.x's order.
    """
    if sentences is not UNSET:
        warning_once("The `sentences` argument was renamed and is now deprecated. "
                     "Please use `inputs` instead.")
        if inputs is UNSET:
            inputs = sentences
    if inputs is UNSET:
        raise TypeError("predict() missing 1 required positional argument: 'inputs'")
    _bind_positional("predict", args, kwargs, _PREDICT_5X if args and is_int(args[0])
                     else _PREDICT_6X)
    return inputs, PredictOptions.from_kwargs("predict", kwargs)


def rank_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[int | None, bool, PredictOptions]:
    """``rank``'s ``top_k`` (unchecked: see :func:`check_top_k`), ``return_documents`` and
    scoring options.

    A third positional argument that is an int is 5.x's ``batch_size``; otherwise the
    positional arguments follow 6.x's order. ``apply_softmax``, ``convert_to_numpy`` and
    ``convert_to_tensor`` are dropped with a warning, as 6.x does.
    """
    _bind_positional("rank", args, kwargs, _RANK_5X if len(args) >= 3 and is_int(args[2])
                     else _RANK_6X)
    top_k = kwargs.pop("top_k", None)
    return_documents = kwargs.pop("return_documents", False)
    for ignored in ("apply_softmax", "convert_to_numpy", "convert_to_tensor"):
        if ignored in kwargs:
            kwargs.pop(ignored)
            warning_once(f"The CrossEncoder.rank `{ignored}` argument is deprecated and "
                         "has no effect, as `rank` always returns Python floats.")
    options = PredictOptions.from_kwargs("rank", kwargs)
    options.convert_to_numpy, options.convert_to_tensor = True, False
    options.apply_softmax = False
    return top_k, return_documents, options


def check_top_k(top_k: Any) -> None:
    if top_k is not None and not is_int(top_k):
        raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}")


def _bind_positional(method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                     order: tuple[str, ...]) -> None:
    """Moves the positional arguments after the first (two for rank) into ``kwargs``, named
    by ``order``."""
    if not args:
        return
    if len(args) > len(order):
        raise TypeError(f"{method}() takes at most {len(order) + 2} positional arguments "
                        f"({len(args) + 2} given)")
    for name, value in zip(order, args):
        if name in kwargs:
            raise TypeError(f"{method}() got multiple values for argument {name!r}")
        kwargs[name] = value
