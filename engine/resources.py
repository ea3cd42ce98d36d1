"""The one place that finds Lacuna's data files.

Three layouts: a frozen bundle (PyInstaller unpacks data under sys._MEIPASS),
a source checkout (resources/ beside engine/), and an installed wheel (the
folder is installed as the package ``lacuna_resources``).
"""
from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def root() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None and (Path(bundle) / "resources").is_dir():
        return Path(bundle) / "resources"
    checkout = Path(__file__).resolve().parent.parent / "resources"
    if (checkout / "catalog.json").is_file():
        return checkout
    spec = importlib.util.find_spec("lacuna_resources")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    raise FileNotFoundError("Lacuna's resources folder is missing from this installation")


def path(*parts: str) -> Path:
    """A path inside the resources folder (it may not exist)."""
    return root().joinpath(*parts)
