"""``crossrank.patch()``: ``sentence_transformers.CrossEncoder`` becomes crossrank's class.

Frameworks (LangChain, LlamaIndex, Haystack...) build their rerankers with
``sentence_transformers.CrossEncoder(name, ...)``. :func:`patch` makes that name resolve to
:class:`crossrank.CrossEncoder` for all of them, in one of two ways:

- sentence-transformers is installed: the ``CrossEncoder`` attribute is replaced on the
  modules frameworks import it from (the package, ``sentence_transformers.cross_encoder``
  and the module that defines the class). Everything else in the package stays real.
- it is not: a minimal stand-in package ``sentence_transformers`` (with
  ``sentence_transformers.cross_encoder``) goes into ``sys.modules``. It holds the
  ``CrossEncoder`` class and nothing else; asking it for anything more raises an ImportError
  that names this patch, so code that needs the real package fails clearly.

:func:`unpatch` undoes exactly what :func:`patch` did. Both are idempotent and serialised by
one lock. Modules that ran ``from sentence_transformers import CrossEncoder`` before
:func:`patch` keep the name they bound then: patch first, then import the framework.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .cross_encoder import CrossEncoder

PACKAGE = "sentence_transformers"
#: The stand-in's modules: where frameworks import ``CrossEncoder`` from (6.x and 5.x).
STAND_IN_MODULES = (PACKAGE, f"{PACKAGE}.cross_encoder")

_lock = threading.RLock()


@dataclass
class _Applied:
    """What one :func:`patch` changed, so that :func:`unpatch` reverts just that."""

    #: (module, the ``CrossEncoder`` it held): attributes replaced on the real package.
    replaced: list[tuple[types.ModuleType, Any]] = field(default_factory=list)
    #: Stand-in modules put into ``sys.modules``, by name.
    stand_ins: dict[str, types.ModuleType] = field(default_factory=dict)
    #: What ``sys.modules`` held under those names before (``None`` blocks an import).
    displaced: dict[str, types.ModuleType | None] = field(default_factory=dict)
    #: The import hook that refuses the stand-in's missing submodules.
    finder: _MissingSubmoduleFinder | None = None


_applied: _Applied | None = None


def patch() -> None:
    """Makes ``sentence_transformers.CrossEncoder`` resolve to :class:`crossrank.CrossEncoder`.

    With sentence-transformers installed, replaces the attribute on the modules frameworks
    import it from; without it, installs a minimal stand-in ``sentence_transformers`` package
    that holds only ``CrossEncoder``. Call it before importing the framework's modules (a
    module that already ran ``from sentence_transformers import CrossEncoder`` keeps the
    class it got). Calling it again while patched does nothing; :func:`unpatch` reverts it.
    """
    global _applied
    with _lock:
        if _applied is not None:
            return
        if _sentence_transformers_installed():
            _applied = _replace_in_real_package()
        else:
            _applied = _install_stand_in()


def unpatch() -> None:
    """Reverts :func:`patch`: the original ``CrossEncoder`` attributes are back, the stand-in
    modules are gone. Does nothing when not patched."""
    global _applied
    with _lock:
        if _applied is None:
            return
        _restore_attributes(_applied)
        _remove_stand_in(_applied)
        _applied = None


def is_patched() -> bool:
    """Whether :func:`patch` is in effect."""
    return _applied is not None


# `patched()` blocks open now, and whether the first of them did the patching.
_open_blocks = 0
_blocks_patched = False


@contextmanager
def patched() -> Iterator[None]:
    """``with crossrank.patched(): ...``: patched inside the block. When the last open block
    exits, reverts the patch if the blocks made it (not if :func:`patch` had), so blocks nest
    and overlap across threads."""
    global _open_blocks, _blocks_patched
    with _lock:
        if _open_blocks == 0:
            _blocks_patched = not is_patched()
        _open_blocks += 1
        patch()
    try:
        yield
    finally:
        with _lock:
            _open_blocks -= 1
            if _open_blocks == 0 and _blocks_patched:
                unpatch()


# -- sentence-transformers installed -------------------------------------------------------


def _sentence_transformers_installed() -> bool:
    """Whether a real sentence-transformers can be imported (a stand-in is not one, and
    ``sys.modules["sentence_transformers"] = None`` blocks it)."""
    if PACKAGE in sys.modules:
        module = sys.modules[PACKAGE]
        return module is not None and not isinstance(module, _StandInModule)
    return importlib.util.find_spec(PACKAGE) is not None


def _restore_attributes(applied: _Applied) -> None:
    for module, original in reversed(applied.replaced):
        if getattr(module, "CrossEncoder", None) is CrossEncoder:  # not replaced again since
            module.__dict__["CrossEncoder"] = original


def _replace_in_real_package() -> _Applied:
    package = importlib.import_module(PACKAGE)
    original = package.CrossEncoder
    applied = _Applied()
    for name in _modules_holding(original):
        module = importlib.import_module(name)
        if getattr(module, "CrossEncoder", None) is original:
            applied.replaced.append((module, original))
            module.__dict__["CrossEncoder"] = CrossEncoder
    return applied


def _modules_holding(original: Any) -> list[str]:
    """The public import paths of ``CrossEncoder``: the package, its ``cross_encoder``
    subpackage and the defining module (``cross_encoder.model`` in 6.x,
    ``cross_encoder.CrossEncoder`` in 5.x)."""
    names = [PACKAGE, f"{PACKAGE}.cross_encoder", getattr(original, "__module__", PACKAGE)]
    return list(dict.fromkeys(n for n in names if n.startswith(PACKAGE)))


# -- sentence-transformers absent: the stand-in ---------------------------------------------


def _missing_message(what: str) -> str:
    return (f"{what} is not available: sentence-transformers is not installed, and "
            f"'{PACKAGE}' here is crossrank's stand-in (crossrank.patch()), which provides "
            "only CrossEncoder. Install sentence-transformers for the rest, or call "
            "crossrank.unpatch().")


class _StandInModule(types.ModuleType):
    """A module that holds ``CrossEncoder`` and refuses every other public name with an
    ImportError (dunder names stay AttributeErrors, so introspection and ``hasattr`` on
    them behave normally)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise ImportError(_missing_message(f"{self.__name__}.{name}"), name=self.__name__)


