"""Where things live: the shared Hugging Face cache and Lacuna's own user data.

Every function reads the environment when it is called (not at import), so a
process that changes HF_HOME / HF_HUB_CACHE / LACUNA_DATA_DIR sees the change.
"""
from __future__ import annotations

import os
from pathlib import Path


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved the way huggingface_hub does it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def data_dir() -> Path:
    """Lacuna's user data folder (install records, consents, the user catalog)."""
    override = os.environ.get("LACUNA_DATA_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("lacuna", appauthor=False))


def repo_folder_name(repo: str) -> str:
    """``org/name`` -> ``models--org--name`` (the HF cache folder of a model repo)."""
    return "models--" + repo.replace("/", "--")


def repo_dir(repo: str) -> Path:
    return hf_cache_dir() / repo_folder_name(repo)


def lock_path(repo: str, blob: str) -> Path:
    """The lock huggingface_hub itself takes for a blob, so both tools interoperate."""
    return hf_cache_dir() / ".locks" / repo_folder_name(repo) / f"{blob}.lock"
