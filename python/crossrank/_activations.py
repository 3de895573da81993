"""Activation functions applied to logits, in float32, as sentence-transformers does.

The saved activation of a model (a torch class path) maps to a NumPy function here, so no
torch is needed. A user-given ``activation_fn`` may be a torch module or any callable on an
array; both are supported.
"""

from __future__ import annotations

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


def _softmax(x: np.ndarray) -> np.ndarray:
    if x.ndim == 1:
        x = x[:, None]
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


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


ACTIVATIONS: dict[str, NamedActivation] = {
    a.name: a
    for a in (
        NamedActivation("sigmoid", "torch.nn.modules.activation.Sigmoid", _sigmoid),
        NamedActivation("identity", "torch.nn.modules.linear.Identity", lambda x: x),
        NamedActivation("tanh", "torch.nn.modules.activation.Tanh", np.tanh),
        NamedActivation("softmax", "torch.nn.modules.activation.Softmax", _softmax),
        NamedActivation("relu", "torch.nn.modules.activation.ReLU", lambda x: np.maximum(x, 0)),
    )
}
_BY_TORCH_PATH = {a.torch_path: a for a in ACTIVATIONS.values()}


def from_saved_name(name: str) -> Callable[..., Any]:
    """The activation for a short name from the native layer, or a saved torch class path."""
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    if name in _BY_TORCH_PATH:
        return _BY_TORCH_PATH[name]
    # An activation class we have no NumPy twin for: import it as sentence-transformers does.
    module_name, _, class_name = name.rpartition(".")
    try:
        import importlib

        return getattr(importlib.import_module(module_name), class_name)()
    except Exception as exc:  # noqa: BLE001 - report what was saved and why it failed
        raise ValueError(
            f"the model's saved activation function {name!r} is not one crossrank knows "
            f"(known: {sorted(_BY_TORCH_PATH)}) and could not be imported: {exc}"
        ) from exc


def apply(fn: Callable[..., Any] | None, logits: np.ndarray) -> np.ndarray:
    """Applies an activation to float32 logits; torch modules get a torch tensor."""
    if fn is None:
        return logits
    if isinstance(fn, NamedActivation):
        return fn(logits)
    if _is_torch_module(fn):
        import torch

        with torch.no_grad():
            out = fn(torch.from_numpy(np.ascontiguousarray(logits)))
        return out.float().numpy()
    out = fn(logits)
    if hasattr(out, "detach"):  # a torch tensor from a callable
        out = out.detach().float().cpu().numpy()
    return np.asarray(out, dtype=np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    return _softmax(x).astype(np.float32, copy=False)


def _is_torch_module(fn: object) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(fn).__mro__)
