"""PyInstaller: in a source checkout the package ``lacuna`` reaches engine/ and app/
by adding the checkout to its ``__path__`` at import (lacuna/__init__.py); PyInstaller's
module graph does not run that code, so it is told the same path here."""
from pathlib import Path


def pre_safe_import_module(api):
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "engine" / "__init__.py").is_file():
        api.append_package_path(str(checkout))
