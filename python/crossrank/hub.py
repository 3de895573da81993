"""Resolving ``model_name_or_path`` to a local model directory.

A path that exists is used as it is. Anything else is a Hugging Face Hub model id, resolved
by the Rust core (``src/hub``) into the cache layout ``huggingface_hub`` uses
(``$HF_HOME/hub/models--org--name/snapshots/<commit>/``), so models that
sentence-transformers downloaded are found without network access and the other way round.

Environment, as huggingface_hub and sentence-transformers read it: ``HF_HOME``,
``HF_HUB_CACHE``, ``SENTENCE_TRANSFORMERS_HOME`` (default ``cache_folder``), ``HF_ENDPOINT``,
``HF_TOKEN`` (and the token saved by ``hf auth login``), ``HF_HUB_OFFLINE``,
``HF_HUB_DISABLE_PROGRESS_BARS``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol, Union

from ._crossrank import hub_resolve

logger = logging.getLogger(__name__)

#: Files at least this large get a download progress bar.
PROGRESS_MIN_BYTES = 10 * 1024 * 1024

TokenArg = Union[bool, str, None]


class _Bar(Protocol):
    def update(self, n: int) -> Any: ...

    def close(self) -> Any: ...


def resolve_model(
    name: str,
    *,
    cache_folder: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
    token: TokenArg = None,
) -> Path:
    """A local directory as it is; anything else is a hub model id, downloaded if needed.

    Raises:
        FileNotFoundError: ``name`` looks like a path that does not exist.
        OSError: the model cannot be found or downloaded (unknown id, no access, revision
            not found, offline with nothing cached, interrupted download).
    """
    path = Path(name).expanduser()
    if path.exists():
        return path
    if _looks_like_path(name):
        raise FileNotFoundError(f"model directory not found: {name}")
    if cache_folder is None:
        cache_folder = os.environ.get("SENTENCE_TRANSFORMERS_HOME") or None
    if token is not None and not isinstance(token, (bool, str)):
        raise TypeError(f"token must be a str, a bool or None, got {type(token).__name__}")
    directory, repo_id, commit, warnings = hub_resolve(
        name,
        cache_dir=os.fspath(Path(cache_folder).expanduser()) if cache_folder else None,
        revision=revision,
        token=token,
        local_files_only=bool(local_files_only),
        progress=None if _progress_disabled() else _progress_bar,
        progress_min_bytes=PROGRESS_MIN_BYTES,
    )
    for message in warnings:
        logger.warning(message)
    if repo_id != name:
        logger.info("%r resolved to the hub model %r", name, repo_id)
    logger.debug("using %s at commit %s from %s", repo_id, commit, directory)
    return Path(directory)


def _progress_bar(filename: str, total: int) -> _Bar:
    """A byte-counting bar; ``tqdm.auto`` picks a notebook widget or a terminal bar."""
    from tqdm.auto import tqdm

    bar: _Bar = tqdm(
        total=total, desc=filename, unit="B", unit_scale=True, unit_divisor=1024,
        dynamic_ncols=True, leave=True,
    )
    return bar


def _progress_disabled() -> bool:
    value = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "")
    return value.strip().lower() in {"1", "on", "yes", "true"}


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~"))
        or os.sep in name.strip("/").replace("/", "", 1)
        or name.count("/") > 1
        or (os.altsep is not None and os.altsep in name)
    )
