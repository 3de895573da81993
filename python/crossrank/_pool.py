"""``start_multi_process_pool`` / ``predict(..., pool=pool)``, without extra processes.

sentence-transformers 6.x scores a pool's chunks in worker processes, one model copy each, to
use several GPUs or CPU cores. crossrank's native ``predict`` already runs on every core (its
Rust thread pool, with the GIL released); worker processes would each load the model and split
the same cores between them, which is slower and costs a model's memory per worker. So a
crossrank pool starts nothing: :meth:`CrossEncoder.predict` with a pool cuts the pairs into
chunks of ``chunk_size`` pairs and scores them one after the other through the model's own
engine, in this process, with a "Chunks" progress bar as sentence-transformers shows. The
scores are those of a plain call, in input order.

The default ``chunk_size`` is sentence-transformers' (a tenth of the pairs, at most 5000),
rounded up to a whole number of batches: every batch but the last is then full, so the pool
runs as many batches as a plain call does and is no slower (``benches/pool.py`` measures it).
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cross_encoder import CrossEncoder

#: sentence-transformers' cap on the default chunk size.
_MAX_DEFAULT_CHUNK = 5000


class MultiProcessPool(dict):  # type: ignore[type-arg]
    """What :meth:`CrossEncoder.start_multi_process_pool` returns.

    A dict with sentence-transformers' keys, ``"input"``, ``"output"`` (None: there is no
    queue) and ``"processes"`` (empty: there are no worker processes; crossrank's engine
    already uses every core). :attr:`target_devices` are the devices asked for (all run on
    the CPU), :attr:`closed` says whether :meth:`CrossEncoder.stop_multi_process_pool` has
    stopped it. The pool belongs to the model that started it.
    """

    def __init__(self, model: CrossEncoder, target_devices: list[str]) -> None:
        super().__init__(input=None, output=None, processes=[])
        self.target_devices = target_devices
        self.closed = False
        self._model = weakref.ref(model)

    def belongs_to(self, model: CrossEncoder) -> bool:
        return self._model() is model

    def __repr__(self) -> str:
        state = "stopped" if self.closed else "open"
        return f"MultiProcessPool({state}, target_devices={self.target_devices!r})"


def start(model: CrossEncoder, target_devices: Any, stacklevel: int) -> MultiProcessPool:
    """A pool for ``model``; ``target_devices`` are checked (a device other than the CPU is
    ignored with the warning ``device=`` gives, naming the user's line ``stacklevel`` frames
    up)."""
    return MultiProcessPool(model, _checked_devices(target_devices, stacklevel + 1))


def _checked_devices(target_devices: Any, stacklevel: int) -> list[str]:
    from ._arguments import check_device

    if target_devices is None:
        return ["cpu"]
    if isinstance(target_devices, (str, bytes)) or not isinstance(target_devices,
                                                                  (list, tuple)):
        raise TypeError("target_devices must be a list of devices such as ['cpu', 'cpu'], "
                        f"got {type(target_devices).__name__}")
    if not target_devices:
        raise ValueError("target_devices must name at least one device, got an empty list")
    names = []
    for device in target_devices:
        if not (isinstance(device, str) or _is_torch_device(device)):
            raise TypeError("target_devices must hold device names (str) or torch devices, "
                            f"got {type(device).__name__}")
        names.append(str(device))
    for name in names:
        check_device(name, stacklevel + 1)
    return names


def _is_torch_device(value: Any) -> bool:
    return type(value).__name__ == "device" and type(value).__module__ == "torch"


def stop(pool: Any) -> None:
    """Marks ``pool`` stopped; stopping it again does nothing."""
    if not isinstance(pool, MultiProcessPool):
        raise TypeError("stop_multi_process_pool() takes a pool from crossrank's "
                        f"start_multi_process_pool(), got {type(pool).__name__}")
    pool.closed = True


def check_pool(pool: Any) -> None:
    """None, or an open pool of crossrank's."""
    if pool is None:
        return
    if not isinstance(pool, MultiProcessPool):
        raise TypeError("pool must come from crossrank's CrossEncoder.start_multi_process_pool()"
                        f", got {type(pool).__name__}")
    if pool.closed:
        raise ValueError("this pool was stopped with stop_multi_process_pool(); start a new "
                         "one with model.start_multi_process_pool()")


def check_owner(pool: MultiProcessPool, model: CrossEncoder) -> None:
    if not pool.belongs_to(model):
        raise ValueError("this pool was started by another CrossEncoder; start one with this "
                         "model's start_multi_process_pool()")


def check_chunk_size(chunk_size: Any) -> None:
    """None, or a positive int (sentence-transformers' ValueError for 0 and below)."""
    from ._arguments import is_int

    if chunk_size is None:
        return
    if not is_int(chunk_size):
        raise TypeError(f"chunk_size must be an int or None, got {type(chunk_size).__name__}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")


def default_chunk_size(num_pairs: int, batch_size: int) -> int:
    """sentence-transformers' default for one worker (a tenth of the pairs, at most 5000),
    rounded up to whole batches so that chunking adds no partial batch."""
    chunk = max(1, min(math.ceil(num_pairs / 10), _MAX_DEFAULT_CHUNK))
    return math.ceil(chunk / batch_size) * batch_size


def chunk_starts(num_pairs: int, chunk_size: int) -> range:
    return range(0, num_pairs, chunk_size)
