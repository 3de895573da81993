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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Union, overload

import numpy as np

from . import _activations, _precision
from ._crossrank import NativeCrossEncoder
from ._inputs import is_single_pair, normalize_pairs, validate_batch_size
from .config import ModelConfig
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    import numpy.typing as npt

# sentence-transformers' logger names (5.x, 6.x): their levels decide the default of
# `show_progress_bar`, and deprecation notes go where users of either version look.
logger = logging.getLogger("sentence_transformers.cross_encoder.CrossEncoder")
_LOGGER_6X = logging.getLogger("sentence_transformers.cross_encoder.model")

#: One (query, document) pair.
Pair = Union[tuple[str, str], Sequence[str]]
#: What ``predict`` takes: pairs as a list, tuple, numpy array of strings, pandas DataFrame or
#: Series, ``datasets`` column; or one pair.
PairsInput = Union[Sequence[Pair], "npt.NDArray[Any]", Any]

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

_warned_once: set[str] = set()


def _warning_once(message: str) -> None:
    if message not in _warned_once:
        _warned_once.add(message)
        logger.warning(message)


def _bind_positional(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
    orders: tuple[tuple[str, ...], ...], pick: Callable[[tuple[Any, ...]], int],
) -> None:
    """Moves extra positional arguments into ``kwargs`` by the call style they fit."""
    if not args:
        return
    order = orders[pick(args)]
    if len(args) > len(order):
        raise TypeError(f"{method}() takes at most {len(order) + 2} positional arguments "
                        f"({len(args) + 2} given)")
    for name, value in zip(order, args):
        if name in kwargs:
            raise TypeError(f"{method}() got multiple values for argument {name!r}")
        kwargs[name] = value


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


