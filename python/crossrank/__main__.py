"""``python -m crossrank`` and the ``crossrank`` command: see :mod:`crossrank.cli`."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
