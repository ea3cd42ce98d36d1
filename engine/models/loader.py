"""load_model: a catalog id, a Hugging Face repo id already in the local cache,
or a local folder -> a ModelAdapter. Never runs remote code, never downloads.

The family comes from config.json, through the registry of native families
(engine.models.families: Lacuna's own forward pass, whose module exposes
``load(name, path, config, device, dtype, quantization) -> ModelAdapter``);
everything else goes through transformers' masked-LM classes (family "bert").
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .. import resources
from ..errors import ModelLoadError
from ..hub import catalog_entry, changed_files, local_snapshot
from . import claims, families, load_progress
from .load_progress import Progress, quiet_load, report
from .weights import checkpoint_files
from .masked_lm import MaskedLMAdapter

log = logging.getLogger(__name__)

QUANTIZATIONS = ("int8", "nf4")

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


def _mps_has_bf16() -> bool:
    try:  # bf16 on MPS needs macOS 14; older systems raise here
        torch.ones(1, dtype=torch.bfloat16, device="mps")
        return True
    except (RuntimeError, TypeError):
        return False


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
        return torch.bfloat16 if _mps_has_bf16() else torch.float16
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
        if not (local / "config.json").exists():  # one that is not a regular file is refused when read
            raise ModelLoadError(f"{local} has no config.json, so it is not a model folder")
        return local
    # A dot or a separator means a path, except in a catalog id ("llada-1.5") or a repo id
    # ("GSAI-ML/LLaDA-1.5", "Qwen/Qwen2.5-0.5B"): those are looked up in the cache.
    if entry is None and not _looks_like_repo_id(name) and (local.suffix or os.sep in name):
        raise ModelLoadError(f"no model folder at {local}")
    snapshot = local_snapshot(name)
    if snapshot is None:
        raise ModelLoadError(
            f"{name!r} is not downloaded: run `lacuna-cli models pull {name}` or open the Model manager"
        )
    changed = changed_files(name)
    if changed:  # never run on weights that are not the ones verified at download
        raise ModelLoadError(
            f"{name}: {', '.join(changed[:3])}{' and more' if len(changed) > 3 else ''} changed since "
            f"the download was verified: run `lacuna-cli models pull {name}` to check and repair it")
    return snapshot


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def _read_config(name: str, path: Path) -> dict:
    config = claims.read_json(path / "config.json", name)  # size-capped, never blocks, depth-limited
    if not isinstance(config, dict):
        raise ModelLoadError(f"{name}: config.json is not a JSON object; restore the model's own config.json")
    return config


def native_family(config: dict):
    """The module of the native family that recognises this config
    (engine.models.families), or None."""
    family = families.detect(config)
    return family.load_module() if family is not None else None


def _check_masked_lm(name: str, config: dict) -> None:
    model_type = str(config.get("model_type", "")).lower()
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        hint = " (it needs remote code, which Lacuna never runs)" if config.get("auto_map") else ""
        raise ModelLoadError(f"{name}: unsupported model type {model_type!r}{hint}")


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


def pick_quantization(quantization: str | None, device: torch.device) -> str | None:
    if quantization in (None, "", "none", "bf16", "fp16", "fp32"):
        return None
    q = str(quantization).lower()
    q = {"8bit": "int8", "8-bit": "int8", "int4": "nf4", "4bit": "nf4", "4-bit": "nf4"}.get(q, q)
    if q not in QUANTIZATIONS:
        raise ModelLoadError(f"unknown quantization {quantization!r}: use int8 or nf4")
    if device.type == "mps":
        raise ModelLoadError(f"{q} weights need bitsandbytes, which does not run on Apple's MPS; use bf16")
    return q


def precision_name(dtype: torch.dtype, quantization: str | None) -> str:
    """The fit check's name for what loading will hold: int8, int4, bf16, fp16 or fp32."""
    if quantization is not None:
        return "int4" if quantization == "nf4" else "int8"
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def check_fit(name: str, config: dict, device: torch.device, dtype: torch.dtype, quantization: str | None,
              parameters: int | None = None) -> None:
    """Refuse a load that cannot fit the device at all (engine.hub.fit's estimate, the
    same formula as the model manager's verdict); warn in the log when it is tight.
    ``parameters``: the count from the weights' headers, where the config alone gives
    only an approximation (families without an exact formula: the transformers path)."""
    from ..hub import fit

    precision = precision_name(dtype, quantization)
    shape = claims.network_shape(name, config, parameters)
    if shape is None:
        return
    est = fit.estimate(shape, precision, device.type)
    total = available = 0
    if device.type == "cpu":
        total, available = fit.cpu_memory()
    elif device.type == "cuda":
        try:
            available, total = torch.cuda.mem_get_info(device)
        except RuntimeError:
            return
    if not total:
        return
    gib = 1 << 30
    if est.total > total:
        smaller = "; try --quant nf4" if quantization != "nf4" else ""
        raise ModelLoadError(
            f"{name} needs about {est.total / gib:.1f} GiB in {precision} on {device.type}, "
            f"which has {total / gib:.1f} GiB{smaller}"
        )
    if est.total > available:
        log.warning("%s needs about %.1f GiB in %s; %s has %.1f GiB free", name, est.total / gib, precision,
                    device.type, available / gib)


