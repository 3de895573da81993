"""Which precision a model runs at: the ``precision`` argument, or what sentence-transformers
users already write (``model_kwargs={"torch_dtype": ...}`` / ``{"dtype": ...}``)."""

from __future__ import annotations

import logging
from typing import Any, Literal

logger = logging.getLogger("sentence_transformers.cross_encoder.CrossEncoder")

Precision = Literal["float32", "bfloat16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16", "int8")

# torch dtype names (``str(torch.bfloat16)`` is "torch.bfloat16") to crossrank precisions.
_DTYPES: dict[str, Precision] = {
    "float32": "float32", "float": "float32", "fp32": "float32", "auto": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
_HALF = ("float16", "half", "fp16")


def check_precision(precision: object) -> Precision:
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a str, one of {', '.join(PRECISIONS)}; got "
                        f"{type(precision).__name__}")
    name = precision.lower()
    for p in PRECISIONS:
        if name == p:
            return p
    raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")


def from_dtype(dtype: object, key: str) -> Precision:
    """The precision a torch dtype (or its name) in ``model_kwargs[key]`` stands for."""
    name = str(dtype).lower().removeprefix("torch.")
    if name in _DTYPES:
        return _DTYPES[name]
    if name in _HALF:
        logger.warning(
            "model_kwargs[%r]=%s: crossrank has no float16 kernels; running bfloat16, the "
            "nearest precision it has", key, dtype)
        return "bfloat16"
    raise ValueError(f"model_kwargs[{key!r}]={dtype!r} is not a dtype crossrank runs: use "
                     "float32, bfloat16 or 'auto' (or precision='int8')")


def resolve(precision: object, model_kwargs: dict[str, Any] | None) -> tuple[Precision,
                                                                              dict[str, Any]]:
    """The precision to run at, and the ``model_kwargs`` entries left over.

    An explicit ``precision`` wins over a dtype in ``model_kwargs`` (said in a warning when
    they disagree).
    """
    rest = dict(model_kwargs or {})
    from_kwargs: Precision | None = None
    for key in ("torch_dtype", "dtype"):
        if key in rest:
            from_kwargs = from_dtype(rest.pop(key), key)
    if precision is None:
        return from_kwargs or "float32", rest
    chosen = check_precision(precision)
    if from_kwargs is not None and from_kwargs != chosen:
        logger.warning("precision=%r overrides the dtype in model_kwargs (%s)", chosen,
                       from_kwargs)
    return chosen, rest
