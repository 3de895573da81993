"""What code written for a torch ``nn.Module`` reads from a CrossEncoder, without torch.

sentence-transformers' CrossEncoder is a torch module: users call ``.to(device)``, ``.eval()``,
``.half()`` on it and read ``.model``, ``.dtype``. crossrank has no torch module; this module
maps those calls onto what crossrank has (the CPU, and its precisions) and gives ``.model`` a
small stand-in (:class:`ModelFace`) with what code reads from a transformers model.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, NoReturn

from . import _precision

if TYPE_CHECKING:
    from .config import ModelConfig
    from .cross_encoder import CrossEncoder

TRAINING_MESSAGE = (
    "crossrank is inference-only: it runs saved models and cannot train them. Train with "
    "sentence-transformers (its CrossEncoderTrainer, or CrossEncoder.fit in 5.x), save the "
    "model with model.save_pretrained(path), and load that directory with "
    "crossrank.CrossEncoder(path): it loads unchanged."
)


def not_trainable(method: str) -> NoReturn:
    raise NotImplementedError(f"CrossEncoder.{method}(): {TRAINING_MESSAGE}")


def warn_train_mode(stacklevel: int) -> None:
    warnings.warn("crossrank is inference-only: train() has no effect (there are no dropout "
                  "layers or gradients to switch on); the model keeps scoring as in eval()",
                  stacklevel=stacklevel + 1)


def dtype_of(precision: str) -> Any:
    """The torch dtype the precision's weights are closest to (``torch.float32`` for float32
    and int8, whose embeddings and head stay float32; ``torch.bfloat16`` for bfloat16); its
    name ("float32", "bfloat16") when torch is not installed."""
    name = "bfloat16" if precision == "bfloat16" else "float32"
    try:
        import torch
    except ImportError:
        return name
    return getattr(torch, name)


def precision_of_dtype(dtype: Any, what: str) -> _precision.Precision:
    """The precision a torch dtype (or its name) asks for in ``what`` (``"half()"``,
    ``"to()"``); float16 gives bfloat16 with the warning ``model_kwargs={"torch_dtype":
    torch.float16}`` gives."""
    name = str(dtype).lower().removeprefix("torch.")
    if name in ("float16", "half", "fp16"):
        _precision.logger.warning(
            "%s: crossrank has no float16 kernels; running bfloat16, the nearest precision it "
            "has", what)
        return "bfloat16"
    if name in ("float32", "float", "fp32"):
        return "float32"
    if name in ("bfloat16", "bf16"):
        return "bfloat16"
    raise ValueError(f"{what}: {dtype} is not a dtype crossrank runs; use float32, bfloat16 "
                     "(float16 runs bfloat16), or CrossEncoder(..., precision='int8')")


def is_dtype(value: Any) -> bool:
    """A torch dtype (or its name, "float16", "torch.bfloat16"...), as opposed to a device."""
    if type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        return True
    if isinstance(value, str):
        name = value.lower().removeprefix("torch.")
        return name in ("float32", "float", "fp32", "bfloat16", "bf16", "float16", "half",
                        "fp16", "float64", "double", "int8", "uint8")
    return False


def split_to_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]
                       ) -> tuple[Any, Any]:
    """``.to()``'s device and dtype, from its torch call forms: ``to(device)``,
    ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)``, ``to(device=..., dtype=...)``;
    ``non_blocking`` and ``copy`` are accepted."""
    kwargs = dict(kwargs)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    kwargs.pop("copy", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got an unexpected keyword argument {next(iter(kwargs))!r}")
    positional = list(args)
    if len(positional) > 3:
        raise TypeError(f"to() takes at most 3 positional arguments ({len(positional)} given)")
    for value in positional:
        if isinstance(value, bool):  # non_blocking passed by position
            continue
        if hasattr(value, "device") and hasattr(value, "dtype") and not is_dtype(value):
            device, dtype = value.device, value.dtype  # a tensor
        elif is_dtype(value):
            dtype = value
        else:
            device = value
    return device, dtype


class ModelFace:
    """``model.model``: what code reads from sentence-transformers' underlying transformers
    model, in front of crossrank's Rust model.

    It has the model's ``config`` (:attr:`CrossEncoder.config`), ``device``, ``dtype``,
    ``training`` and ``name_or_path``; ``to``, ``eval``, ``train``, ``cpu``, ``half``,
    ``bfloat16`` and ``float`` act on the CrossEncoder and return this object. There is no
    torch module to run: calling it, or reading its parameters, raises a TypeError.
    """

    def __init__(self, owner: CrossEncoder) -> None:
        self._owner = owner

    @property
    def config(self) -> ModelConfig:
        return self._owner.config

    @property
    def device(self) -> Any:
        return self._owner.device

    @property
    def dtype(self) -> Any:
        return self._owner.dtype

    @property
    def training(self) -> bool:
        return False

    @property
    def name_or_path(self) -> str:
        return self._owner.model_name_or_path

    def to(self, *args: Any, **kwargs: Any) -> ModelFace:
        self._owner._to(args, kwargs, stacklevel=2)
        return self

    def eval(self) -> ModelFace:
        return self

    def train(self, mode: bool = True) -> ModelFace:
        if mode:
            warn_train_mode(stacklevel=2)
        return self

    def cpu(self) -> ModelFace:
        return self

    def half(self) -> ModelFace:
        self._owner._set_precision(precision_of_dtype("float16", "half()"), stacklevel=2)
        return self

    def bfloat16(self) -> ModelFace:
        self._owner._set_precision("bfloat16", stacklevel=2)
        return self

    def float(self) -> ModelFace:
        self._owner._set_precision("float32", stacklevel=2)
        return self

    def parameters(self, recurse: bool = True) -> NoReturn:
        del recurse
        raise TypeError(_NO_MODULE)

    def forward(self, *args: Any, **kwargs: Any) -> NoReturn:
        del args, kwargs
        raise TypeError(_NO_MODULE)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        del args, kwargs
        raise TypeError(_NO_MODULE)

    def __repr__(self) -> str:
        return (f"ModelFace({self._owner.model_type}, device={self.device!r}, "
                f"precision={self._owner.precision!r})")


_NO_MODULE = ("crossrank has no torch module: model.model is a stand-in with config, device "
              "and dtype; score pairs with CrossEncoder.predict() or rank(), or load the "
              "model with transformers to run it as a torch module")