class CrossEncoder:
    """
    A CrossEncoder takes exactly two sentences / texts as input and either predicts
    a score or label for this sentence pair. It can for example predict the similarity of the
    sentence pair on a scale of 0 ... 1.

    It does not yield a sentence embedding and does not work for individual sentences.

    crossrank's CrossEncoder is a drop-in replacement for ``sentence_transformers.CrossEncoder``
    (5.x and 6.x call styles) that runs the model in Rust: CPU, float32, no PyTorch.

    Args:
        model_name_or_path (str): A model name from Hugging Face Hub that can be loaded with
            AutoModel, or a path to a local model. We provide several pre-trained CrossEncoder
            models that can be used for common tasks.
        num_labels (int, optional): Number of labels of the classifier. If 1, the CrossEncoder is
            a regression model that outputs a continuous score 0...1. If > 1, it output several
            scores that can be soft-maxed to get probability scores for the different classes.
            Defaults to None (the model's own; a bare encoder without a classification head is
            refused unless ``num_labels`` is given).
        max_length (int, optional): Max length for input sequences. Longer sequences will be
            truncated. If None, max length of the model will be used. Defaults to None.
        activation_fn (Callable, optional): Callable (like nn.Sigmoid) about the default
            activation function that should be used on-top of model.predict(). If None.
            nn.Sigmoid() will be used if num_labels=1, else nn.Identity(). Any callable on a
            float32 numpy array works too. Defaults to None.
        device (str, optional): Accepted for compatibility; crossrank runs on the CPU.
        cache_folder (`str`, `Path`, optional): Path to the folder where cached files are stored.
        trust_remote_code (bool, optional): Whether to import a saved activation function from
            outside ``torch``. crossrank never runs model code from the Hub. Defaults to False.
        revision (str, optional): The specific model version to use. It can be a branch name, a
            tag name, or a commit id, for a stored model on Hugging Face. Defaults to None.
        local_files_only (bool, optional): Whether or not to only look at local files (i.e., do
            not try to download the model).
        token (bool or str, optional): Hugging Face authentication token to download private
            models.
        model_kwargs (Dict[str, Any], optional): ``torch_dtype`` / ``dtype`` (a torch dtype or
            its name) choose the precision as in sentence-transformers: ``bfloat16`` runs
            bfloat16, ``float16`` the nearest crossrank has (bfloat16, with a warning),
            ``float32`` and ``"auto"`` float32. Other entries have no effect.
        tokenizer_kwargs (Dict[str, Any], optional): ``model_max_length`` is honoured; other
            entries have no effect. 6.x calls it ``processor_kwargs``.
        config_kwargs (Dict[str, Any], optional): Additional model configuration parameters,
            merged into the model's ``config.json`` (e.g. ``num_labels``).
        model_card_data: Accepted for compatibility; unused.
        backend (str): The backend to use for inference. Only "torch" (the default, meaning
            "the model as saved") is available.
        prompts (dict[str, str], optional): A dictionary with prompts for the model. The key is
            the prompt name, the value is the prompt text, prepended to the query.
        default_prompt_name (str, optional): The name of the prompt that should be used by
            default. If not set, no prompt will be applied. Defaults to None.
        precision (str, optional): crossrank's own: the precision of the transformer layers'
            matrix products. ``"float32"`` (exact, the default unless ``model_kwargs`` gives a
            dtype), ``"int8"`` (int8 weights, activations quantized per token, int32 sums:
            the fastest on a CPU) or ``"bfloat16"`` (runs float32 where the CPU or crossrank
            has no bfloat16 kernel, with a warning). Embeddings, norms, attention softmax and
            the classification head stay float32. :attr:`precision` reads it back,
            :attr:`kernels` says which kernels run.

    Example:
        ::

            from crossrank import CrossEncoder

            model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")
            scores = model.predict([
                ("How many people live in Berlin?", "Berlin had 3,520,031 inhabitants in 2019."),
                ("How many people live in Berlin?", "Berlin is well known for its museums."),
            ])
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
        precision: _precision.Precision | None = None,
        keep_in_fp32_modules: list[str] | None = None,
        modules: Any = None,
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
        _check_optional_int("num_labels", num_labels)
        _check_optional_int("max_length", max_length)
        if activation_fn is not None and not callable(activation_fn):
            raise TypeError(f"activation_fn must be callable, got {type(activation_fn).__name__}")
        if config_kwargs is not None and not isinstance(config_kwargs, dict):
            raise TypeError(f"config_kwargs must be a dict, got {type(config_kwargs).__name__}")
        if num_labels is None and config_kwargs and _is_int(config_kwargs.get("num_labels")):
            num_labels = int(config_kwargs["num_labels"])  # 6.x passes num_labels this way
        _check_backend(backend)
        self._device = _check_device(device)
        self.trust_remote_code = bool(trust_remote_code)
        precision, model_kwargs = _precision.resolve(precision, model_kwargs)
        _warn_ignored("model_kwargs", model_kwargs)
        tokenizer_kwargs = dict(tokenizer_kwargs or {})
        if "model_max_length" in tokenizer_kwargs:
            from_tokenizer_kwargs = tokenizer_kwargs.pop("model_max_length")
            if max_length is None:
                _check_optional_int("model_max_length", from_tokenizer_kwargs)
                max_length = from_tokenizer_kwargs
        _warn_ignored("tokenizer_kwargs", tokenizer_kwargs)

        self.model_name_or_path = os.fspath(model_name_or_path)
        self._load_args: dict[str, Any] = {
            "model_name_or_path": self.model_name_or_path, "num_labels": num_labels,
            "max_length": max_length, "cache_folder": cache_folder, "revision": revision,
            "local_files_only": local_files_only,
            # A secret token does not go into pickles; HF_TOKEN serves a reload.
            "token": None if isinstance(token, str) else token,
            "config_kwargs": config_kwargs, "trust_remote_code": trust_remote_code,
            "precision": precision,
        }
        path = _resolve_model_path(self.model_name_or_path, cache_folder=cache_folder,
                                   revision=revision, local_files_only=local_files_only,
                                   token=token)
        self._path = Path(path)
        try:
            overrides = json.dumps(config_kwargs) if config_kwargs else None
        except (TypeError, ValueError) as exc:
            raise TypeError(f"config_kwargs must hold JSON values (config.json entries): {exc}"
                            ) from None
        self._native = NativeCrossEncoder(os.fspath(path), num_labels=num_labels,
                                          max_length=max_length, config_overrides=overrides,
                                          precision=precision)
        for message in self._native.warnings:
            warnings.warn(message, stacklevel=2)
        self.config = ModelConfig(json.loads(self._native.config_json))
        self.config["num_labels"] = self._native.num_labels
        self.tokenizer = Tokenizer(self._native)
        st_config = _read_json(self._path / "config_sentence_transformers.json")
        self.prompts: dict[str, str] = dict(st_config.get("prompts") or {})
        self.prompts.update(prompts or {})
        self.default_prompt_name: str | None = (
            default_prompt_name or st_config.get("default_prompt_name"))
        self.activation_fn: Callable[..., Any] | None = (
            activation_fn if activation_fn is not None
            else _activations.from_saved_name(self._native.default_activation,
                                              self.num_labels, self.trust_remote_code)
        )

    # -- properties users read -------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        """Number of labels of the classifier (outputs per pair)."""
        return self._native.num_labels

    @property
    def max_length(self) -> int:
        """Max length of a tokenized pair, special tokens included; longer pairs are truncated."""
        return self._native.max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        if value is None:
            raise TypeError("max_length must be an int, got NoneType")
        _check_optional_int("max_length", value)
        self._native.max_length = int(value)

    #: 6.x name of :attr:`max_length`.
    max_seq_length = max_length

    @property
    def device(self) -> str:
        """Always ``"cpu"``: crossrank runs on the CPU."""
        return self._device

    @property
    def precision(self) -> _precision.Precision:
        """The precision asked for at load: ``"float32"``, ``"bfloat16"`` or ``"int8"``."""
        return self._native.precision  # type: ignore[return-value]

    @property
    def kernels(self) -> str:
        """The kernels the transformer layers' matrix products run on here, e.g.
        ``"int8 avx2"`` or ``"float32 gemm"`` (``CROSSRANK_ISA`` caps the instruction set)."""
        return self._native.kernels

    @property
    def model_type(self) -> str:
        """The model family, ``config.json``'s ``model_type`` (``"bert"``...)."""
        return self._native.model_type

    @property
    def default_activation_function(self) -> Callable[..., Any] | None:
        """Deprecated name of :attr:`activation_fn`."""
        return self.activation_fn

    def get_backend(self) -> Literal["torch"]:
        """Return the backend used for inference: always "torch" (the model as saved)."""
        return "torch"

    def set_activation_fn(self, activation_fn: Callable[..., Any] | None,
                          set_default: bool = True) -> None:
        """Sets :attr:`activation_fn`; None restores the model's default."""
        del set_default  # sentence-transformers also records it in the config it saves
        if activation_fn is not None and not callable(activation_fn):
            raise TypeError(f"activation_fn must be callable, got {type(activation_fn).__name__}")
        self.activation_fn = activation_fn if activation_fn is not None else (
            _activations.from_saved_name(self._native.default_activation, self.num_labels,
                                         self.trust_remote_code))

    def __repr__(self) -> str:
        parts = [
            f"{self.model_name_or_path!r}",
            f"model_type={self.model_type!r}",
            f"num_layers={self._native.num_layers}",
            f"hidden_size={self._native.hidden_size}",
            f"num_labels={self.num_labels}",
            f"max_length={self.max_length}",
            f"precision={self.precision!r}",
            f"activation_fn={self.activation_fn!r}",
            f"device={self.device!r}",
        ]
        if self._native.effective_precision != self.precision:
            parts.append(f"runs={self._native.effective_precision!r}")
        source = os.fspath(self._native.source)
        if os.path.abspath(source) != os.path.abspath(self.model_name_or_path):
            parts.append(f"path={source!r}")  # a hub model: where its files are
        return f"CrossEncoder({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles as "load it again from where it came from", with the settings changed
        # since (max_length, activation_fn, prompts).
        state = {
            "max_length": self.max_length,
            "activation_fn": self.activation_fn,
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
        }
        return (_reload, (self._load_args, os.path.abspath(self._path)), state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_length = state["max_length"]
        self.activation_fn = state["activation_fn"]
        self.prompts = dict(state["prompts"])
        self.default_prompt_name = state["default_prompt_name"]

    # -- scoring ---------------------------------------------------------------------------

    @overload
    def predict(
        self,
        sentences: PairsInput,
        batch_size: int = ...,
        show_progress_bar: bool | None = ...,
        activation_fn: Callable[..., Any] | None = ...,
        apply_softmax: bool | None = ...,
        convert_to_numpy: Literal[True] = ...,
        convert_to_tensor: Literal[False] = ...,
    ) -> npt.NDArray[np.float32]: ...

    @overload
    def predict(
        self,
        inputs: PairsInput,
        prompt_name: str | None = ...,
        prompt: str | None = ...,
        batch_size: int = ...,
        show_progress_bar: bool | None = ...,
        activation_fn: Callable[..., Any] | None = ...,
        apply_softmax: bool | None = ...,
        convert_to_numpy: Literal[True] = ...,
        convert_to_tensor: Literal[False] = ...,
        device: str | list[str] | None = ...,
        pool: Any = ...,
        chunk_size: int | None = ...,
    ) -> npt.NDArray[np.float32]: ...

    @overload
    def predict(self, inputs: PairsInput, *args: Any, convert_to_tensor: Literal[True],
                **kwargs: Any) -> Any: ...

    @overload
    def predict(self, inputs: PairsInput, *args: Any, convert_to_numpy: Literal[False],
                convert_to_tensor: Literal[False] = ...,
                **kwargs: Any) -> list[Any]: ...

    def predict(  # type: ignore[misc]
        self,
        inputs: Any = _UNSET,
        *args: Any,
        sentences: Any = _UNSET,
        **kwargs: Any,
    ) -> Any:
        """
        Performs predictions with the CrossEncoder on the given sentence pairs.

        Both call styles work: 5.x ``predict(sentences, batch_size, show_progress_bar,
        activation_fn, apply_softmax, convert_to_numpy, convert_to_tensor)`` and 6.x
        ``predict(inputs, prompt_name, prompt, batch_size, show_progress_bar, activation_fn,
        apply_softmax, convert_to_numpy, convert_to_tensor, device, pool, chunk_size)``; a
        second positional argument that is an ``int`` is taken as 5.x's ``batch_size``.

        Args:
            inputs (Union[List[Tuple[str, str]], Tuple[str, str]]): A list of sentence pairs
                [(Sent1, Sent2), (Sent3, Sent4)] or one sentence pair (Sent1, Sent2). Also a
                tuple, a numpy array of strings, or a pandas DataFrame / Series of pairs.
                5.x calls it ``sentences``.
            prompt_name (Optional[str], optional): The name of the prompt to use for encoding.
            prompt (Optional[str], optional): The prompt to use for encoding.
            batch_size (int, optional): Batch size for encoding. Defaults to 32.
            show_progress_bar (bool, optional): Output progress bar. Defaults to None (shown
                when sentence-transformers' logger level is INFO or DEBUG).
            activation_fn (callable, optional): Activation function applied on the logits
                output of the CrossEncoder. If None, the ``model.activation_fn`` will be used,
                which defaults to :class:`torch.nn.Sigmoid` if num_labels=1, else
                :class:`torch.nn.Identity`. Defaults to None.
            apply_softmax (bool, optional): If set to True and `model.num_labels > 1`, applies
                softmax on the logits output such that for each sample, the scores of each
                class sum to 1. Defaults to False.
            convert_to_numpy (bool, optional): Whether the output should be a numpy array. If
                False, output a list of per-pair numpy values. Defaults to True.
            convert_to_tensor (bool, optional): Whether the output should be one large tensor
                (needs PyTorch). Overwrites `convert_to_numpy`. Defaults to False.
            device, pool, chunk_size: Accepted for compatibility; crossrank uses all cores.

        Returns:
            Union[List[np.ndarray], np.ndarray, torch.Tensor]: Predictions for the passed
            sentence pairs, float32, in input order: shape ``(N,)`` for one label,
            ``(N, num_labels)`` otherwise; unbatched for a single pair.
            If ``convert_to_tensor`` is True, the output will be a :class:`torch.Tensor`.
            If ``convert_to_numpy`` is True, the output will be a :class:`numpy.ndarray`.
            Otherwise, the output will be a list of numpy values.

        Examples:
            ::

                from crossrank import CrossEncoder

                model = CrossEncoder("cross-encoder/stsb-roberta-base")
                sentences = [["I love cats", "Cats are amazing"],
                             ["I prefer dogs", "Dogs are loyal"]]
                model.predict(sentences)
                # => array([0.6912767, 0.4303499], dtype=float32)
        """
        if sentences is not _UNSET:
            _warning_once("The `sentences` argument was renamed and is now deprecated. "
                          "Please use `inputs` instead.")
            if inputs is _UNSET:
                inputs = sentences
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
    ) -> list[dict[Literal["corpus_id", "score", "text"], int | float | str]]:
        """
        Performs ranking with the CrossEncoder on the given query and documents. Returns a
        sorted list with the document indices and scores.

        Both call styles work: 5.x ``rank(query, documents, top_k, return_documents,
        batch_size, show_progress_bar, activation_fn, apply_softmax, convert_to_numpy,
        convert_to_tensor)`` and 6.x ``rank(query, documents, top_k, return_documents,
        prompt_name, prompt, batch_size, show_progress_bar, activation_fn, device, pool,
        chunk_size)``. ``apply_softmax``, ``convert_to_numpy`` and ``convert_to_tensor`` are
        accepted and have no effect, as in 6.x.

        Args:
            query (str): A single query.
            documents (List[str]): A list of documents.
            top_k (Optional[int], optional): Return the top-k documents. If None, all documents
                are returned. Defaults to None.
            return_documents (bool, optional): If True, also returns the documents. If False,
                only returns the indices and scores. Defaults to False.
            prompt_name (Optional[str], optional): The name of the prompt to use for encoding.
            prompt (Optional[str], optional): The prompt to use for encoding.
            batch_size (int, optional): Batch size for encoding. Defaults to 32.
            show_progress_bar (bool, optional): Output progress bar. Defaults to None.
            activation_fn ([type], optional): Activation function applied on the logits output
                of the CrossEncoder. If None, nn.Sigmoid() will be used if num_labels=1, else
                nn.Identity. Defaults to None.

        Returns:
            List[Dict[Literal["corpus_id", "score", "text"], Union[int, float, str]]]: A sorted
            list with the "corpus_id", "score" (a Python float), and optionally "text" of the
            documents. Equal scores keep the documents' order.

        Example:
            ::

                from crossrank import CrossEncoder
                model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")

                query = "Who wrote 'To Kill a Mockingbird'?"
                documents = [
                    "'To Kill a Mockingbird' is a novel by Harper Lee published in 1960.",
                    "The novel 'Moby-Dick' was written by Herman Melville.",
                ]

                model.rank(query, documents, return_documents=True)
                # => [{'corpus_id': 0, 'score': 10.67..., 'text': "'To Kill a Mockingbird' ..."},
                #     {'corpus_id': 1, 'score': -3.30..., 'text': "The novel 'Moby-Dick' ..."}]
        """
        _bind_positional("rank", args, kwargs, (_RANK_5X, _RANK_6X),
                         lambda a: 0 if len(a) >= 3 and _is_int(a[2]) else 1)
        top_k = kwargs.pop("top_k", None)
        return_documents = kwargs.pop("return_documents", False)
        for ignored in ("apply_softmax", "convert_to_numpy", "convert_to_tensor"):
            if ignored in kwargs:
                kwargs.pop(ignored)
                _warning_once(f"The CrossEncoder.rank `{ignored}` argument is deprecated and "
                              "has no effect, as `rank` always returns Python floats.")
        options = _PredictOptions.from_kwargs("rank", kwargs)
        if self.num_labels != 1:
            raise ValueError(
                "CrossEncoder.rank() only works for models with num_labels=1. "
                "Consider using CrossEncoder.predict() with input pairs instead."
            )
        if top_k is not None and not _is_int(top_k):
            raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}")
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        validate_batch_size(options.batch_size)
        docs = _as_documents(documents)
        if not docs:
            return []
        options.convert_to_numpy, options.convert_to_tensor = True, False
        options.apply_softmax = False
        scores = self._predict([(query, d) for d in docs], options)
        results: list[dict[Literal["corpus_id", "score", "text"], int | float | str]] = []
        for i, score in enumerate(np.asarray(scores, dtype=np.float32).reshape(-1).tolist()):
            hit: dict[Literal["corpus_id", "score", "text"], int | float | str] = {
                "corpus_id": i, "score": score}
            if return_documents:
                hit["text"] = docs[i]
            results.append(hit)
        # sorted() is stable: equal scores keep the documents' order.
        results = sorted(results, key=lambda r: r["score"], reverse=True)
        return results[:top_k]

    def _predict(self, inputs: Any, options: _PredictOptions) -> Any:
        validate_batch_size(options.batch_size)
        single = is_single_pair(inputs)
        pairs = normalize_pairs(inputs, single=single)
        prompt = self._resolve_prompt(options.prompt, options.prompt_name)
        if prompt:
            pairs = [(prompt + q, d) for q, d in pairs]
        logits = self._logits(pairs, int(options.batch_size), options.show_progress_bar)
        scores: np.ndarray
        if not pairs:
            scores = np.zeros((0,), dtype=np.float32)
        else:
            activation = (options.activation_fn if options.activation_fn is not None
                          else self.activation_fn)
            scores = _activations.apply(activation, logits)
            if options.apply_softmax:
                # After the activation, over the labels; one label gives 1.0 (as 5.x does).
                scores = _activations.softmax(scores)
            if self.num_labels == 1 and scores.ndim == 2 and scores.shape[1] == 1:
                scores = scores[:, 0]
            scores = np.ascontiguousarray(scores, dtype=np.float32)
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
            show_progress_bar = _progress_by_log_level()
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


