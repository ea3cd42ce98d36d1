"""Packaging glue that pyproject.toml cannot express: the top-level resources/
folder is installed as the package ``lacuna_resources`` (see engine/resources.py)."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["app", "app.*", "engine", "engine.*"]) + ["lacuna_resources"],
    package_dir={"lacuna_resources": "resources"},
    package_data={"lacuna_resources": ["*", "**/*"]},
)
