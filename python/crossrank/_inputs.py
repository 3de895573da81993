"""Turning the many forms users pass pairs in into a checked list of ``(str, str)``."""

from __future__ import annotations

from typing import Any

import numpy as np


def _sequence_types() -> tuple[type, ...]:
    types: tuple[type, ...] = (list, tuple)
    try:  # a `datasets` column behaves as a list of pairs
        from datasets import Column  # type: ignore[import-not-found,attr-defined,unused-ignore]

        types += (Column,)
    except Exception:  # noqa: BLE001 - datasets is optional
        pass
    return types


def is_single_pair(inputs: Any) -> bool:
    """True for one bare pair ``("q", "d")``, as sentence-transformers decides it."""
    if isinstance(inputs, np.ndarray):
        return inputs.dtype.kind in ("U", "O") and inputs.size > 0 and inputs.ndim < 2
    if isinstance(inputs, (list, tuple)):
        return len(inputs) > 0 and isinstance(inputs[0], str)
    return False


def normalize_pairs(inputs: Any) -> list[tuple[str, str]]:
    """Checks and converts a batch of pairs; raises TypeError/ValueError naming the culprit."""
    if isinstance(inputs, (str, bytes)):
        raise TypeError("expected a list of (query, document) pairs or one pair, got a single "
                        f"{type(inputs).__name__}")
    if isinstance(inputs, np.ndarray):
        inputs = inputs.tolist()
    elif hasattr(inputs, "to_numpy") and not isinstance(inputs, (list, tuple)):  # pandas
        inputs = inputs.to_numpy().tolist()
    elif not isinstance(inputs, (list, tuple)):
        try:
            inputs = list(inputs)
        except TypeError:
            raise TypeError("expected a list of (query, document) pairs, got "
                            f"{type(inputs).__name__}") from None
    pairs: list[tuple[str, str]] = []
    for i, pair in enumerate(inputs):
        if isinstance(pair, np.ndarray):
            pair = pair.tolist()
        if isinstance(pair, (str, bytes)) or not isinstance(pair, (list, tuple)):
            raise TypeError(f"pair {i} must be a list or tuple of two strings, got "
                            f"{type(pair).__name__}")
        if len(pair) != 2:
            raise ValueError(f"pair {i} must have exactly two texts (query, document), "
                             f"got {len(pair)}")
        a, b = pair
        for which, text in (("first", a), ("second", b)):
            if not isinstance(text, str):
                raise TypeError(f"pair {i}: the {which} text must be a str, got "
                                f"{type(text).__name__}")
        pairs.append((a, b))
    return pairs


def validate_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
