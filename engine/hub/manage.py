"""Installed models: list, verify, remove. Offline: nothing here touches the network."""
from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import cache, catalog, paths, records, validate
from .download import RemoteFile, check_hashes, hash_file
from .errors import NotInstalled


@dataclass(frozen=True)
class ModelInfo:
    """One row of the model list (plain data)."""

    id: str
    name: str
    repo: str | None
    family: str
    parameters: int | None
    size: int | None          # bytes: installed size, else the catalog's download size
    status: str               # bundled | installed | corrupt | partial | available | local | missing
    commit: str | None
    loadable: bool
    path: str | None          # the local folder when there is one
    source: str               # catalog | user | cache
    context_length: int | None = None
    license: str | None = None
    dtype: str | None = None
    remote_code: bool = False
    partial_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def folder_facts(folder: Path) -> tuple[str, int | None, int]:
    """(family, parameters, bytes on disk) of a model folder, read from its own files.

    The family comes from config.json, the parameter count from the
    safetensors headers (no weights are read), the size is every file's.
    Used for the bundled model so its facts never go stale in the catalog.
    """
    size = 0
    params = 0
    counted = False
    family = "unknown"
    try:
        entries = sorted(folder.rglob("*"))
    except OSError:
        return family, None, 0
    for entry in entries:
        try:
            if not entry.is_file():
                continue
            size += entry.stat().st_size
        except OSError:
            continue
        if entry.name == "config.json" and entry.parent == folder:
            try:
                family = catalog.family_from_config(json.loads(entry.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                pass
        elif entry.suffix == ".safetensors":
            count = _safetensors_params(entry)
            if count is not None:
                params += count
                counted = True
    return family, params if counted else None, size


def _safetensors_params(path: Path) -> int | None:
    """Elements of every tensor listed in a safetensors header (format: 8-byte length, JSON)."""
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100 << 20:
                return None
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error):
        return None
    total = 0
    for name, info in header.items() if isinstance(header, dict) else ():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        count = 1
        for dim in info.get("shape") or []:
            count *= int(dim)
        total += count
    return total


def _status_for(entry: dict[str, Any]) -> ModelInfo:
    repo = entry.get("repo")
    size = entry.get("download_size")
    commit = None
    folder: Path | None = None
    partial = 0
    remote_code = False
    family = entry.get("family") or "unknown"
    parameters = entry.get("parameters")
    loadable = family in catalog.LOADABLE_FAMILIES
    if entry.get("bundled"):
        from lacuna.engine import resources

        folder = resources.path(entry["bundled"])
        status = "bundled" if folder.is_dir() else "missing"
        if folder.is_dir():
            family, counted, size = folder_facts(folder)
            parameters = counted or parameters
            loadable = True  # Lacuna ships it with the loader it needs
    elif entry.get("path"):
        folder = Path(entry["path"])
        status = "local" if folder.is_dir() else "missing"
    else:
        record = records.get_install(repo) if repo else None
        if record:
            commit = record["commit"]
            size = record.get("size", size)
            remote_code = bool(record.get("remote_code"))
            folder = cache.installed_snapshot(repo)
            status = "installed" if folder is not None and record.get("verified") is True else "corrupt"
        else:
            folder = cache.newest_complete_snapshot(repo) if repo else None
            status = "cached" if folder is not None else "available"
            if folder is not None:
                commit = folder.name
        if status == "available" and repo:
            partial = cache.partial_bytes(repo)
            if partial:
                status = "partial"
    record = records.get_install(repo) if repo else None
    if family == "unknown" and record and isinstance(record.get("family"), str):
        family = record["family"]
        loadable = family in catalog.LOADABLE_FAMILIES
    return ModelInfo(
        id=entry["id"], name=entry.get("name") or entry["id"], repo=repo, family=family,
        parameters=parameters, size=size, status=status, commit=commit,
        loadable=loadable, path=str(folder) if folder else None,
        source=entry.get("source", "catalog"), context_length=entry.get("context_length"),
        license=entry.get("license"), dtype=entry.get("dtype"), remote_code=remote_code,
        partial_bytes=partial)


def list_models() -> list[ModelInfo]:
    """Catalog entries (bundled and user) plus repos Lacuna installed that are in neither."""
    # Companions (a tokenizer that models fetch along) are not models of their own.
    result = [_status_for(e) for e in catalog.entries() if not e.get("companion")]
    known = {(m.repo or "").lower() for m in result}
    for key, record in sorted(records.all_installs().items()):
        if key not in known:
            entry = {"id": record["repo"], "repo": record["repo"], "family": record.get("family") or "unknown",
                     "source": "cache"}
            result.append(_status_for(entry))
    return result


def model_info(name: str) -> ModelInfo | None:
    entry = catalog.catalog_entry(name)
    if entry is None and catalog.is_repo_id(name):
        entry = {"id": name, "repo": name, "family": "unknown", "source": "cache"}
        record = records.get_install(name)
        if record:
            entry["family"] = record.get("family") or "unknown"
    return _status_for(entry) if entry else None


@dataclass(frozen=True)
class VerifyReport:
    repo: str
    commit: str
    ok: bool
    checked: int
    problems: tuple[str, ...]

    def message(self) -> str:
        if self.ok:
            return f"{self.repo}@{self.commit[:12]}: {self.checked} files verified"
        return f"{self.repo}@{self.commit[:12]}: " + "; ".join(self.problems)


def _require_record(name: str) -> dict[str, Any]:
    from lacuna.engine.errors import InputError

    entry = catalog.catalog_entry(name)
    if entry is not None and entry.get("bundled"):
        raise InputError(f"{name} ships with Lacuna: it is not downloaded, so there is no Hub hash to "
                         f"check it against (reinstall Lacuna if it fails to load)")
    if entry is not None and entry.get("path"):
        raise InputError(f"{name} is your local folder {entry['path']}: Lacuna did not download it, "
                         f"so there is no Hub hash to check it against")
    repo = catalog.repo_for(name)
    record = records.get_install(repo) if repo else None
    if record is None:
        if repo is None:
            raise NotInstalled(f"{validate.show(name)} is not a catalog id or a Hub repo id (org/name)")
        raise NotInstalled(f"{name} is not installed (lacuna-cli models pull {name})")
    return record


def verify(name: str) -> VerifyReport:
    """Re-hash every file of an installed model. A bad file is deleted and the model marked corrupt.

    Raises InputError for the bundled model and local folders (nothing to check
    against), NotInstalled for a model Lacuna has no record of.
    """
    record = _require_record(name)
    repo, commit = record["repo"], record["commit"]
    problems: list[str] = []
    for item in record["files"]:
        blob = cache.blob_path(repo, item["blob"])
        link = cache.snapshot_dir(repo, commit) / item["path"]
        if not blob.is_file():
            problems.append(f"{item['path']} is missing")
            continue
        if blob.stat().st_size != item["size"]:
            problems.append(f"{item['path']} has the wrong size: deleted it")
            blob.unlink()
            continue
        rf = RemoteFile(item["path"], item["size"], item["blob"] if not item.get("lfs") else "",
                        item["blob"] if item.get("lfs") else None)
        ok, sha = check_hashes(rf, hash_file(blob, item["size"]))
        if not ok or sha != item["sha256"]:
            problems.append(f"{item['path']} does not match its sha256: deleted the bad file")
            blob.unlink()
            continue
        if not cache.snapshot_entry_ok(link, blob, item["size"]):  # what the loader reads: relink it
            link.unlink(missing_ok=True)
            cache.link_into_snapshot(repo, commit, item["path"], item["blob"])
        item["mtime_ns"] = cache.blob_stamp(repo, item["blob"])  # what was just hashed, as it is now
    record = dict(record)
    record["verified"] = not problems
    record["verified_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if problems:
        record["problems"] = problems
    else:
        record.pop("problems", None)
    records.put_install(record)
    return VerifyReport(repo, commit, not problems, len(record["files"]), tuple(problems))


def remove(name: str) -> int:
    """Delete an installed model's snapshot and the blobs no other snapshot uses; returns bytes freed."""
    from lacuna.engine.errors import InputError

    entry = catalog.catalog_entry(name)
    if entry is not None and entry.get("bundled"):
        raise InputError(f"{name} ships with Lacuna and cannot be removed")
    if entry is not None and entry.get("path"):
        raise InputError(f"{name} is your local folder {entry['path']}; Lacuna does not delete it")
    repo = catalog.repo_for(name)
    record = records.get_install(repo) if repo else None
    if repo is None or (record is None and not paths.repo_dir(repo).exists()):
        raise NotInstalled(f"{validate.show(name) if repo is None else name} is not installed")
    if cache.blobs_in_use(repo):
        raise InputError(f"{name} is being downloaded right now (by this or another program); "
                         "cancel that download first, then remove it")
    folder = paths.repo_dir(repo)
    commit = record["commit"] if record else None
    before = cache.repo_size_on_disk(repo)
    converted = _remove_converted(repo, record)
    snaps = folder / "snapshots"
    if commit:
        shutil.rmtree(snaps / commit, ignore_errors=True)
    else:
        shutil.rmtree(snaps, ignore_errors=True)
    still_used: set[str] = set()
    if snaps.is_dir():
        for link in snaps.rglob("*"):
            if link.is_symlink():
                still_used.add(Path(link.readlink()).name)
    blobs = folder / "blobs"
    if blobs.is_dir():
        for blob in blobs.iterdir():
            # a blob (or partial) that a running pull is writing, here or in another process, stays
            if blob.name not in still_used:
                cache.remove_if_idle(repo, cache.blob_of_partial(blob), blob)
    refs = folder / "refs"
    if refs.is_dir():
        for ref in refs.iterdir():
            try:
                target = ref.read_text().strip()
            except OSError:
                continue
            if not (snaps / target).is_dir():
                ref.unlink(missing_ok=True)
    if (not snaps.is_dir() or not any(snaps.iterdir())) and not cache.blobs_in_use(repo):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(paths.hf_cache_dir() / ".locks" / paths.repo_folder_name(repo), ignore_errors=True)
    records.drop_install(repo)
    return max(0, before - cache.repo_size_on_disk(repo)) + converted


def _remove_converted(repo: str, record: dict[str, Any] | None) -> int:
    """Delete the safetensors copies Lacuna made of the install's pickles (engine.models.pickles);
    returns their bytes."""
    from lacuna.engine.models import pickles
    from .download import PICKLE_SUFFIXES

    freed = 0
    for item in (record or {}).get("files", []):
        if not str(item.get("path", "")).endswith(PICKLE_SUFFIXES):
            continue
        copy = pickles.converted_path(cache.blob_path(repo, item["blob"]))
        try:
            freed += copy.stat().st_size
        except OSError:
            continue
        shutil.rmtree(copy.parent, ignore_errors=True)
    return freed


def companions(name: str) -> list[str]:
    """Repos a model needs beside its own: the tokenizer repo the catalog names
    (``tokenizer_repo``; MDLM and SEDD use GPT-2's, which their repos lack)."""
    entry = catalog.catalog_entry(name)
    repo = (entry or {}).get("tokenizer_repo")
    return [repo] if repo and repo != (entry or {}).get("repo") else []


def pull_with_companions(name: str, revision: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """download.pull for ``name``, then for each of its companions (same
    progress, cancel, pause and options; each verified by sha256 like the model).
    Returns the model's install record."""
    from .download import pull

    record = pull(name, revision, **kwargs)
    for repo in companions(name):
        pull(repo, None, **kwargs)
    return record
