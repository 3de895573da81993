"""Resolving ``model_name_or_path`` to a local model directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def resolve_model(name: str, **hub_options: Any) -> Path:
    """A local directory as it is; anything else is a hub model id."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    if _looks_like_path(name):
        raise FileNotFoundError(f"model directory not found: {name}")
    raise OSError(
        f"{name!r} is not a local directory, and downloading models from the Hugging Face Hub "
        "is not available in this build of crossrank"
    )


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~"))
        or os.sep in name.strip("/").replace("/", "", 1)
        or name.count("/") > 1
        or (os.altsep is not None and os.altsep in name)
    )
