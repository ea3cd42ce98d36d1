"""The model worker: imports the engine, loads models and lists the local ones."""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)

# model_type values of the families engine/models handles (config.json)
LOADABLE_TYPES = {"modernbert", "bert", "roberta", "distilbert", "llada", "dream", "mdlm", "sedd"}


@dataclass(frozen=True)
class ModelInfo:
    spec: str
    name: str
    device: str
    dtype: str
    context_length: int
    seconds: float
    revision: str = ""  # the Hub commit of the weights, when they came from the Hugging Face cache


def model_revision(model) -> str:
    """The commit of a model's snapshot in the Hugging Face cache (…/snapshots/<commit>), or ""."""
    path = getattr(model, "path", None)
    if not path:
        return ""
    p = Path(str(path))
    return p.name if p.parent.name == "snapshots" else ""


def load_failure_message(spec: str, exc: BaseException) -> str:
    from .infill import readable_error

    msg = readable_error(exc)
    if not msg.lower().startswith("the model could not be loaded"):
        msg = f"The model {spec!r} could not be loaded: {msg}"
    return msg


def _hf_cache_dir() -> Path:
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env)
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def scan_hf_cache(cache: Path | None = None) -> list[tuple[str, str]]:
    """(label, spec) of models in the local Hugging Face cache that look loadable."""
    cache = cache or _hf_cache_dir()
    found = []
    if not cache.is_dir():
        return found
    for d in sorted(cache.glob("models--*")):
        repo = d.name[len("models--"):].replace("--", "/")
        snaps = sorted((d / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
        for snap in snaps:
            cfg = snap / "config.json"
            if not cfg.is_file():
                continue
            try:
                mt = str(json.loads(cfg.read_text(encoding="utf-8")).get("model_type", "")).lower()
            except (OSError, ValueError):
                continue
            has_weights = any(snap.glob("*.safetensors")) or any(snap.glob("*.bin"))
            if has_weights and (mt in LOADABLE_TYPES or "llada" in repo.lower() or "dream" in repo.lower()):
                found.append((repo, repo))
            break
    return found


def list_local_models() -> list[tuple[str, str]]:
    """Models the picker offers besides the starter: what engine.hub knows is on
    disk (installed by the model manager, user folders, cached catalog models),
    then any other loadable model found in the Hugging Face cache."""
    out: list[tuple[str, str]] = []
    try:
        from engine.hub import manage

        for m in manage.list_models():
            if m.id != "starter" and m.loadable and m.status in ("installed", "cached", "local"):
                out.append((m.name, m.id))
    except Exception:  # noqa: BLE001 - the listing is a convenience
        log.debug("engine.hub listing unavailable:\n%s", traceback.format_exc())
    known = {spec.lower() for _, spec in out}
    for label, spec in scan_hf_cache():
        if spec.lower() not in known:
            out.append((label, spec))
    return out


def load_model_outcome(spec: str, loader=None, threads: int | None = None, progress=None):
    """Load a model: (model, ModelInfo), or the one message to show when it fails."""
    t0 = time.perf_counter()
    try:
        if progress is not None:
            progress(f"Loading {spec}…")
        if threads and (loader is None or "torch" in sys.modules):
            import torch  # imported here, off the GUI thread

            torch.set_num_threads(threads)
        if loader is None:
            from engine import load_model

            loader = load_model
        model = loader(spec)
        info = ModelInfo(
            spec=spec,
            name=str(getattr(model, "name", spec)),
            device=str(getattr(model, "device", "cpu")),
            dtype=str(getattr(model, "dtype", "")).replace("torch.", ""),
            context_length=int(getattr(model, "context_length", 0) or 0),
            seconds=time.perf_counter() - t0,
            revision=model_revision(model),
        )
        return model, info
    except Exception as exc:  # noqa: BLE001
        log.error("model load failed:\n%s", traceback.format_exc())
        return load_failure_message(spec, exc)


class ModelLoad(QObject):
    """One model load, on a daemon thread of its own.

    Loading is one long call into transformers that cannot be interrupted, so
    it does not run on the engine thread the window joins when it closes: a
    window closed mid-load closes at once and the load is abandoned (its
    result, if it ever comes, has no receiver left; a daemon thread does not
    keep the process alive).
    """

    loaded = Signal(object, object)
    failed = Signal(str, str)

    def __init__(self, spec: str, loader=None, threads: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self._loader, self._threads = loader, threads
        self.thread = threading.Thread(target=self._run, name=f"lacuna-load-{spec}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        outcome = load_model_outcome(self.spec, self._loader, self._threads)
        try:
            if isinstance(outcome, str):
                self.failed.emit(self.spec, outcome)
            else:
                self.loaded.emit(*outcome)
        except RuntimeError:  # the window, and this object's receivers, are gone
            pass


class ModelWorker(QObject):
    loaded = Signal(object, object)  # (model handle, ModelInfo)
    failed = Signal(str, str)  # (spec, message)
    listed = Signal(object)  # tuple of (label, spec)
    progress = Signal(str)

    def __init__(self, loader=None, threads: int | None = None) -> None:
        super().__init__()
        self._loader = loader
        self._threads = threads

    @Slot(str)
    def load(self, spec: str) -> None:
        outcome = load_model_outcome(spec, self._loader, self._threads, self.progress.emit)
        if isinstance(outcome, str):
            self.failed.emit(spec, outcome)
        else:
            self.loaded.emit(*outcome)

    def make_load(self, spec: str) -> ModelLoad:
        """A load of ``spec`` with this worker's loader, to run on its own thread (see ModelLoad)."""
        return ModelLoad(spec, self._loader, self._threads)

    @Slot()
    def list_models(self) -> None:
        try:
            self.listed.emit(tuple(list_local_models()))
        except Exception:  # noqa: BLE001
            log.error("model listing failed:\n%s", traceback.format_exc())
            self.listed.emit(())

    @Slot()
    def clean_stale_partials(self) -> None:
        """Delete download leftovers nobody will resume; housekeeping, so it never reports an error."""
        try:
            from engine.hub.cache import clean_stale_partials

            clean_stale_partials()
        except Exception:  # noqa: BLE001
            log.debug("cleaning stale partial downloads failed:\n%s", traceback.format_exc())
