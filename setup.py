"""Packaging glue that pyproject.toml cannot express: the top-level resources/
folder is installed as the package ``lacuna_resources`` (see engine/resources.py),
with every data file under it."""
from pathlib import Path

from setuptools import find_packages, setup

RESOURCES = Path(__file__).parent / "resources"
DATA = sorted(
    str(p.relative_to(RESOURCES)) for p in RESOURCES.rglob("*")
    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
)

setup(
    packages=find_packages(include=["app", "app.*", "engine", "engine.*"]) + ["lacuna_resources"],
    package_dir={"lacuna_resources": "resources"},
    package_data={"lacuna_resources": DATA},
)
