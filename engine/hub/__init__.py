"""Models on disk: the catalog, downloads into the shared Hugging Face cache, the fit check.

No Qt here, and nothing in this package touches the network unless asked to
pull. Heavy modules (HTTP, torch) are imported lazily.

Stable entry points used by the rest of Lacuna:

    local_snapshot(name) -> Path | None   the folder to load, offline
    catalog_entry(name)  -> dict | None    the catalog's data on a model
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["local_snapshot", "catalog_entry", "pull", "PullOptions", "PullProgress", "list_models",
           "model_info", "verify", "remove", "fit_model", "detect_devices"]

_LAZY = {
    "pull": "download", "PullOptions": "download", "PullProgress": "download",
    "list_models": "manage", "model_info": "manage", "verify": "manage", "remove": "manage",
    "fit_model": "fit", "detect_devices": "fit",
}


def __getattr__(name: str) -> Any:
    """``from engine.hub import pull`` and friends, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lacuna.engine.hub' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def catalog_entry(name: str) -> dict[str, Any] | None:
    """The catalog entry (bundled or user-added) whose id or repo id is ``name``."""
    from .catalog import catalog_entry as _entry

    return _entry(name)


def local_snapshot(name: str) -> Path | None:
    """The local folder holding ``name`` (catalog id or Hub repo id), or None; never the network.

    Order: a user-added local folder; the snapshot of the commit recorded when
    Lacuna installed the repo (complete and verified); else the newest complete
    snapshot already in the Hugging Face cache (HF_HUB_CACHE / HF_HOME respected).
    Bundled entries (the starter) are resolved by the loader, not here.
    """
    from . import cache, catalog

    entry = catalog.catalog_entry(name)
    if entry is not None:
        if entry.get("path"):
            folder = Path(entry["path"])
            return folder if folder.is_dir() else None
        repo = entry.get("repo")
    else:
        repo = name if catalog.is_repo_id(name) else None
    if not repo:
        return None
    installed = cache.installed_snapshot(repo)
    if installed is not None:
        return installed
    return cache.newest_complete_snapshot(repo, weights=not catalog.lends_tokenizer_only(entry))


def changed_files(name: str) -> list[str]:
    """Files of ``name``'s Lacuna install that were cut short, replaced or written after
    they were verified (size or stamp differs from the install record); empty when
    unchanged or not installed by Lacuna. Offline and cheap: no hashing."""
    from . import cache, catalog, records

    repo = catalog.repo_for(name)
    record = records.get_install(repo) if repo else None
    return cache.changed_since_verified(record) if record else []