def _progress_by_log_level() -> bool:
    """sentence-transformers' rule: a bar when its logger's level is INFO or DEBUG."""
    return any(lg.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
               for lg in (logger, _LOGGER_6X))


class _PredictOptions:
    """The keyword arguments of predict / rank, checked once."""

    __slots__ = ("activation_fn", "apply_softmax", "batch_size", "convert_to_numpy",
                 "convert_to_tensor", "prompt", "prompt_name", "show_progress_bar")

    batch_size: Any
    show_progress_bar: bool | None
    activation_fn: Callable[..., Any] | None
    apply_softmax: bool
    convert_to_numpy: bool
    convert_to_tensor: bool
    prompt_name: str | None
    prompt: str | None

    @classmethod
    def from_kwargs(cls, method: str, kwargs: dict[str, Any]) -> _PredictOptions:
        o = cls()
        o.batch_size = kwargs.pop("batch_size", 32)
        o.show_progress_bar = kwargs.pop("show_progress_bar", None)
        o.activation_fn = kwargs.pop("activation_fn", None)
        if "activation_fct" in kwargs:
            old = kwargs.pop("activation_fct")
            _warning_once(f"The CrossEncoder.{method} `activation_fct` argument was renamed and "
                          "is now deprecated, please use `activation_fn` instead.")
            if o.activation_fn is None:
                o.activation_fn = old
        o.apply_softmax = bool(kwargs.pop("apply_softmax", False))
        o.convert_to_numpy = bool(kwargs.pop("convert_to_numpy", True))
        o.convert_to_tensor = bool(kwargs.pop("convert_to_tensor", False))
        o.prompt_name = kwargs.pop("prompt_name", None)
        o.prompt = kwargs.pop("prompt", None)
        _check_device(kwargs.pop("device", None))
        for accepted in ("pool", "chunk_size"):
            kwargs.pop(accepted, None)
        if "num_workers" in kwargs:
            kwargs.pop("num_workers")
            _warning_once(f"The CrossEncoder.{method} `num_workers` argument is deprecated and "
                          "has no effect. It will be removed in a future version.")
        if kwargs:
            name = next(iter(kwargs))
            raise TypeError(f"{method}() got an unexpected keyword argument {name!r}")
        if o.activation_fn is not None and not callable(o.activation_fn):
            raise TypeError("activation_fn must be callable or None, got "
                            f"{type(o.activation_fn).__name__}")
        if o.prompt is not None and not isinstance(o.prompt, str):
            raise TypeError(f"prompt must be a str, got {type(o.prompt).__name__}")
        if o.prompt_name is not None and not isinstance(o.prompt_name, str):
            raise TypeError(f"prompt_name must be a str, got {type(o.prompt_name).__name__}")
        return o


