"""Packaging glue that pyproject.toml cannot express.

The repository's engine/ and app/ folders install as ``lacuna.engine`` and
``lacuna.app`` (Lacuna's own namespace: a generic top-level ``app`` or
``engine`` would collide with any other distribution's), and the top-level
resources/ folder as the package ``lacuna_resources`` (see engine/resources.py),
with every data file under it."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
RESOURCES = ROOT / "resources"
DATA = sorted(
    str(p.relative_to(RESOURCES)) for p in RESOURCES.rglob("*")
    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
)
FOLDERS = ("engine", "app")

setup(
    packages=["lacuna", "lacuna_resources"] + [
        f"lacuna.{name}" for folder in FOLDERS
        for name in [folder] + [f"{folder}.{sub}" for sub in find_packages(where=str(ROOT / folder))]
    ],
    package_dir={"lacuna": "lacuna", "lacuna_resources": "resources",
                 **{f"lacuna.{folder}": folder for folder in FOLDERS}},
    package_data={"lacuna_resources": DATA},
)
