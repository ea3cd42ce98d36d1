"""load_model: a catalog id, a Hugging Face repo id already in the local cache,
or a local folder -> a DiffusionModel. Never runs remote code, never downloads."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from .. import resources
from ..errors import ModelLoadError
from ..hub import catalog_entry, local_snapshot
from .masked_lm import MaskedLMAdapter

log = logging.getLogger(__name__)

# Families the catalog knows whose native loaders are not written yet.
_PENDING_FAMILIES = {"llada", "llada_moe", "dream", "mdlm", "sedd"}

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device not in (None, "auto"):
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ModelLoadError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps") from exc
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("device cuda was asked for, but this machine has no usable CUDA GPU")
        if chosen.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("device mps was asked for, but Apple's MPS is not available here")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in (None, "auto"):
        try:
            return _DTYPES[str(dtype).lower()]
        except KeyError:
            raise ModelLoadError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16") from None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    # bf16 halves a forward pass on CPUs with native bf16 units; elsewhere it is emulated and slower.
    return torch.bfloat16 if _cpu_has_bf16() else torch.float32


def resolve_path(name: str) -> Path:
    """Where the weights of ``name`` are on disk; raises ModelLoadError if nowhere."""
    entry = catalog_entry(name)
    if entry is not None and entry.get("bundled"):
        path = resources.path(entry["bundled"])
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"the bundled model {name!r} is missing from this installation ({path})")
        return path
    local = Path(os.path.expanduser(name))
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelLoadError(f"{local} has no config.json, so it is not a model folder")
        return local
    if local.suffix or os.sep in name and not _looks_like_repo_id(name):
        raise ModelLoadError(f"no model folder at {local}")
    snapshot = local_snapshot(name)
    if snapshot is None:
        raise ModelLoadError(
            f"{name!r} is not downloaded: run `lacuna-cli models pull {name}` or open the Model manager"
        )
    return snapshot


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def _check_config(name: str, path: Path) -> dict:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{name}: config.json cannot be read ({exc})") from exc
    model_type = str(config.get("model_type", "")).lower()
    if model_type in _PENDING_FAMILIES or any(f in model_type for f in _PENDING_FAMILIES):
        raise ModelLoadError(f"{name}: the engine cannot load {model_type} models yet (a native loader is planned)")
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        hint = " (it needs remote code, which Lacuna never runs)" if config.get("auto_map") else ""
        raise ModelLoadError(f"{name}: unsupported model type {model_type!r}{hint}")
    return config


# Files from which transformers can build a tokenizer.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                    "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")


def _require_tokenizer(name: str, path: Path) -> None:
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"{name}: the model folder has no tokenizer (tokenizer.json or vocab files), "
            "so text cannot be turned into tokens; copy the tokenizer files into it"
        )


def _require_masked_lm(name: str, config: dict) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = str(config.get("model_type", "")).lower()
    if model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ModelLoadError(
            f"{name}: Lacuna cannot run {model_type or 'this'} models; it runs masked language models "
            "(BERT, RoBERTa, ModernBERT, DistilBERT and their kin) and the diffusion LMs in its catalog"
        )


def load_model(name: str, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None):
    """Load a model for infilling. Offline: only local files are read."""
    path = resolve_path(name)
    config = _check_config(name, path)
    _require_masked_lm(name, config)
    _require_tokenizer(name, path)
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(f"{name}: a fast (tokenizers) tokenizer is required")
        model = AutoModelForMaskedLM.from_pretrained(
            path, dtype=dt, local_files_only=True, trust_remote_code=False
        )
        model.to(dev)
    except ModelLoadError:
        raise
    except torch.OutOfMemoryError as exc:
        raise ModelLoadError(f"{name}: out of memory loading on {dev} in {dt}; try a smaller model or dtype") from exc
    except Exception as exc:  # safetensors, tokenizers and transformers each raise their own types
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"{name}: cannot load ({detail})") from exc
    try:
        adapter = MaskedLMAdapter(name, model, tokenizer, path=str(path))
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    log.info("loaded %s from %s on %s as %s", name, path, dev, dt)
    return adapter
