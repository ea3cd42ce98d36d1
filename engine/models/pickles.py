"""Checkpoints that exist only as a pickle (pytorch_model.bin, *.pth).

A pickle can run code when it is unpickled, so Lacuna never loads one as a
matter of course. With the user's consent it is read once through
``torch.load(weights_only=True)`` (which refuses anything but tensors and
plain containers) and written as safetensors to Lacuna's own cache; every
later load reads the safetensors copy. The Hugging Face cache is left as it is.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import ModelLoadError

_BLOB = re.compile(r"^[0-9a-f]{64}$")


def pickle_checkpoint(folder: Path) -> Path | None:
    """The pickle checkpoint of a folder, if it has one."""
    from .weights import PICKLES

    for name in PICKLES:
        if (folder / name).is_file():
            return folder / name
    return None


def _digest(file: Path) -> str:
    real = file.resolve()
    if _BLOB.match(real.name):  # an HF cache blob is named by its sha256 already
        return real.name
    h = hashlib.sha256()
    with open(real, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def converted_path(file: Path) -> Path:
    """Where the safetensors copy of this pickle lives (keyed by its sha256)."""
    from ..hub.paths import data_dir

    return data_dir() / "converted" / _digest(file)[:32] / "model.safetensors"


def consented_at_download(folder: Path) -> bool:
    """True when ``folder`` is the snapshot of a repo that Lacuna downloaded
    with the user's consent to its pickle weights (``models pull --allow-pickle``
    or the Model manager's question), as the install record says."""
    from ..hub import records

    parts = folder.resolve().parts if folder.exists() else folder.parts
    if len(parts) < 3 or parts[-2] != "snapshots" or not parts[-3].startswith("models--"):
        return False
    repo = parts[-3][len("models--"):].replace("--", "/", 1)
    record = records.get_install(repo)
    return bool(record and record.get("pickle") and record.get("commit") == parts[-1])


def converted_files(name: str, folder: Path) -> list[Path]:
    """The safetensors copy of ``folder``'s pickle, converting it now when the
    user agreed to the pickle at download time; otherwise ModelLoadError saying
    how to agree (or that there is no checkpoint at all)."""
    pickle = pickle_checkpoint(folder)
    if pickle is None:
        raise ModelLoadError(f"{name}: no model.safetensors in {folder}")
    target = converted_path(pickle)
    if target.is_file():
        return [target]
    if consented_at_download(folder):
        return [convert(folder, consent=True)]
    raise ModelLoadError(
        f"{name} has only a pickle checkpoint ({pickle.name}). Lacuna reads it once with "
        "torch.load(weights_only=True) and keeps a safetensors copy, but only with your consent: "
        f"pull it with `lacuna-cli models pull {name} --allow-pickle`, or call "
        "lacuna.engine.models.pickles.convert(folder, consent=True)"
    )


def convert(folder: str | Path, consent: bool | Callable[[str], bool]) -> Path:
    """Convert ``folder``'s pickle checkpoint to safetensors in Lacuna's cache.

    consent: True, or a callable given a one-line question that returns True to
    go ahead. Returns the safetensors path (at once if converted before).
    Raises ModelLoadError when there is no pickle, consent is refused, or the
    file holds anything but tensors."""
    from safetensors.torch import save_file

    folder = Path(folder)
    pickle = pickle_checkpoint(folder)
    if pickle is None:
        raise ModelLoadError(f"{folder} has no pickle checkpoint to convert")
    target = converted_path(pickle)
    if target.is_file():
        return target
    question = (f"{folder.name}/{pickle.name} is a pickle. Read it once with torch.load(weights_only=True) "
                "and keep a safetensors copy?")
    allowed = consent(question) if callable(consent) else consent is True
    if not allowed:
        raise ModelLoadError(f"conversion of {pickle} was not allowed, so it cannot be loaded")
    try:
        state = torch.load(pickle, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error names the forbidden global
        raise ModelLoadError(f"{pickle} cannot be read safely ({str(exc).splitlines()[0]})") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a training checkpoint: its model weights
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelLoadError(f"{pickle} is not a plain state dict of tensors")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    tensors, seen = {}, set()
    for key, value in state.items():
        value = value.contiguous()
        # safetensors refuses tensors that share memory (tied weights): copy the later ones
        if value.numel() and value.untyped_storage().data_ptr() in seen:
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        tensors[key] = value
    save_file(tensors, str(partial), metadata={"source": pickle.name})
    partial.replace(target)
    return target