def _check_built_size(name: str, path: Path, claimed: claims.Claims) -> None:
    """Size the transformers network on the meta device (no memory) and refuse it when it
    is far larger than the weights or gives one of their tensors another shape: a size
    the fit formula does not read (type_vocab_size 10**9) would have from_pretrained
    allocate a tensor the file never had, and a mismatch fails only after its report."""
    if not claimed.parameters:
        return
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    with torch.device("meta"):
        network = AutoModelForMaskedLM.from_config(config)
    built = sum(p.numel() for p in network.parameters())
    if built > claims.PARAMETER_SLACK * claimed.parameters + (1 << 20):
        raise ModelLoadError(
            f"{name}: config.json describes a network of {built:,} parameters, but its weights hold "
            f"{claimed.parameters:,}; the config does not belong to these weights: restore the model's own config.json")
    for key, tensor in network.state_dict().items():
        stored = claimed.shapes.get(key)
        if stored is not None and tuple(stored) != tuple(tensor.shape):
            raise ModelLoadError(
                f"{name}: the weights hold {key} as {list(stored)}, but config.json makes it {list(tensor.shape)}; "
                "restore the model's own config.json")


def load_model(name: str, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
               quantization: str | None = None, progress: Progress | None = None):
    """Load a model for infilling. Offline: only local files are read.

    quantization: None (the dtype), "int8" or "nf4" (bitsandbytes; native
    families only). progress: called on the loading thread as
    ``progress(stage, done, total)`` (total None when unknown) while the
    weights load; transformers draws no progress bar on stderr either way
    (see engine.models.load_progress). Raises ModelLoadError with one line a
    user can act on."""
    with quiet_load(progress):
        return _load_model(name, device, dtype, quantization, progress)


def _load_model(name, device, dtype, quantization, progress):
    path = resolve_path(name)
    config = _read_config(name, path)
    # before any library parses a file of the folder or anything is built (engine.models.claims)
    claimed = claims.check_folder(name, path, config)
    dev = pick_device(device)
    quant = pick_quantization(quantization, dev)
    if quant is not None and dtype in (None, "auto"):
        # 8/4-bit keeps embeddings, head and norms in 16-bit, as the fit check counts them
        dtype = torch.float16 if dev.type == "cuda" and not torch.cuda.is_bf16_supported() else torch.bfloat16
    dt = pick_dtype(dev, dtype)
    family = native_family(config)
    if family is not None:
        check_fit(name, config, dev, dt, quant)
        report(progress, "Loading weights")
        try:
            model = family.load(name, path, config, dev, dt, quant)
        except ModelLoadError as exc:
            if str(exc).startswith(name):
                raise
            raise ModelLoadError(f"{name}: {exc}") from None  # say which model, as every other load error does
        except torch.OutOfMemoryError as exc:
            raise ModelLoadError(f"{name}: out of memory loading on {dev} in {quant or dt}; try --quant nf4 or a smaller model") from exc
        log.info("loaded %s (%s) from %s on %s as %s", name, model.family, path, dev, quant or dt)
        return model
    _check_masked_lm(name, config)
    _require_masked_lm(name, config)
    _require_tokenizer(name, path)
    if quant is not None:
        raise ModelLoadError(f"{name}: 8-bit and 4-bit loading is for the native families (LLaDA, Dream, ...)")
    try:  # safetensors only, as on the native path: a pickle is refused here in one sentence
        checkpoint_files(path)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{name}: {exc}") from None
    check_fit(name, config, dev, dt, None, claimed.parameters)
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    load_progress.install()
    try:
        report(progress, "Reading the tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(f"{name}: a fast (tokenizers) tokenizer is required")
        _check_built_size(name, path, claimed)
        model = AutoModelForMaskedLM.from_pretrained(
            path, dtype=dt, local_files_only=True, trust_remote_code=False, use_safetensors=True
        )
        if dev.type != "cpu":
            report(progress, f"Moving the weights to {dev}")
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
