"""Lacuna: a desktop editor for infilling text with diffusion language models.

The public API (torch loads only when a function that needs it is first used)::

    from lacuna import load_model, Span, InfillRequest, infill, stream_infill

``lacuna.engine`` is the engine (no Qt), ``lacuna.app`` the Qt editor. The
repository keeps them in the folders engine/ and app/: an installed copy (wheel,
editable install, frozen bundle) maps them under this package with setuptools'
package_dir; in a source checkout this package's path reaches the folder beside
it, so the same import names work without an install.
"""
from __future__ import annotations

from pathlib import Path as _Path

_HERE = _Path(__file__).resolve().parent
if not (_HERE / "engine").is_dir() and (_HERE.parent / "engine" / "__init__.py").is_file():
    __path__.append(str(_HERE.parent))  # noqa: F821 - a package's __path__ (a source checkout)

from .engine import __all__, __version__  # noqa: E402,F401 - importing the engine package loads no torch


def __getattr__(name: str):
    """The engine's public names, each imported when first used (as lacuna.engine does)."""
    if name in __all__:
        from . import engine

        value = getattr(engine, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lacuna' has no attribute {name!r}")
