"""The thread budget's Python face: ``set_num_threads`` / ``get_num_threads`` and the warning
for environment values that are not thread counts. The budget itself is resolved in Rust
(``src/threads.rs``) at every call."""

from __future__ import annotations

import threading
import warnings

from . import _arguments
from . import _crossrank as _native

_warned: set[str] = set()
_warned_lock = threading.Lock()


def set_num_threads(num_threads: int | None) -> None:
    """Sets the compute threads of every crossrank call in this process, for models without
    their own ``num_threads``; ``None`` goes back to the default (``CROSSRANK_NUM_THREADS``,
    ``OMP_NUM_THREADS``, then the CPUs this process may use)."""
    _arguments.check_optional_int("num_threads", num_threads)
    _native.set_num_threads(num_threads)


def get_num_threads() -> int:
    """The compute threads a call of a model without its own ``num_threads`` runs on now."""
    threads, _source, ignored = _native.thread_budget()
    _warn_once(ignored, stacklevel=2)
    return threads


def warn_ignored_environment(stacklevel: int) -> None:
    """Warns once per process and value about a thread variable that is not a count
    (``OMP_NUM_THREADS=abc``), which crossrank ignores as OpenMP does."""
    _warn_once(_native.thread_budget()[2], stacklevel=stacklevel + 1)


def _warn_once(messages: list[str], stacklevel: int) -> None:
    for message in messages:
        with _warned_lock:
            if message in _warned:
                continue
            _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)
