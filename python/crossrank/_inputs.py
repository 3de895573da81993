"""Checked lists from the many forms users pass inputs in: pairs as ``(str, str)``, ``rank``'s
documents as ``str``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np


def _list_types() -> tuple[type, ...]:
    types: tuple[type, ...] = (list, tuple)
    if "datasets" in sys.modules:  # a `datasets` column behaves as a list of pairs
        column = getattr(sys.modules["datasets"], "Column", None)
        if isinstance(column, type):
            types += (column,)
    return types


def is_single_pair(inputs: Any) -> bool:
    """True for one bare pair ``("q", "d")``, as sentence-transformers 6.x decides it: a list
    or tuple whose first item is not itself a list or tuple (or a 1-D numpy string array)."""
    if isinstance(inputs, np.ndarray):
        return inputs.dtype.kind in ("U", "S", "O") and inputs.size > 0 and inputs.ndim < 2
    list_types = _list_types()
    if isinstance(inputs, list_types):
        seq: Any = inputs
        return len(seq) > 0 and not isinstance(seq[0], (*list_types, np.ndarray))
    return False


def normalize_pairs(inputs: Any, single: bool = False) -> list[tuple[str, str]]:
    """Checks and converts pairs (or, with ``single``, one pair); raises TypeError/ValueError
    naming the culprit."""
    if single:
        return [_check_pair(inputs.tolist() if isinstance(inputs, np.ndarray) else inputs, None)]
    if isinstance(inputs, (str, bytes)):
        raise TypeError("expected a list of (query, document) pairs or one pair, got a single "
                        f"{type(inputs).__name__}")
    if isinstance(inputs, Mapping):
        raise TypeError("expected a list of (query, document) pairs, got "
                        f"{type(inputs).__name__}")
    if isinstance(inputs, np.ndarray):
        inputs = inputs.tolist()
    elif hasattr(inputs, "to_numpy") and not isinstance(inputs, (list, tuple)):
        inputs = inputs.to_numpy().tolist()  # a pandas DataFrame (two columns) or Series
    elif not isinstance(inputs, (list, tuple)):
        try:
            inputs = list(inputs)
        except TypeError:
            raise TypeError("expected a list of (query, document) pairs, got "
                            f"{type(inputs).__name__}") from None
    return [_check_pair(pair, i) for i, pair in enumerate(inputs)]


def _check_pair(pair: Any, index: int | None) -> tuple[str, str]:
    where = "the pair" if index is None else f"pair {index}"
    if isinstance(pair, np.ndarray):
        pair = pair.tolist()
    if isinstance(pair, (str, bytes)) or not isinstance(pair, (list, tuple)):
        raise TypeError(f"{where} must be a list or tuple of two strings (query, document), "
                        f"got {type(pair).__name__}")
    if len(pair) != 2:
        raise ValueError(f"{where} must have exactly two texts (query, document), "
                         f"got {len(pair)}")
    a, b = pair
    for which, text in (("first", a), ("second", b)):
        if not isinstance(text, str):
            hint = " (decode bytes to str first)" if isinstance(text, bytes) else ""
            raise TypeError(f"{where}: the {which} text must be a str, got "
                            f"{type(text).__name__}{hint}")
    return (a, b)


def validate_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")


def as_documents(documents: Any) -> list[str]:
    """``rank``'s documents as a checked list of str (a list, tuple, numpy array, pandas
    Series or any iterable of str)."""
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
