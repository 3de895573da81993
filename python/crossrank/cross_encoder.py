"""``CrossEncoder``: sentence-transformers' API in front of crossrank's Rust engine.

The class reads the model's settings, applies activations, shapes the output and shows
progress. The argument forms of sentence-transformers 5.x and 6.x (positional orders, old
names, checks) are resolved in ``_arguments``; tokenisation and the model run in Rust, with
the GIL released.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, NoReturn, Union, overload

import numpy as np

from . import _activations, _arguments, _chat, _pool, _precision, _processing, _threads, _torch_face
from ._arguments import UNSET, logger
from ._crossrank import NativeCrossEncoder, release_memory
from ._inputs import as_documents, is_single_pair, normalize_pairs, validate_batch_size
from ._pool import MultiProcessPool
from .config import ModelConfig
from .model_card import CrossEncoderModelCardData, check_model_card_data
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    import numpy.typing as npt
    from typing_extensions import Self

#: A value of a ``rank`` hit: the corpus id, the score or the text. (Named here: the class's
#: ``float()`` method hides the builtin inside the class body.)
RankValue = Union[int, float, str]
#: One (query, document) pair.
Pair = Union[tuple[str, str], Sequence[str]]
#: What ``predict`` takes: pairs as a list, tuple, numpy array of strings, pandas DataFrame or
#: Series, ``datasets`` column; or one pair.
PairsInput = Union[Sequence[Pair], "npt.NDArray[Any]", Any]


class CrossEncoder:
    """
    A CrossEncoder takes exactly two sentences / texts as input and either predicts
    a score or label for this sentence pair. It can for example predict the similarity of the
    sentence pair on a scale of 0 ... 1.

    It does not yield a sentence embedding and does not work for individual sentences.

    crossrank's CrossEncoder is a drop-in replacement for ``sentence_transformers.CrossEncoder``
    (5.x and 6.x call styles) that runs the model in Rust, on the CPU, without PyTorch.

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
        activation_fn (Callable, optional): The default activation applied to the logits by
            :meth:`predict`: any callable on a float32 numpy array of shape
            ``(N, num_labels)`` (``np.tanh``, a lambda...); a torch module or function (like
            ``torch.nn.Sigmoid()``) gets a torch tensor. If None, the activation the model's
            sentence-transformers config names, computed in numpy (Sigmoid, Identity, Tanh,
            Softmax, ReLU or GELU); without one Sigmoid for num_labels=1, else Identity.
            Defaults to None.
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
        tokenizer_kwargs (Dict[str, Any], optional): The tokenizer's loading arguments, as
            6.x's ``processor_kwargs`` (its new name; 6.x passes them to
            ``AutoProcessor.from_pretrained``): ``model_max_length`` sets :attr:`max_length`;
            ``chat_template`` replaces the model's chat template (a Jinja template, or named
            templates as a dict, as transformers takes them; :meth:`save` writes it as
            ``chat_template.jinja``). Other entries have no effect, as call-time options
            (``"text"``, ``"common"``, template variables) have none there in 6.x: those go in
            ``processing_kwargs``.
        config_kwargs (Dict[str, Any], optional): Additional model configuration parameters,
            merged into the model's ``config.json`` (e.g. ``num_labels``).
        model_card_data (CrossEncoderModelCardData, optional): What evaluators record on the
            model (:attr:`model_card_data`): crossrank's
            :class:`~crossrank.model_card.CrossEncoderModelCardData`, or
            sentence-transformers' own. Defaults to None (a new crossrank one). It is not
            pickled: an unpickled model starts with a new one.
        backend (str): The backend to use for inference. Only "torch" (the default, meaning
            "the model as saved") is available.
        processing_kwargs (dict[str, dict[str, Any]], optional): crossrank's: the call-time
            tokenizer options of the model, as 6.x keeps them on its Transformer module
            (``model[0].processing_kwargs``, saved in ``sentence_bert_config.json``, which
            crossrank reads), merged over the saved ones key by key; see
            :attr:`processing_kwargs`. Defaults to None.
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
        num_threads (int, optional): crossrank's own: the compute threads this model's calls
            run on. If None (the default), the process's budget: :func:`crossrank.
            set_num_threads`, else ``CROSSRANK_NUM_THREADS``, else ``OMP_NUM_THREADS`` (as
            PyTorch; Ray and Spark set it for their workers), else the CPUs this process may
            use (its affinity mask and cgroup CPU quota, not the machine's cores).
            :attr:`num_threads` reads and changes it.

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
        processing_kwargs: dict[str, dict[str, Any]] | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        precision: _precision.Precision | None = None,
        num_threads: int | None = None,
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
        a = _arguments.load_arguments(
            model_name_or_path=model_name_or_path, num_labels=num_labels,
            max_length=max_length, activation_fn=activation_fn, device=device,
            cache_folder=cache_folder, trust_remote_code=trust_remote_code, revision=revision,
            local_files_only=local_files_only, token=token, model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs, config_kwargs=config_kwargs, backend=backend,
            processor_kwargs=processor_kwargs, precision=precision, modules=modules,
            model_name=model_name, cache_dir=cache_dir, tokenizer_args=tokenizer_args,
            automodel_args=automodel_args, config_args=config_args,
            default_activation_function=default_activation_function,
            classifier_dropout=classifier_dropout,
        )
        _arguments.check_optional_int("num_threads", num_threads)
        _threads.warn_ignored_environment(stacklevel=2)
        self._device = a.device
        self.trust_remote_code = a.trust_remote_code
        self.model_name_or_path = a.model_name_or_path
        self._load_args: dict[str, Any] = {
            "model_name_or_path": a.model_name_or_path, "num_labels": a.num_labels,
            "max_length": a.max_length, "cache_folder": a.cache_folder,
            "revision": a.revision, "local_files_only": a.local_files_only,
            # A secret token does not go into pickles; HF_TOKEN serves a reload.
            "token": None if isinstance(a.token, str) else a.token,
            "config_kwargs": a.config_kwargs, "trust_remote_code": trust_remote_code,
            "precision": a.precision,
            # A template given at load is loaded again with the model.
            "processor_kwargs": (None if a.chat_template is None
                                 else {"chat_template": a.chat_template}),
        }
        path = _resolve_model_path(a.model_name_or_path, cache_folder=a.cache_folder,
                                   revision=a.revision, local_files_only=a.local_files_only,
                                   token=a.token)
        self._path = Path(path)
        try:
            overrides = json.dumps(a.config_kwargs) if a.config_kwargs else None
        except (TypeError, ValueError) as exc:
            raise TypeError(f"config_kwargs must hold JSON values (config.json entries): {exc}"
                            ) from None
        self._native = NativeCrossEncoder(os.fspath(path), num_labels=a.num_labels,
                                          config_overrides=overrides, precision=a.precision,
                                          num_threads=num_threads)
        for message in self._native.warnings:
            warnings.warn(message, stacklevel=2)
        if a.max_length is not None:
            # Above the position table: a warning and the table's length (see max_length).
            self._native.max_length = self._clamp_max_length(int(a.max_length), stacklevel=2)
            self._load_args["max_length"] = self._native.max_length
        self.config = ModelConfig(json.loads(self._native.config_json))
        self.config["num_labels"] = self._native.num_labels
        #: ``processor_kwargs["chat_template"]``, which replaces the saved template.
        self._chat_override = a.chat_template
        self._chat = _chat.ChatFormat.load(self._path, a.chat_template)
        self.tokenizer = Tokenizer(self._native, self._chat)
        if self._chat is None and a.chat_template is not None:
            warnings.warn("processor_kwargs['chat_template'] has no effect: this model reads "
                          "pairs as text, without a chat template", stacklevel=2)
        sbert_config = _read_json(self._path / "sentence_bert_config.json")
        self._processing_kwargs: dict[str, dict[str, Any]] = _processing.merge(
            _processing.check(sbert_config.get("processing_kwargs"),
                              "sentence_bert_config.json processing_kwargs"),
            _processing.check(processing_kwargs, "processing_kwargs"))
        # Unsupported entries fail here rather than at the first call.
        _processing.plan(self._processing_kwargs, None, self._chat is not None)
        st_config = _read_json(self._path / "config_sentence_transformers.json")
        self.prompts: dict[str, str] = dict(st_config.get("prompts") or {})
        self.prompts.update(prompts or {})
        self.default_prompt_name: str | None = (
            default_prompt_name or st_config.get("default_prompt_name"))
        self.activation_fn: Callable[..., Any] | None = (
            a.activation_fn if a.activation_fn is not None else self._saved_activation())
        #: What evaluators record (``set_evaluation_metrics``); see :meth:`evaluate`.
        self.model_card_data: CrossEncoderModelCardData | Any = check_model_card_data(
            model_card_data, a.local_files_only)
        if isinstance(self.model_card_data, CrossEncoderModelCardData):
            self.model_card_data.register_model(self)

    # -- properties users read -------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        """Number of labels of the classifier (outputs per pair)."""
        return self._native.num_labels

    @property
    def max_length(self) -> int:
        """Max length of a tokenized pair, special tokens included; longer pairs are truncated.

        A value above the model's position table (1024 or 2048 for a 512-position model),
        here or as the constructor's ``max_length``, is taken as the table's length, with a
        warning: crossrank truncates at the positions the model has. A call's
        ``processing_kwargs`` / ``max_length`` change it for that call only.
        """
        return int(self._native.max_length)

    @max_length.setter
    def max_length(self, value: int) -> None:
        if value is None:
            raise TypeError("max_length must be an int, got NoneType")
        _arguments.check_optional_int("max_length", value)
        value = self._clamp_max_length(int(value), stacklevel=2)
        self._native.max_length = value

    @property
    def processing_kwargs(self) -> dict[str, dict[str, Any]]:
        """The call-time tokenizer options of this model, as sentence-transformers 6.x keeps
        them on its Transformer module (``model[0].processing_kwargs``): a dict with
        ``"text"``, ``"common"`` and ``"chat_template"`` dicts (``"audio"``, ``"image"``,
        ``"video"`` are accepted and unused). Read from ``sentence_bert_config.json`` and
        the constructor's ``processing_kwargs``, saved by :meth:`save`; a call's
        ``processing_kwargs`` are merged over them, key by key.

        - ``"text"`` / ``"common"``: ``max_length`` (an int: the cut length for the call,
          in tokens, instead of :attr:`max_length`) and ``truncation`` (``False`` or
          ``"do_not_truncate"``: no cut; then an input longer than the model's positions
          is a ValueError). A chat template's ``"chat_template"`` entries for these win
          over ``"text"``, which wins over ``"common"``, as in sentence-transformers;
          padding options have no effect (crossrank packs batches without padding).
        - ``"chat_template"`` (chat-template models): extra Jinja variables of the
          template (``{"instruction": ..., "enable_thinking": False}``...), passed as
          ``apply_chat_template`` passes them, also ``add_generation_prompt``, ``tools``,
          ``documents`` and ``chat_template`` (another template, or the name of one of
          the model's); and ``restore_suffix`` (default True; False: the template's tail
          is not written back over the end of a cut conversation).

        Options crossrank cannot honour are a ValueError naming them.
        """
        return self._processing_kwargs

    @processing_kwargs.setter
    def processing_kwargs(self, value: dict[str, dict[str, Any]] | None) -> None:
        checked = _processing.check(value, "processing_kwargs")
        _processing.plan(checked, None, self._chat is not None)
        self._processing_kwargs = checked

    def _clamp_max_length(self, value: int, stacklevel: int) -> int:
        """``value``, or the model's position limit with a warning when it is larger;
        ``stacklevel`` counts the frames from the caller (1) to the user's line."""
        limit = self._native.max_positions
        if value > limit:
            warnings.warn(
                f"max_length={value} is larger than the {limit} positions this "
                f"{self._native.model_type} model has; inputs are truncated at {limit} tokens",
                stacklevel=stacklevel + 1)
            return limit
        return value

    #: 6.x name of :attr:`max_length`.
    max_seq_length = max_length

    @property
    def num_threads(self) -> int:
        """The compute threads this model's calls run on: its own ``num_threads`` (the
        constructor's argument, or set here), else the process's
        (:func:`crossrank.set_num_threads`, ``CROSSRANK_NUM_THREADS``, ``OMP_NUM_THREADS``,
        the CPUs this process may use). Setting ``None`` follows the process's again."""
        return self._native.threads_in_use

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        _arguments.check_optional_int("num_threads", value)
        self._native.num_threads = value

    @property
    def device(self) -> str:
        """Always ``"cpu"``: crossrank runs on the CPU."""
        return self._device

    @property
    def precision(self) -> _precision.Precision:
        """The precision asked for at load (or by :meth:`half`, :meth:`bfloat16`,
        :meth:`float`, :meth:`to`): ``"float32"``, ``"bfloat16"`` or ``"int8"``."""
        return self._native.precision  # type: ignore[return-value]

    @property
    def dtype(self) -> Any:
        """The torch dtype of the weights, as sentence-transformers' ``model.dtype``:
        ``torch.bfloat16`` for precision bfloat16, ``torch.float32`` for float32 and int8
        (whose embeddings and head stay float32). Its name (``"float32"``, ``"bfloat16"``)
        when torch is not installed."""
        return _torch_face.dtype_of(self.precision)

    @property
    def backend(self) -> Literal["torch"]:
        """``"torch"``, as sentence-transformers' ``model.backend`` reads for a model run as
        saved (its other values, ``"onnx"`` and ``"openvino"``, mean an exported model).
        sentence-transformers code compares it with ``"torch"`` to decide that the saved
        weights are in use; crossrank runs those weights, in Rust, so it gives that value."""
        return "torch"

    @property
    def training(self) -> bool:
        """Always False: crossrank only scores (see :meth:`train`)."""
        return False

    @property
    def model(self) -> _torch_face.ModelFace:
        """A stand-in for sentence-transformers' underlying transformers model: ``config``,
        ``device``, ``dtype``, ``to``, ``eval``... (see :class:`ModelFace`). crossrank has no
        torch module: calling it raises a TypeError."""
        face: _torch_face.ModelFace | None = self.__dict__.get("_model_face")
        if face is None:
            face = self.__dict__["_model_face"] = _torch_face.ModelFace(self)
        return face

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
        """Return the backend used for inference: always "torch" (the model as saved; see
        :attr:`backend`)."""
        return "torch"

    def is_singular_input(self, inputs: Any) -> bool:
        """
        Check if the input represents a single example or a batch of examples.

        As sentence-transformers 6.x: True for one bare pair (a list or tuple whose first item
        is not a list or tuple, or a 1-D numpy string array), for which :meth:`predict`
        returns an unbatched result; False for a batch (and for anything predict takes as a
        batch: an empty list, a 2-D array, a pandas DataFrame...).

        Args:
            inputs: The input to check.
        Returns:
            bool: True if the input is a single example, False if it is a batch.
        """
        return is_single_pair(inputs)

    def release_memory(self) -> None:
        """Gives back to the system the free memory this process keeps between calls: large
        buffers kept for reuse (up to 64 MiB) and free heap pages. Useful in a long-running
        service after a burst of long inputs; the next call maps what it needs again."""
        release_memory()

    # -- the torch-module surface: crossrank has no torch module --------------------------

    def to(self, *args: Any, **kwargs: Any) -> Self:
        """As ``torch.nn.Module.to``: returns the model itself. crossrank runs on the CPU, so a
        device other than the CPU is ignored with the warning ``device=`` gives; a dtype
        changes :attr:`precision` as :meth:`half` / :meth:`bfloat16` / :meth:`float` do."""
        self._to(args, kwargs, stacklevel=2)
        return self

    def _to(self, args: tuple[Any, ...], kwargs: dict[str, Any], stacklevel: int) -> None:
        device, dtype = _torch_face.split_to_arguments(args, kwargs)
        if device is not None:
            _arguments.check_device(device, stacklevel=stacklevel + 1)
        if dtype is not None:
            self._set_precision(_torch_face.precision_of_dtype(dtype, "to()"), stacklevel + 1)

    def cpu(self) -> Self:
        """Returns the model itself: it runs on the CPU."""
        return self

    def cuda(self, device: int | str | None = None) -> Self:
        """Returns the model itself, with a warning: crossrank runs on the CPU."""
        name = "cuda" if device is None else (f"cuda:{device}" if _arguments.is_int(device)
                                              else str(device))
        _arguments.check_device(name, stacklevel=2)
        return self

    def eval(self) -> Self:
        """Returns the model itself: crossrank always scores as in eval mode."""
        return self

    def train(self, mode: bool = True) -> Self:
        """Returns the model itself. crossrank is inference-only, so ``train()`` /
        ``train(True)`` warn that they have no effect; ``train(False)`` is eval mode."""
        if mode:
            _torch_face.warn_train_mode(stacklevel=2)
        return self

    def half(self) -> Self:
        """float16 weights, as ``torch.nn.Module.half``: crossrank has no float16 kernels and
        runs bfloat16, the nearest precision it has, with a warning. Returns the model."""
        self._set_precision(_torch_face.precision_of_dtype("float16", "half()"), stacklevel=2)
        return self

    def bfloat16(self) -> Self:
        """Runs the model at precision bfloat16 (reloaded from its files). Returns the
        model."""
        self._set_precision("bfloat16", stacklevel=2)
        return self

    def float(self) -> Self:
        """Runs the model at precision float32 (reloaded from its files; an int8 or bfloat16
        model too). Returns the model."""
        self._set_precision("float32", stacklevel=2)
        return self

    def _set_precision(self, precision: _precision.Precision, stacklevel: int) -> None:
        """Reloads the native model at another precision, keeping its settings (num_labels,
        max_length, config overrides); the Python-side settings stay as they are. The
        reload's warnings (no bfloat16 kernel here...) name the user's line: ``stacklevel``
        counts the frames from the caller (1) to it."""
        if precision == self.precision:
            return
        _, (path, num_labels, max_length, overrides, _old, threads) = (
            self._native.__reduce__())
        native = NativeCrossEncoder(path, num_labels=num_labels, max_length=max_length,
                                    config_overrides=overrides, precision=precision,
                                    num_threads=threads)
        for message in native.warnings:
            if message not in self._native.warnings:
                warnings.warn(message, stacklevel=stacklevel + 1)
        self._native = native
        if isinstance(self.tokenizer, Tokenizer):  # not one the user put in its place
            self.tokenizer._rebind(native)
        self._load_args["precision"] = precision

    # -- saving ------------------------------------------------------------------------------

    def save(
        self,
        path: str | os.PathLike[str],
        model_name: str | None = None,
        create_model_card: bool = True,
        train_datasets: list[str] | None = None,
        safe_serialization: bool = True,
    ) -> None:
        """
        Saves a model and its configuration files to a directory, so that it can be loaded
        again, by crossrank or by sentence-transformers (5.x and 6.x), with the same scores.

        crossrank does not change the weights: it copies the files the model was loaded from
        (config, weights as they are, tokenizer files, model card) and writes the settings
        changed since: :attr:`max_length` (as the tokenizer config's ``model_max_length``,
        as 6.x does), :attr:`activation_fn` (as the torch class path, in
        ``config_sentence_transformers.json`` for 6.x and in ``config.json``'s
        ``sentence_transformers`` key for 5.x), :attr:`prompts` and
        :attr:`default_prompt_name`, and ``config_kwargs`` given at load. An activation
        without a torch class path (a lambda) cannot be saved: the model's own is kept, with
        a warning. The precision is a loading choice and is not saved.

        Args:
            path (str): Path on disk where the model will be saved.
            model_name, train_datasets, safe_serialization: Accepted for compatibility; the
                weights are copied in the format they have.
            create_model_card (bool, optional): If False, the model's README.md is not
                copied. Defaults to True.
        """
        del model_name, train_datasets, safe_serialization
        if path is None:
            return  # type: ignore[unreachable]  # sentence-transformers' no-op
        from . import _save

        _save.save(self, path, create_model_card=create_model_card)

    def save_pretrained(
        self,
        path: str | os.PathLike[str],
        model_name: str | None = None,
        create_model_card: bool = True,
        train_datasets: list[str] | None = None,
        safe_serialization: bool = True,
    ) -> None:
        """Saves the model to a directory: the same as :meth:`save`."""
        self.save(path, model_name=model_name, create_model_card=create_model_card,
                  train_datasets=train_datasets, safe_serialization=safe_serialization)

    # -- evaluation and pools ----------------------------------------------------------------

    def evaluate(self, evaluator: Callable[..., Any],
                 output_path: str | os.PathLike[str] | None = None) -> Any:
        """
        Evaluate the model based on an evaluator, as sentence-transformers 6.x does: any
        sentence-transformers evaluator (``CrossEncoderRerankingEvaluator``,
        ``CrossEncoderCorrelationEvaluator``, ``CrossEncoderClassificationEvaluator``,
        ``CrossEncoderNanoBEIREvaluator``, the old ``CE*`` names) or a callable
        ``evaluator(model, output_path)``. Evaluators score through :meth:`predict` and record
        their metrics in :attr:`model_card_data`.

        Args:
            evaluator: The evaluator used to evaluate the model.
            output_path (str, optional): The path where the evaluator can write the results
                (created if missing). Defaults to None.

        Returns:
            What the evaluator returns: its metrics (a dict), or a score.
        """
        if not callable(evaluator):
            raise TypeError("evaluator must be callable as evaluator(model, output_path), got "
                            f"{type(evaluator).__name__}")
        if output_path is not None:
            if not isinstance(output_path, (str, os.PathLike)):
                raise TypeError("output_path must be a str, os.PathLike or None, got "
                                f"{type(output_path).__name__}")
            os.makedirs(output_path, exist_ok=True)
        return evaluator(self, output_path)

    def start_multi_process_pool(self, target_devices: list[str] | None = None
                                 ) -> MultiProcessPool:
        """
        Starts a pool to pass to :meth:`predict` / :meth:`rank` (``pool=pool``), as
        sentence-transformers 6.x does, without starting processes.

        crossrank's engine already scores on every CPU core, in this process, with the GIL
        released; worker processes would each load the model and split the same cores. So
        this pool starts nothing: a call with it scores its chunks (``chunk_size`` pairs
        each) one after the other through this model's engine, with the scores, order and
        speed of a plain call (see :class:`~crossrank._pool.MultiProcessPool`). Stop it with
        :meth:`stop_multi_process_pool`.

        Args:
            target_devices (List[str], optional): Devices, as in sentence-transformers
                (``["cpu", "cpu"]``, ``["cuda:0", "cuda:1"]``...). crossrank runs on the CPU:
                another device is ignored with the warning ``device=`` gives. Defaults to
                None (``["cpu"]``).

        Returns:
            MultiProcessPool: a dict with sentence-transformers' keys (``"input"``,
            ``"output"``: None; ``"processes"``: empty), for this model.
        """
        return _pool.start(self, target_devices, stacklevel=2)

    @staticmethod
    def stop_multi_process_pool(pool: MultiProcessPool) -> None:
        """
        Stops a pool from :meth:`start_multi_process_pool`: it can no longer be used (a call
        with it raises a ValueError). Stopping a stopped pool does nothing.

        Args:
            pool (MultiProcessPool): The pool to stop.
        """
        _pool.stop(pool)

    # -- training: sentence-transformers' job ----------------------------------------------

    def fit(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available: crossrank is inference-only. Raises NotImplementedError saying how
        to train (sentence-transformers' ``CrossEncoderTrainer``); the directory
        sentence-transformers saves loads into crossrank unchanged."""
        del args, kwargs
        _torch_face.not_trainable("fit")

    def old_fit(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available: crossrank is inference-only (see :meth:`fit`)."""
        del args, kwargs
        _torch_face.not_trainable("old_fit")

    def smart_batching_collate(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available: a training collate function; crossrank is inference-only (see
        :meth:`fit`)."""
        del args, kwargs
        _torch_face.not_trainable("smart_batching_collate")

    def smart_batching_collate_text_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available: a training collate function; crossrank is inference-only (see
        :meth:`fit`)."""
        del args, kwargs
        _torch_face.not_trainable("smart_batching_collate_text_only")

    def set_activation_fn(self, activation_fn: Callable[..., Any] | None,
                          set_default: bool = True) -> None:
        """Sets :attr:`activation_fn`; None restores the model's default."""
        del set_default  # sentence-transformers also records it in the config it saves
        _arguments.check_activation_fn(activation_fn)
        self.activation_fn = (activation_fn if activation_fn is not None
                              else self._saved_activation())

    def _saved_activation(self) -> Callable[..., Any]:
        """The activation the model's saved config names; Sigmoid or Identity without one."""
        return _activations.from_saved_name(self._native.default_activation, self.num_labels,
                                            self.trust_remote_code)

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
            "num_threads": self._native.num_threads,
            "processing_kwargs": self._processing_kwargs,
        }
        return (_reload, (self._load_args, os.path.abspath(self._path)), state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_length = state["max_length"]
        self.activation_fn = state["activation_fn"]
        self.prompts = dict(state["prompts"])
        self.default_prompt_name = state["default_prompt_name"]
        self._native.num_threads = state.get("num_threads")
        if "processing_kwargs" in state:
            self.processing_kwargs = state["processing_kwargs"]

    # -- scoring ---------------------------------------------------------------------------

    @overload
    def predict(  # 5.x order: predict(pairs, 16, ...)
        self,
        inputs: PairsInput,
        batch_size: int = ...,
        show_progress_bar: bool | None = ...,
        activation_fn: Callable[..., Any] | None = ...,
        apply_softmax: bool | None = ...,
        convert_to_numpy: Literal[True] = ...,
        convert_to_tensor: Literal[False] = ...,
    ) -> npt.NDArray[np.float32]: ...

    @overload
    def predict(  # 5.x name: predict(sentences=pairs, ...)
        self,
        *,
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
        pool: MultiProcessPool | None = ...,
        chunk_size: int | None = ...,
    ) -> npt.NDArray[np.float32]: ...

    @overload
    def predict(self, inputs: PairsInput, *args: Any, convert_to_tensor: Literal[True],
                **kwargs: Any) -> Any: ...

    @overload
    def predict(self, inputs: PairsInput, *args: Any, convert_to_numpy: Literal[False],
                convert_to_tensor: Literal[False] = ...,
                **kwargs: Any) -> list[Any]: ...

    def predict(
        self,
        inputs: Any = UNSET,
        *args: Any,
        sentences: Any = UNSET,
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
            activation_fn (callable, optional): Activation applied to the logits, a float32
                numpy array ``(N, num_labels)``, for this call only (a torch module or function
                gets a torch tensor). If None, :attr:`activation_fn` is used: the model's saved
                one, else Sigmoid for num_labels=1 and Identity otherwise. Use
                ``lambda x: x`` for the raw logits. Defaults to None.
            apply_softmax (bool, optional): If set to True and `model.num_labels > 1`, applies
                softmax on the logits output such that for each sample, the scores of each
                class sum to 1. The softmax runs after the activation. With one label the
                scores are returned unchanged, as in sentence-transformers 6.x (5.x returned
                1.0 for every pair). Defaults to False.
            convert_to_numpy (bool, optional): Whether the output should be a numpy array. If
                False, output a list of per-pair numpy values. Defaults to True.
            convert_to_tensor (bool, optional): Whether the output should be one large tensor
                (needs PyTorch). Overwrites `convert_to_numpy`. Defaults to False.
            device (Union[str, List[str]], optional): crossrank runs on the CPU: another
                device is ignored with a warning. A list of devices scores in chunks, as with
                a ``pool``. Defaults to None.
            pool (MultiProcessPool, optional): A pool from :meth:`start_multi_process_pool`:
                the pairs are scored in chunks of ``chunk_size``, in order, through this
                model's engine (no worker processes: the engine already uses every core),
                with a "Chunks" progress bar. The scores are those of a plain call.
                Defaults to None.
            chunk_size (int, optional): Pairs per chunk with a ``pool`` or a device list. If
                None, sentence-transformers' default (a tenth of the pairs, at most 5000),
                rounded up to whole batches. Each chunk is batched on its own: a
                ``chunk_size`` that is not a multiple of ``batch_size`` adds a partial batch
                per chunk, and one below ``batch_size`` makes every batch that small (a
                slower call). Defaults to None.
            processing_kwargs (dict, optional): 6.x's per-call tokenizer options (a keyword
                6.x forwards to ``preprocess``), merged over :attr:`processing_kwargs` key
                by key: ``{"text": {"max_length": 256}}``, ``{"text": {"truncation":
                False}}``, chat-template variables ``{"chat_template": {"instruction":
                ...}}``, ``{"chat_template": {"restore_suffix": False}}``... (see
                :attr:`processing_kwargs`). Defaults to None.
            max_length (int, optional): 6.x's per-call length (a keyword it forwards to
                ``preprocess``): cut at this many tokens for this call; ``processing_kwargs``
                entries win over it. Defaults to None (:attr:`max_length`).

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
        inputs, options = _arguments.predict_arguments(inputs, sentences, args, kwargs)
        return self._predict(inputs, options)

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        *args: Any,
        **kwargs: Any,
    ) -> list[dict[Literal["corpus_id", "score", "text"], RankValue]]:
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
            activation_fn (callable, optional): Activation applied to the logits for this
                call, as in :meth:`predict`. If None, :attr:`activation_fn` is used. Defaults to
                None.
            device, pool, chunk_size: As in :meth:`predict` (6.x).
            processing_kwargs, max_length: As in :meth:`predict` (crossrank's: 6.x's
                ``rank`` does not take them).

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
        top_k, return_documents, options = _arguments.rank_arguments(args, kwargs)
        docs = self._rank_documents(query, documents, top_k, options)
        return self._rank(query, docs, top_k, return_documents, options, None)

    async def apredict(self, inputs: Any = UNSET, *args: Any, sentences: Any = UNSET,
                       **kwargs: Any) -> Any:
        """
        :meth:`predict`, awaitable: ``scores = await model.apredict(pairs, ...)`` takes the
        same arguments and returns the same result.

        The scoring runs in a worker thread of the event loop's default executor, off the
        event loop, which keeps serving other tasks; the native model releases the GIL, so
        concurrent requests run at the same time. Arguments are checked before the thread
        starts. Cancelling the awaiting task raises ``CancelledError`` there at once; the
        worker stops after the batch it is running, and the model is unaffected (the next
        call scores as always).
        """
        inputs, options = _arguments.predict_arguments(inputs, sentences, args, kwargs)
        self._plan(options)  # its options are checked here too, before the thread
        return await _in_thread(lambda cancel: self._predict(inputs, options, cancel))

    async def arank(
        self,
        query: str,
        documents: Sequence[str],
        *args: Any,
        **kwargs: Any,
    ) -> list[dict[Literal["corpus_id", "score", "text"], RankValue]]:
        """
        :meth:`rank`, awaitable: ``hits = await model.arank(query, documents, ...)`` takes the
        same arguments and returns the same result, scored in a worker thread as
        :meth:`apredict` is (concurrent requests overlap; cancelling is safe).
        """
        top_k, return_documents, options = _arguments.rank_arguments(args, kwargs)
        docs = self._rank_documents(query, documents, top_k, options)
        self._plan(options)
        result: list[dict[Literal["corpus_id", "score", "text"], RankValue]] = (
            await _in_thread(lambda cancel: self._rank(query, docs, top_k, return_documents,
                                                       options, cancel)))
        return result

    def _rank_documents(self, query: str, documents: Sequence[str], top_k: Any,
                        options: _arguments.PredictOptions) -> list[str]:
        """``rank``'s checks; the documents as a list."""
        if self.num_labels != 1:
            raise ValueError(
                "CrossEncoder.rank() only works for models with num_labels=1. "
                "Consider using CrossEncoder.predict() with input pairs instead."
            )
        _arguments.check_top_k(top_k)
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        validate_batch_size(options.batch_size)
        return as_documents(documents)

    def _rank(self, query: str, docs: list[str], top_k: int | None, return_documents: bool,
              options: _arguments.PredictOptions, cancel: threading.Event | None
              ) -> list[dict[Literal["corpus_id", "score", "text"], RankValue]]:
        if not docs:
            return []
        scores = self._predict([(query, d) for d in docs], options, cancel)
        results: list[dict[Literal["corpus_id", "score", "text"], RankValue]] = []
        for i, score in enumerate(np.asarray(scores, dtype=np.float32).reshape(-1).tolist()):
            hit: dict[Literal["corpus_id", "score", "text"], RankValue] = {
                "corpus_id": i, "score": score}
            if return_documents:
                hit["text"] = docs[i]
            results.append(hit)
        # sorted() is stable: equal scores keep the documents' order.
        results = sorted(results, key=lambda r: r["score"], reverse=True)
        return results[:top_k]

    def _predict(self, inputs: Any, options: _arguments.PredictOptions,
                 cancel: threading.Event | None = None) -> Any:
        validate_batch_size(options.batch_size)
        single = is_single_pair(inputs)
        pairs = normalize_pairs(inputs, single=single)
        prompt = self._resolve_prompt(options.prompt, options.prompt_name)
        plan = self._plan(options)
        logits = self._score(pairs, prompt, plan, options, cancel)
        scores: np.ndarray
        if not pairs:
            scores = np.zeros((0,), dtype=np.float32)
        else:
            activation = (options.activation_fn if options.activation_fn is not None
                          else self.activation_fn)
            scores = _activations.apply(activation, logits)
            # As 6.x: one label's (N, 1) is squeezed to (N,) first, and softmax runs over the
            # labels only where there are several columns, so with one label apply_softmax
            # leaves the scores as they are (5.x turned every score into 1.0).
            if self.num_labels == 1 and scores.ndim == 2 and scores.shape[1] == 1:
                scores = scores[:, 0]
            if options.apply_softmax and scores.ndim > 1:
                scores = _activations.softmax(scores)
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

    def _plan(self, options: _arguments.PredictOptions) -> _processing.Plan:
        """How this call tokenizes: the model's processing_kwargs with the call's merged
        over them, and the call's max_length."""
        per_call = _processing.check(options.processing_kwargs, "per-call processing_kwargs")
        return _processing.plan(_processing.merge(self._processing_kwargs, per_call),
                                options.max_length, self._chat is not None)

    def _score(self, pairs: list[tuple[str, str]], prompt: str | None,
               plan: _processing.Plan, options: _arguments.PredictOptions,
               cancel: threading.Event | None) -> np.ndarray:
        """Raw logits: in one native call, or chunk by chunk with a pool (or a device list),
        as 6.x splits the work, through this model's engine (see ``_pool``)."""
        batch_size = int(options.batch_size)
        if not options.chunked or not pairs:
            return self._logits(self._native_job(pairs, prompt, plan), len(pairs), batch_size,
                                options.show_progress_bar, cancel)
        if options.pool is not None:
            _pool.check_owner(options.pool, self)
        chunk = (int(options.chunk_size) if options.chunk_size is not None
                 else _pool.default_chunk_size(len(pairs), batch_size))
        starts = _pool.chunk_starts(len(pairs), chunk)
        show = options.show_progress_bar
        if show is None:
            show = _progress_by_log_level()
        parts = []
        with _chunk_bar(len(starts), show) as bar:
            for start in starts:
                part = pairs[start:start + chunk]
                parts.append(self._logits(self._native_job(part, prompt, plan), len(part),
                                          batch_size, False, cancel))
                bar.update(1)
        return np.concatenate(parts)

    def _native_job(self, pairs: list[tuple[str, str]], prompt: str | None,
                    plan: _processing.Plan = _processing.DEFAULT
                    ) -> Callable[..., np.ndarray]:
        """The native call that scores ``pairs``: ``job(batch_size, progress=None)``. A
        model with a chat template gets the rendered conversations (the prompt as a system
        message) and the template's suffix to restore after truncation; others get the
        pairs, the prompt before each query. ``plan``: the call's processing options."""
        if self._chat is not None:
            texts, suffix, length = self._chat_inputs(pairs, prompt, plan)

            def rendered(batch_size: int, progress: Any = None) -> np.ndarray:
                return self._native.predict_rendered(texts, suffix, batch_size, progress,
                                                     max_length=length)

            return rendered
        if prompt:
            pairs = [(prompt + q, d) for q, d in pairs]
        length = self._pair_length(pairs, plan)

        def scored(batch_size: int, progress: Any = None) -> np.ndarray:
            return self._native.predict_logits(pairs, batch_size, progress, max_length=length)

        return scored

    def _encode(self, pairs: list[tuple[str, str]], prompt: str | None = None,
                plan: _processing.Plan = _processing.DEFAULT) -> list[list[int]]:
        """The token ids the model reads for each pair (chat template and truncation
        included), as sentence-transformers' ``preprocess`` builds them, without padding."""
        if self._chat is not None:
            texts, suffix, length = self._chat_inputs(pairs, prompt, plan)
            return self._native.tokenize_rendered(texts, suffix, max_length=length)
        if prompt:
            pairs = [(prompt + q, d) for q, d in pairs]
        length = self._pair_length(pairs, plan)
        return [ids for ids, _types in self._native.tokenize(pairs, max_length=length)]

    def _chat_inputs(self, pairs: list[tuple[str, str]], prompt: str | None,
                     plan: _processing.Plan) -> tuple[list[str], list[int], int | None]:
        """The rendered texts, the suffix to restore where they are cut (empty: none) and
        the length to cut them at (None: :attr:`max_length`), for ``plan``."""
        assert self._chat is not None
        if pairs:
            self._chat.check_pair_roles(plan, os.fspath(self.model_name_or_path))
        texts = self._chat.render(pairs, prompt, plan)
        suffix = self._chat.suffix(self._native, prompt, plan) if plan.restore and pairs else []
        if plan.default_length:
            return texts, suffix, None
        limit = self._native.max_positions
        if plan.truncate and plan.max_length is not None and plan.max_length <= limit:
            return texts, suffix, plan.max_length
        # No cut, or one beyond the positions: every text must fit the positions whole (or
        # cut at max_length); none is then cut, so there is no suffix to restore.
        lengths = [len(ids) for ids in self._native.tokenize_rendered(texts)] if texts else []
        return texts, [], self._fitting_length(lengths, plan)

    def _pair_length(self, pairs: list[tuple[str, str]], plan: _processing.Plan
                     ) -> int | None:
        """The length to cut text pairs at for ``plan`` (None: :attr:`max_length`)."""
        if plan.default_length:
            return None
        limit = self._native.max_positions
        if plan.truncate and plan.max_length is not None and plan.max_length <= limit:
            return plan.max_length
        face = Tokenizer(self._native)
        firsts = face._sequences([q for q, _ in pairs], "A") if pairs else []
        seconds = face._sequences([d for _, d in pairs], "B") if pairs else []
        specials = face._d.pair_specials
        lengths = [len(a) + len(b) + specials for a, b in zip(firsts, seconds)]
        return self._fitting_length(lengths, plan)

    def _fitting_length(self, lengths: list[int], plan: _processing.Plan) -> int | None:
        """A native length that cuts none of ``lengths`` (their cut at ``plan.max_length``
        where it truncates); a ValueError when one is longer than the model's positions."""
        limit = self._native.max_positions
        if plan.truncate and plan.max_length is not None:
            lengths = [min(n, plan.max_length) for n in lengths]
        too_long = [(i, n) for i, n in enumerate(lengths) if n > limit]
        if too_long:
            shown = ", ".join(f"input {i}: {n} tokens" for i, n in too_long[:5])
            more = f" and {len(too_long) - 5} more" if len(too_long) > 5 else ""
            how = ("with truncation disabled" if not plan.truncate
                   else f"cut at max_length={plan.max_length}")
            raise ValueError(
                f"{len(too_long)} input(s) are longer than the {limit} positions this "
                f"{self._native.model_type} model has, {how} ({shown}{more}); truncate them "
                f"(a max_length of at most {limit}) or shorten the inputs")
        need = max(lengths, default=0)
        return None if need <= self._native.max_length else limit

    def _logits(self, job: Callable[..., np.ndarray], count: int, batch_size: int,
                show_progress_bar: bool | None,
                cancel: threading.Event | None = None) -> np.ndarray:
        """Raw logits of ``count`` inputs from the native ``job``. ``cancel`` (set by a
        cancelled ``apredict``) stops the native call after the batch in flight."""
        if show_progress_bar is None:
            show_progress_bar = _progress_by_log_level()
        if not count:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        if cancel is not None and cancel.is_set():
            raise _Cancelled
        if not show_progress_bar:
            if cancel is None:
                return job(batch_size)
            return job(batch_size, lambda _done, _total: _check(cancel))
        from tqdm.auto import tqdm

        total = -(-count // batch_size)
        with tqdm(total=total, desc="Batches") as bar:
            def progress(done: int, _total: int) -> None:
                _check(cancel)
                bar.update(done - bar.n)

            return job(batch_size, progress)

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


class _NoBar:
    """A progress bar that shows nothing."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        del n


def _chunk_bar(total: int, show: bool) -> Any:
    """6.x's progress bar over a pool's chunks (or none)."""
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Chunks")


class _Cancelled(Exception):
    """Stops the native call of a cancelled ``apredict`` / ``arank`` (nobody awaits it)."""


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise _Cancelled


async def _in_thread(call: Callable[[threading.Event], Any]) -> Any:
    """Runs ``call(cancel)`` in a worker thread (the default executor) and awaits it; if the
    awaiting task is cancelled, ``cancel`` is set so the work stops after its current batch."""
    import asyncio

    cancel = threading.Event()
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, call, cancel)
    try:
        return await future
    except asyncio.CancelledError:
        cancel.set()
        raise


def _progress_by_log_level() -> bool:
    """sentence-transformers' rule: a bar when its logger's level is INFO or DEBUG."""
    return any(lg.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
               for lg in (logger, _arguments.LOGGER_6X))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


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
