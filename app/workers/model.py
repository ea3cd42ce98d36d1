"""Model loads (each on a daemon thread of its own) and the model worker that lists the local ones."""
from __future__ import annotations

import inspect
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
    path = model.path
    if not path:
        return ""
    p = Path(str(path))
    return p.name if p.parent.name == "snapshots" else ""


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model")


def _loadable_family(config: dict) -> bool:
    """A native family (engine.models.families, torch-free) or a masked LM the catalog knows."""
    from lacuna.engine.models import families

    return families.detect(config) is not None or families.family_name(config) in ("bert", "modernbert")


def _runnable(config: dict) -> bool:
    """True when the engine has a loader for this config.json: a native family's
    (engine.models.families, torch-free) or one of transformers' masked LMs."""
    if _loadable_family(config):
        return True
    model_type = str(config.get("model_type", "")).lower()
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES
    except Exception:  # noqa: BLE001 - without the table, let the engine's own message speak
        return True
    return model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def refusal_reason(spec: str) -> str | None:
    """Why a local model folder cannot be used, in plain words, or None when the
    folder looks usable (or is no folder): no config, no tokenizer, or an
    architecture Lacuna does not run (a GPT-2, say)."""
    p = Path(os.path.expanduser(spec))
    if not p.is_dir():
        return None
    cfg = p / "config.json"
    if not cfg.is_file():
        return "the folder has no config.json, so it is not a model folder"
    try:
        config = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its config.json cannot be read"
    if not isinstance(config, dict):
        return "its config.json is not a JSON object"
    model_type = str(config.get("model_type", "")).lower()
    if model_type and not _runnable(config):
        arch = (config.get("architectures") or [model_type])[0]
        return (f"it is a {arch} model, an architecture Lacuna cannot run (it runs masked language "
                "and masked diffusion models such as BERT, ModernBERT, LLaDA and Dream)")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        return "it has no tokenizer (tokenizer.json or vocab.txt), so its text cannot be turned into tokens"
    return None


def load_failure_message(spec: str, exc: BaseException) -> str:
    """One plain sentence (without its full stop) on why ``spec`` did not load:
    never a raw transformers exception or a traceback."""
    from .infill import readable_error

    name = Path(spec).name if Path(os.path.expanduser(spec)).is_dir() else spec
    reason = refusal_reason(spec)
    if reason is None:
        detail = readable_error(exc)
        for prefix in ("The model could not be loaded: ", f"{spec}: "):
            if detail.startswith(prefix):
                detail = detail[len(prefix):]
        detail = detail.splitlines()[0].strip() if detail.strip() else type(exc).__name__
        if len(detail) > 160:
            detail = detail[:157].rstrip() + "…"
        reason = detail.rstrip(".")
    return f"The model “{name}” could not be loaded: {reason}"


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
                config = json.loads(cfg.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            has_weights = any(snap.glob("*.safetensors")) or any(snap.glob("*.bin"))
            if has_weights and isinstance(config, dict) and (_loadable_family(config) or "llada" in repo.lower()
                                                             or "dream" in repo.lower()):
                found.append((repo, repo))
            break
    return found


def list_local_models() -> list[tuple[str, str]]:
    """Models the picker offers besides the starter: what engine.hub knows is on
    disk (installed by the model manager, user folders, cached catalog models),
    then any other loadable model found in the Hugging Face cache."""
    out: list[tuple[str, str]] = []
    try:
        from lacuna.engine.hub import manage

        for m in manage.list_models():
            if m.id != "starter" and m.loadable and m.status in ("installed", "cached", "local"):
                out.append((m.name, m.id))
    except Exception:  # noqa: BLE001 - the listing is a convenience
        log.debug("lacuna.engine.hub listing unavailable:\n%s", traceback.format_exc())
    known = {spec.lower() for _, spec in out}
    for label, spec in scan_hf_cache():
        if spec.lower() not in known:
            out.append((label, spec))
    return out


def _takes_progress(loader) -> bool:
    try:
        return "progress" in inspect.signature(loader).parameters
    except (TypeError, ValueError):
        return False


def load_model_outcome(spec: str, loader=None, threads: int | None = None, progress=None):
    """Load a model: (model, ModelInfo), or the one message to show when it fails.
    ``progress(stage, done, total)`` hears how the load goes (see engine.load_model)."""
    t0 = time.perf_counter()
    try:
        if threads and (loader is None or "torch" in sys.modules):
            import torch  # imported here, off the GUI thread

            torch.set_num_threads(threads)
        if loader is None:
            from lacuna.engine import load_model

            loader = load_model
        model = loader(spec, progress=progress) if progress is not None and _takes_progress(loader) else loader(spec)
        info = ModelInfo(
            spec=spec,
            name=str(model.name),
            device=str(model.device),
            dtype=str(model.dtype).replace("torch.", ""),
            context_length=int(model.context_length or 0),
            seconds=time.perf_counter() - t0,
            revision=model_revision(model),
        )
        return model, info
    except Exception as exc:  # noqa: BLE001
        # the window shows one sentence; the details are for LACUNA_LOG=INFO
        log.info("model load failed:\n%s", traceback.format_exc())
        return load_failure_message(spec, exc)


class ModelLoad:
    """One model load, on a daemon thread of its own.

    Loading is one long call into transformers that cannot be interrupted, so
    it does not run on the engine thread the window joins when it closes: a
    window closed mid-load closes at once and the load is abandoned (a daemon
    thread does not keep the process alive). ``report(load, outcome)`` is
    called on that thread with (model, ModelInfo) or the failure message; it
    must only emit a queued signal; so must ``progress(load, stage, done,
    total)``, called on that thread while the weights load.
    """

    def __init__(self, spec: str, report, loader=None, threads: int | None = None, progress=None) -> None:
        self.spec = spec
        self._report = report
        self._progress = progress
        self._loader, self._threads = loader, threads
        self.thread = threading.Thread(target=self._run, name=f"lacuna-load-{spec}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        outcome = load_model_outcome(self.spec, self._loader, self._threads,
                                     self._on_progress if self._progress is not None else None)
        try:
            self._report(self, outcome)
        except RuntimeError:  # the window that asked is gone (its C++ object deleted)
            pass

    def _on_progress(self, stage: str, done: int, total) -> None:
        try:
            self._progress(self, stage, done, total)
        except RuntimeError:  # the window that asked is gone
            pass


class ModelWorker(QObject):
    """Lists the local models and cleans stale downloads, on the engine thread;
    ``make_load`` prepares a load with the window's loader (see ModelLoad)."""

    listed = Signal(object)  # tuple of (label, spec)

    def __init__(self, loader=None, threads: int | None = None) -> None:
        super().__init__()
        self._loader = loader
        self._threads = threads

    def make_load(self, spec: str, report, progress=None) -> ModelLoad:
        return ModelLoad(spec, report, self._loader, self._threads, progress)

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
            from lacuna.engine.hub.cache import clean_stale_partials

            clean_stale_partials()
        except Exception:  # noqa: BLE001
            log.debug("cleaning stale partial downloads failed:\n%s", traceback.format_exc())