def _alias(old: str, old_value: Any, new: str, new_value: Any, warn: bool = True) -> Any:
    """A deprecated keyword in place of its new name; the new one wins when both are given,
    as in sentence-transformers."""
    if old_value is None:
        return new_value
    if warn:
        logger.warning(f"The CrossEncoder `{old}` argument was renamed and is now deprecated, "
                       f"please use `{new}` instead.")
    return old_value if new_value is None else new_value


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
    raise ValueError(f"Unsupported backend '{backend}'. `backend` should be `torch`, `onnx`, "
                     "or `openvino`.")


def _check_device(device: Any) -> str:
    if device is None:
        return "cpu"
    if isinstance(device, list):
        for d in device:
            _check_device(d)
        return "cpu"
    name = str(device)
    if name != "cpu" and not name.startswith("cpu:"):
        warnings.warn(f"crossrank runs on the CPU; device={name!r} is ignored", stacklevel=4)
    return "cpu"


def _warn_ignored(name: str, value: dict[str, Any] | None) -> None:
    if value:
        logger.warning("%s %s have no effect in crossrank (it runs on the CPU)", name,
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
    if isinstance(documents, (str, bytes)):
        raise TypeError("documents must be a list of strings, not a single "
                        f"{type(documents).__name__}")
    if isinstance(documents, np.ndarray):
        documents = documents.tolist()
    elif hasattr(documents, "to_numpy") and not isinstance(documents, (list, tuple)):
        documents = documents.to_numpy().tolist()  # a pandas Series
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

    return Path(hub.resolve_model(name, **hub_options))


def _reload(load_args: dict[str, Any], path: str) -> CrossEncoder:
    """Unpickling: the same directory when it is still there, else the same model id."""
    args = dict(load_args)
    if Path(path).is_dir() and os.fspath(path) != args["model_name_or_path"]:
        name = args["model_name_or_path"]
        args.update(model_name_or_path=path, revision=None, local_files_only=True)
        model = CrossEncoder(**args)
        model.model_name_or_path = name
        model._load_args = dict(load_args)
        return model
    return CrossEncoder(**args)


__all__ = ["CrossEncoder"]