def _stand_in(name: str) -> _StandInModule:
    module = _StandInModule(name, "crossrank's stand-in for sentence-transformers "
                                  "(crossrank.patch()): CrossEncoder only")
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None,
                                                     origin="crossrank.patch()",
                                                     is_package=True)
    module.__path__ = []  # a package, so that its one submodule imports
    module.__dict__.update(__all__=["CrossEncoder"], CrossEncoder=CrossEncoder)
    return module


class _MissingSubmoduleFinder:
    """Meta path hook: ``import sentence_transformers.<anything else>`` under the stand-in
    raises the patch's ImportError instead of a bare ModuleNotFoundError."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> None:
        del path, target
        if fullname.startswith(f"{PACKAGE}.") and fullname not in STAND_IN_MODULES:
            raise ModuleNotFoundError(_missing_message(fullname), name=fullname)


def _install_stand_in() -> _Applied:
    finder = _MissingSubmoduleFinder()
    applied = _Applied(finder=finder)
    for name in STAND_IN_MODULES:
        applied.stand_ins[name] = _stand_in(name)
    # A package's imported submodule is its attribute too.
    applied.stand_ins[PACKAGE].__dict__["cross_encoder"] = (
        applied.stand_ins[f"{PACKAGE}.cross_encoder"])
    applied.displaced = {n: sys.modules[n] for n in STAND_IN_MODULES if n in sys.modules}
    sys.modules.update(applied.stand_ins)
    sys.meta_path.insert(0, finder)
    return applied


def _remove_stand_in(applied: _Applied) -> None:
    """Takes the stand-in's modules out of ``sys.modules`` (putting back what they displaced)
    and its import hook out of ``sys.meta_path``."""
    for name, module in applied.stand_ins.items():
        if sys.modules.get(name) is not module:
            continue  # replaced by someone else since: theirs now
        if name in applied.displaced:
            sys.modules[name] = applied.displaced[name]  # type: ignore[assignment]
        else:
            del sys.modules[name]
    if applied.finder is not None and applied.finder in sys.meta_path:
        sys.meta_path.remove(applied.finder)
