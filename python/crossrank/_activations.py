"""Activation functions applied to logits, in float32, as sentence-transformers does.

sentence-transformers saves a model's activation as the class path of a torch module
(``torch.nn.modules.activation.Sigmoid``) and instantiates that class with no arguments when
it loads the model. The classes such models name (Sigmoid, Identity, Tanh, Softmax, ReLU,
GELU; the same list as the Rust side's ``src/config.rs``) map to NumPy functions here, so no
torch is needed; another ``torch.`` path is imported from torch if it is installed. A
user-given ``activation_fn`` may be a torch module or any callable on an array; both are
supported.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
from typing import Any, Callable

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so that exp never overflows.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _gelu(x: np.ndarray) -> np.ndarray:
    """torch.nn.GELU() (its default, ``approximate="none"``): ``x * Phi(x)``, computed in
    float64 and written ``0.5 * x * erfc(-x / sqrt(2))``, which equals
    ``0.5 * x * (1 + erf(x / sqrt(2)))`` without the cancellation for negative x."""
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):  # -inf gives NaN (inf * 0), as in torch
        return np.asarray(0.5 * x64 * _erfc(-x64 * math.sqrt(0.5)))


def _softmax(x: np.ndarray) -> np.ndarray:
    if x.ndim == 1:
        x = x[:, None]
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


class NamedActivation:
    """A NumPy activation with the torch class path sentence-transformers knows it by."""

    def __init__(self, name: str, torch_path: str, fn: Callable[[np.ndarray], np.ndarray]):
        self.name = name
        self.torch_path = torch_path
        self._fn = fn

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._fn(np.asarray(x, dtype=np.float32)).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"{self.torch_path.rsplit('.', 1)[-1]}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NamedActivation) and other.torch_path == self.torch_path

    def __hash__(self) -> int:
        return hash(self.torch_path)

    def __reduce__(self) -> tuple[Any, ...]:
        # The NumPy functions include lambdas: pickle by name instead.
        return (from_saved_name, (self.name,))


ACTIVATIONS: dict[str, NamedActivation] = {
    a.name: a
    for a in (
        NamedActivation("sigmoid", "torch.nn.modules.activation.Sigmoid", _sigmoid),
        NamedActivation("identity", "torch.nn.modules.linear.Identity", lambda x: x),
        NamedActivation("tanh", "torch.nn.modules.activation.Tanh", np.tanh),
        NamedActivation("softmax", "torch.nn.modules.activation.Softmax", _softmax),
        NamedActivation("relu", "torch.nn.modules.activation.ReLU", lambda x: np.maximum(x, 0)),
        NamedActivation("gelu", "torch.nn.modules.activation.GELU", _gelu),
    )
}
_BY_TORCH_PATH = {a.torch_path: a for a in ACTIVATIONS.values()}


def from_saved_name(
    name: str, num_labels: int = 1, trust_remote_code: bool = True
) -> Callable[..., Any]:
    """The activation for a short name from the native layer, or a saved class path.

    As sentence-transformers does, a saved path outside ``torch.`` is only imported with
    ``trust_remote_code=True``; otherwise a warning is logged and the default activation
    (Sigmoid for one label, Identity otherwise) is used.
    """
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    if name in _BY_TORCH_PATH:
        return _BY_TORCH_PATH[name]
    if not name.startswith("torch.") and not trust_remote_code:
        logging.getLogger("sentence_transformers.cross_encoder.CrossEncoder").warning(
            "Activation function path '%s' is not trusted, using default activation function "
            "instead. Please load the CrossEncoder with `trust_remote_code=True` to allow loading "
            "custom activation functions via the configuration.", name)
        return ACTIVATIONS["sigmoid" if num_labels == 1 else "identity"]
    # An activation class we have no NumPy twin for: import it as sentence-transformers does.
    module_name, _, class_name = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)()  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - report what was saved and why it failed
        raise ValueError(
            f"the model's saved activation function {name!r} is not one crossrank knows "
            f"(known: {sorted(_BY_TORCH_PATH)}) and could not be imported: {exc}. Pass "
            "activation_fn= to choose one."
        ) from exc


def apply(fn: Callable[..., Any] | None, logits: np.ndarray) -> np.ndarray:
    """Applies an activation to float32 logits ``(N, num_labels)``.

    A NumPy twin runs directly. A torch module or torch function gets a torch tensor, as in
    sentence-transformers. Any other callable gets the NumPy array; should it fail on one
    while torch is loaded, it is tried once more with a tensor.
    """
    if fn is None:
        return logits
    if isinstance(fn, NamedActivation):
        return fn(logits)
    if _is_torch_callable(fn):
        return _apply_torch(fn, logits)
    try:
        out = fn(logits)
    except Exception:
        if "torch" not in sys.modules:
            raise
        try:
            return _apply_torch(fn, logits)
        except Exception:  # noqa: BLE001 - the NumPy error is the one to report
            pass
        raise
    return _to_float32(out)


def _apply_torch(fn: Callable[..., Any], logits: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = fn(torch.from_numpy(np.ascontiguousarray(logits)))
    return _to_float32(out)


def _to_float32(out: Any) -> np.ndarray:
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().float().cpu().numpy()
    return np.asarray(out, dtype=np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    return _softmax(x).astype(np.float32, copy=False)


def _is_torch_callable(fn: object) -> bool:
    """A torch module instance, or a function from torch (``torch.sigmoid``...)."""
    if "torch" not in sys.modules:
        return False
    if any(c.__module__.startswith("torch.nn") for c in type(fn).__mro__):
        return True
    module = getattr(fn, "__module__", None) or ""
    return module == "torch" or module.startswith("torch.")
