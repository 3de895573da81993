"""The native module: use ``crossrank.CrossEncoder``."""

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "PRECISIONS",
    "SUPPORTED_MODEL_TYPES",
    "NativeCrossEncoder",
    "__version__",
    "active_isa",
    "hub_resolve",
    "release_memory",
    "runnable_isas",
    "set_num_threads",
    "thread_budget",
]

__version__: str
SUPPORTED_MODEL_TYPES: list[str]
PRECISIONS: list[str]

def runnable_isas() -> list[str]:
    """The instruction-set paths this CPU can run, whatever ``CROSSRANK_ISA`` says."""

def active_isa() -> str:
    """The path kernels take in this process (``CROSSRANK_ISA`` applied)."""

def set_num_threads(num_threads: int | None) -> None:
    """Sets the threads every model of this process uses unless it has its own; None goes
    back to the environment and the available CPUs."""

def thread_budget() -> tuple[int, str, list[str]]:
    """``(threads, where it came from, messages for ignored environment values)``."""

def release_memory() -> None:
    """Gives free memory the process still holds back to the system: large buffers kept for
    reuse between calls (up to 64 MiB) and free heap pages. The next call maps them again."""

@final
class NativeCrossEncoder:
    def __new__(
        cls,
        path: str | PathLike[str],
        num_labels: int | None = None,
        max_length: int | None = None,
        config_overrides: str | None = None,
        precision: str = "float32",
        num_threads: int | None = None,
    ) -> NativeCrossEncoder: ...
    def predict_logits(
        self,
        pairs: list[tuple[str, str]],
        batch_size: int = 32,
        progress: Callable[[int, int], object] | None = None,
        max_length: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """Raw logits, ``(len(pairs), num_labels)``; each pair cut to ``max_length`` (None:
        :attr:`max_length`; at most :attr:`max_positions`, else a ValueError)."""
    def predict_rendered(
        self,
        texts: list[str],
        suffix: list[int],
        batch_size: int = 32,
        progress: Callable[[int, int], object] | None = None,
        max_length: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """Raw logits for chat-rendered texts, each cut to ``max_length`` (None:
        :attr:`max_length`) with ``suffix`` written over the end of a text that reaches it
        (an empty ``suffix``: cut without a restore)."""
    def tokenize(
        self, pairs: list[tuple[str, str]], max_length: int | None = None
    ) -> list[tuple[list[int], list[int]]]: ...
    def tokenize_rendered(
        self, texts: list[str], suffix: list[int] | None = None, max_length: int | None = None
    ) -> list[list[int]]:
        """The ids :meth:`predict_rendered` scores for ``texts``, ``suffix`` and
        ``max_length``; without a ``suffix`` (None) the whole texts, uncut."""
    def __reduce__(
        self,
    ) -> tuple[
        type[NativeCrossEncoder], tuple[Path, int | None, int, str | None, str, int | None]
    ]: ...
    def tokenizer_json(self) -> str: ...
    @property
    def num_labels(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @max_length.setter
    def max_length(self, value: int) -> None: ...
    @property
    def max_positions(self) -> int: ...
    @property
    def num_threads(self) -> int | None:
        """This model's own thread budget, or None to follow the process's."""
    @num_threads.setter
    def num_threads(self, value: int | None) -> None: ...
    @property
    def threads_in_use(self) -> int:
        """The threads this model's calls run on now."""
    @property
    def model_type(self) -> str: ...
    @property
    def config_json(self) -> str: ...
    @property
    def default_activation(self) -> str: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def source(self) -> Path: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def precision(self) -> str: ...
    @property
    def effective_precision(self) -> str: ...
    @property
    def kernels(self) -> str: ...
    @property
    def dense_weight_bytes(self) -> int: ...

def hub_resolve(
    model_id: str,
    cache_dir: str | PathLike[str] | None = None,
    revision: str | None = None,
    token: bool | str | None = None,
    local_files_only: bool = False,
    progress: Callable[[str, int], Any] | None = None,
    progress_min_bytes: int = 0,
) -> tuple[Path, str, str, list[str]]:
    """Resolves a hub model id to its snapshot directory in the hub cache.

    Returns ``(directory, repo_id, commit, warnings)``. ``progress(filename, total_bytes)``
    makes a bar with ``update(n)`` and ``close()`` for files of at least
    ``progress_min_bytes``.
    """
