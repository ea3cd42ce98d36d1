"""The model catalog: resources/catalog.json plus the user's own additions.

The bundled file is data, not code. Each entry is a dict with (null = unknown,
sizes then come from the Hub's tree listing at pull time):

    id, name, repo, family, parameters, download_size (bytes), dtype,
    context_length, license, files (glob patterns to fetch), description,
    bundled (the starter only), path (a user-added local folder), source

``loadable`` (can the engine load this family today) and ``memory`` (bytes of
weights per precision, derived from ``parameters``) are filled in on load.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..models import families
from . import store

USER_CATALOG = "catalog.json"
LOADABLE_FAMILIES = frozenset({*families.TRANSFORMERS_FAMILIES.values(), *families.BY_NAME})
DEFAULT_FILES = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "added_tokens.json",
    "chat_template.*",
)
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _bundled() -> list[dict[str, Any]]:
    from lacuna.engine import resources

    with open(resources.path("catalog.json"), encoding="utf-8") as fh:
        data = json.load(fh)
    return list(data.get("models", []))


def _user_entry_ok(m: Any) -> bool:
    if not isinstance(m, dict):
        return False
    repo, path = m.get("repo"), m.get("path")
    if not ((isinstance(repo, str) and is_repo_id(repo)) or (repo is None and isinstance(path, str) and path)):
        return False
    if any(m.get(k) is not None and not isinstance(m[k], str) for k in ("id", "name", "family", "path")):
        return False
    for key in ("parameters", "download_size", "context_length"):
        value = m.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return False
    for key in ("files", "aliases"):
        value = m.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(f, str) for f in value)):
            return False
    return True


def _user() -> list[dict[str, Any]]:
    """The user's entries that are well-formed; the rest are skipped and noted (store.ignored)."""
    data = store.read(USER_CATALOG, {})
    models = data.get("models", [])
    if not isinstance(models, list):
        store.ignore(USER_CATALOG, "ignored, its \"models\" is not a list")
        return []
    good = [m for m in models if _user_entry_ok(m)]
    bad = len(models) - len(good)
    if bad:
        store.ignore(USER_CATALOG, f"ignored {bad} broken {'entry' if bad == 1 else 'entries'}")
    return good


def _finish(entry: dict[str, Any], source: str) -> dict[str, Any]:
    out = dict(entry)
    out.setdefault("id", out.get("repo") or out.get("path"))
    out.setdefault("name", out["id"])
    out.setdefault("family", "unknown")
    for key in ("repo", "parameters", "download_size", "dtype", "context_length", "license"):
        out.setdefault(key, None)
    out.setdefault("files", list(DEFAULT_FILES))
    out.setdefault("description", "")
    out["source"] = source
    out["loadable"] = out["family"] in LOADABLE_FAMILIES
    params = out.get("parameters")
    if params:
        from .fit import shape_from_config, weight_bytes

        shape = shape_from_config(out["shape"]) if isinstance(out.get("shape"), dict) else None
        quantized = shape.quantized if shape is not None else None  # exact for native families
        out["memory"] = {p: weight_bytes(int(params), p, quantized) for p in ("bf16", "int8", "int4")}
    else:
        out["memory"] = None
    return out


def entries() -> list[dict[str, Any]]:
    """Every catalog entry, bundled first then the user's (a user entry never hides a bundled one)."""
    result = [_finish(e, "catalog") for e in _bundled()]
    seen = {e["id"].lower() for e in result} | {(e["repo"] or "").lower() for e in result if e["repo"]}
    for e in _user():
        item = _finish(e, "user")
        if item["id"].lower() in seen:
            continue
        seen.add(item["id"].lower())
        result.append(item)
    return result


def catalog_entry(name: str) -> dict[str, Any] | None:
    """The entry whose id or repo id is ``name`` (case-insensitive), else None."""
    if not isinstance(name, str) or not name.strip():
        return None
    key = name.strip().lower()
    for e in entries():
        if e["id"].lower() == key or (e.get("repo") or "").lower() == key:
            return e
        if key in (a.lower() for a in e.get("aliases") or ()):
            return e
    return None


def lends_tokenizer_only(entry: dict[str, Any] | None) -> bool:
    """Whether a catalog entry is a companion that lends its tokenizer and nothing else
    (GPT-2's, for MDLM and SEDD): its pull fetches no weights and asks no pickle consent."""
    return bool(entry) and (bool(entry.get("companion")) or entry.get("family") == "tokenizer")


def repo_for(name: str) -> str | None:
    """A catalog id or a repo id -> the Hub repo id (None for bundled/local entries or bad names)."""
    entry = catalog_entry(name)
    if entry is not None:
        return entry.get("repo")
    return name if is_repo_id(name) else None


def is_repo_id(name: str) -> bool:
    """``org/name`` as the Hub spells repo ids (at most 96 characters each side, like the Hub)."""
    return (isinstance(name, str) and len(name) <= 193 and REPO_RE.fullmatch(name) is not None
            and "--" not in name and ".." not in name and all(len(p) <= 96 for p in name.split("/")))


def add_user_entry(spec: str, **fields: Any) -> dict[str, Any]:
    """Add a Hub repo id (``org/name``) or an existing local folder to the user catalog."""
    from lacuna.engine.errors import InputError

    spec = spec.strip()
    folder = Path(spec).expanduser()
    try:
        is_folder = "\x00" not in spec and bool(spec) and folder.is_dir()
    except OSError:  # a name too long for the file system is no folder
        is_folder = False
    if is_folder:
        entry: dict[str, Any] = {"id": str(folder.resolve()), "path": str(folder.resolve()),
                                 "name": folder.name}
        config = folder / "config.json"
        if config.is_file():
            try:
                entry["family"] = family_from_config(json.loads(config.read_text()))
            except (OSError, ValueError):
                pass
    elif is_repo_id(spec):
        entry = {"id": spec, "repo": spec, "name": spec.split("/", 1)[1]}
    else:
        from .validate import show

        raise InputError(f"{show(spec)} is neither a Hub repo id (org/name) nor an existing folder")
    entry.update(fields)
    existing = catalog_entry(entry["id"])
    if existing is not None:
        return existing

    def change(data: Any) -> Any:
        if not isinstance(data.get("models"), list):
            data["models"] = []
        data.setdefault("version", 1)
        data["models"].append(entry)
        return data

    store.update(USER_CATALOG, {}, change)
    return _finish(entry, "user")


def remove_user_entry(name: str) -> bool:
    key = name.strip().lower()
    removed = []

    def change(data: Any) -> Any:
        if not isinstance(data.get("models"), list):
            return data
        keep = []
        for m in data["models"]:
            if not isinstance(m, dict):
                keep.append(m)
                continue
            if (str(m.get("id", "")).lower() == key or str(m.get("repo", "")).lower() == key
                    or str(m.get("path", "")).lower() == key):
                removed.append(m)
            else:
                keep.append(m)
        data["models"] = keep
        return data

    store.update(USER_CATALOG, {}, change)
    return bool(removed)


def family_from_config(config: dict[str, Any]) -> str:
    """A family name from a config.json dict (engine.models.families.family_name)."""
    return families.family_name(config)
