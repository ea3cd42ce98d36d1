"""Will a model fit? Devices, a memory estimate per precision, and a verdict.

Estimate for one forward pass at batch 1 and context ``L`` (diffusion samplers
keep no KV cache, so nothing grows with the number of steps):

    weights   parameters x bytes per parameter of the precision
              (8-bit and 4-bit: bitsandbytes keeps embeddings and norms in 16-bit,
              counted as a share of the weights)
    logits    L x vocab x (activation bytes + 4): the model's output and one
              float32 copy the sampler works on
    hidden    L x (4 x hidden + 2 x intermediate) x activation bytes: the live
              activations of one layer (inference keeps no others); attention
              goes through SDPA, which does not materialise L x L scores; 8/4-bit
              adds the largest quantised matrix as bitsandbytes dequantises it
              (the compute dtype on a GPU, 8-9 bytes per parameter through its
              CPU kernels' int32/float32 copies)
    overhead  a fixed runtime share: 8 MiB on a CPU, 300 MiB on CUDA/MPS (CUDA and MPS
              not measured here: no GPU on the test machines), plus the tokenizer
              in host memory, about 500 bytes per vocabulary entry (measured: a
              50,257-entry tokenizer.json loaded through tokenizers and
              PreTrainedTokenizerFast holds 23 MiB). The library code
              itself (about 150 MB once per process for torch + transformers'
              modeling code) is not counted: it is paid once, whatever the model.

Checked on this machine's CPU against the measured peak RSS of real loads
(tests/engine/hub/test_fit.py): within 20%.

Native families (LLaDA, ...) count exactly from their config: ``family_split``
gives the parameters 8/4-bit loading quantises (the Linear layers of the
blocks) and those it keeps in 16-bit (embedding, head, norms); the loader
quantises exactly those layers and checks this estimate before it loads.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
GIB = 1 << 30

BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
# bitsandbytes quantises the Linear layers only; ~8% of a typical LM stays in 16-bit
QUANT_KEPT_16BIT = 0.08
QUANT_EXTRA = {"int8": 0.0, "int4": 0.03}  # nf4 block scales (double quantised)
# Bytes per parameter of the largest quantised matrix that bitsandbytes' CPU kernels hold
# while a forward pass dequantises it (measured on a 2048 x 5632 matrix: 4.5-11 for NF4,
# varying from pass to pass, and about 9 for int8; docs/benchmarks.md).
DEQUANT_BYTES_CPU = {"int8": 9, "int4": 8}
ACT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 2, "int4": 2}
OVERHEAD = {"cpu": 8 * MIB, "cuda": 300 * MIB, "mps": 300 * MIB}
DEFAULT_CONTEXT = 512
DEFAULT_VOCAB = 50_000  # when the vocabulary is unknown (before download)
TOKENIZER_BYTES_PER_TOKEN = 500  # a loaded fast tokenizer, per vocabulary entry (host memory)


def weight_bytes(parameters: int, precision: str, quantized: int | None = None) -> int:
    """Bytes of weights; ``quantized``: how many of the parameters 8/4-bit loading
    quantises (known per family), else a typical share."""
    if precision in ("int8", "int4"):
        quant = parameters * (1 - QUANT_KEPT_16BIT) if quantized is None else quantized
        kept = parameters - quant
        return int(kept * 2 + quant * (BYTES_PER_PARAM[precision] + QUANT_EXTRA[precision]))
    return int(parameters * BYTES_PER_PARAM[precision])


# per-family parameter counts -------------------------------------------------
@dataclass(frozen=True)
class ParamSplit:
    quantized: int  # parameters in the Linear layers 8/4-bit loading quantises
    kept: int       # parameters that stay 16-bit: embeddings, output head, norms

    @property
    def total(self) -> int:
        return self.quantized + self.kept


def _llada_split(cfg: dict[str, Any]) -> ParamSplit:
    """LLaDA / iLLaDA (engine/models/llada.py): blocks of q, k, v, attn_out, ff_proj,
    up_proj, ff_out (quantised) plus two norms; wte, ln_f and an untied head kept."""
    d, layers, heads = int(cfg["d_model"]), int(cfg["n_layers"]), int(cfg["n_heads"])
    kv = int(cfg.get("n_kv_heads") or heads)
    ff = int(cfg.get("mlp_hidden_size") or int(cfg.get("mlp_ratio", 4)) * d)
    vocab = int(cfg.get("embedding_size") or cfg["vocab_size"])
    hd = d // heads
    linear = d * heads * hd + 2 * d * kv * hd + heads * hd * d + 3 * d * ff
    embeddings = vocab * d * (1 if cfg.get("weight_tying") else 2)
    return ParamSplit(layers * linear, embeddings + (2 * layers + 1) * d)


def _dream_split(cfg: dict[str, Any]) -> ParamSplit:
    """Dream / DiffuCoder (engine/models/dream.py): q/k/v (with their biases), o_proj and
    the SwiGLU MLP quantised, the q/k/v biases themselves kept 16-bit (bitsandbytes keeps
    a layer's bias in the compute dtype); norms, embed_tokens and the untied lm_head kept."""
    d, layers, heads = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["num_attention_heads"])
    kv = int(cfg.get("num_key_value_heads") or heads)
    ff, vocab = int(cfg["intermediate_size"]), int(cfg["vocab_size"])
    hd = d // heads
    quantized = (d * heads * hd + 2 * d * kv * hd) + heads * hd * d + 3 * d * ff
    kept = (heads * hd + 2 * kv * hd) + 2 * d
    return ParamSplit(layers * quantized, layers * kept + 2 * vocab * d + d)


def _llada_moe_split(cfg: dict[str, Any]) -> ParamSplit:
    """LLaDA-MoE (engine/models/llada_moe.py): attention projections, experts, shared
    experts and dense MLPs quantised; attention biases (when the config has them),
    routers, expert biases, norms, embed_tokens and lm_head kept. Every expert counts: all stay in memory."""
    d, layers, heads = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["num_attention_heads"])
    kv = int(cfg.get("num_key_value_heads") or heads)
    hd = d // heads
    experts, vocab = int(cfg["num_experts"]), int(cfg["vocab_size"])
    freq = cfg.get("moe_layer_freq") or [1] * layers
    shared = cfg.get("shared_expert_intermediate_size")
    attention = 2 * d * heads * hd + 2 * d * kv * hd
    biased = bool(cfg.get("attention_bias"))
    quantized = kept = 0
    for i in range(layers):
        kept += 2 * d + (2 * hd if cfg.get("qk_layernorm") else 0)
        quantized += attention
        if biased:
            kept += 2 * heads * hd + 2 * kv * hd
        if freq[i]:
            quantized += experts * 3 * d * int(cfg["expert_intermediate_size"]) + (3 * d * int(shared) if shared else 0)
            kept += experts * d + (experts if cfg.get("moe_router_enable_expert_bias") else 0)
        else:
            quantized += 3 * d * int(cfg["dense_intermediate_size"])
    return ParamSplit(quantized, kept + 2 * vocab * d + d)


def _family_is(name: str):
    def detect(config: dict[str, Any]) -> bool:
        from .catalog import family_from_config

        return family_from_config(config) == name
    return detect


# family -> (does this config belong to it, its split), tried in this order. Other native families add theirs.
FAMILY_SPLITS: dict[str, tuple[Any, Any]] = {
    "llada_moe": (_family_is("llada_moe"), _llada_moe_split),  # before llada: released as model_type "llada"
    "llada": (lambda c: str(c.get("model_type", "")).lower() == "llada", _llada_split),
    "dream": (_family_is("dream"), _dream_split),
}


def family_split(config: dict[str, Any]) -> tuple[str, ParamSplit] | None:
    """(family, split) for a native family's config, or None (unknown or incomplete config)."""
    for family, (detect, split) in FAMILY_SPLITS.items():
        if detect(config):
            try:
                return family, split(config)
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                return None
    return None


@dataclass(frozen=True)
class Shape:
    parameters: int
    vocab_size: int | None = None
    hidden_size: int | None = None
    intermediate_size: int | None = None
    num_hidden_layers: int | None = None
    max_context: int | None = None
    family: str | None = None
    quantized: int | None = None  # parameters 8/4-bit loading quantises (native families)
    largest_linear: int | None = None  # parameters of the biggest quantised matrix

    @property
    def exact(self) -> bool:
        return bool(self.vocab_size and self.hidden_size)


@dataclass(frozen=True)
class Estimate:
    precision: str
    device: str
    context: int
    weights: int
    working: int
    overhead: int
    exact: bool  # False when the model's shape is guessed (not downloaded yet)

    @property
    def total(self) -> int:
        return self.weights + self.working + self.overhead


def tokenizer_bytes(vocab: int) -> int:
    """Host memory of a loaded fast tokenizer of ``vocab`` entries (part of a CPU estimate's overhead)."""
    return int(vocab) * TOKENIZER_BYTES_PER_TOKEN


def estimate(shape: Shape, precision: str = "bf16", device: str = "cpu",
             context: int | None = None) -> Estimate:
    L = int(context or min(shape.max_context or DEFAULT_CONTEXT, DEFAULT_CONTEXT))
    act = ACT_BYTES[precision]
    vocab = shape.vocab_size or DEFAULT_VOCAB
    logits = L * vocab * (act + (0 if act == 4 else 4))
    if shape.hidden_size:
        inter = shape.intermediate_size or 4 * shape.hidden_size
        hidden = L * (4 * shape.hidden_size + 2 * inter) * act
    else:
        hidden = int(0.02 * shape.parameters * act / 2)
    kind = device.split(":")[0]
    if precision in ("int8", "int4") and shape.largest_linear:
        # bitsandbytes dequantises one matrix at a time: to the compute dtype on a GPU, through
        # int32/float32 copies on a CPU (loading quantises in small chunks, engine.models.quantize)
        hidden += shape.largest_linear * (DEQUANT_BYTES_CPU[precision] if kind == "cpu" else act)
    overhead = OVERHEAD.get(kind, OVERHEAD["cuda"]) + (tokenizer_bytes(vocab) if kind == "cpu" else 0)
    return Estimate(precision, device, L, weight_bytes(shape.parameters, precision, shape.quantized),
                    logits + hidden, overhead, shape.exact)


def estimate_for_config(config: dict[str, Any], precision: str, device: str = "cpu",
                        context: int | None = None) -> Estimate | None:
    """The estimate for a model whose config.json is at hand (what the loader checks)."""
    shape = shape_from_config(config)
    return estimate(shape, precision, device, context) if shape is not None else None


# shapes ----------------------------------------------------------------------
def shape_from_config(config: dict[str, Any], parameters: int | None = None) -> Shape | None:
    cfg = dict(config)
    for nested in ("text_config", "llm_config"):
        if isinstance(cfg.get(nested), dict):
            cfg = {**cfg[nested], **{k: v for k, v in cfg.items() if k not in cfg[nested]}}
    model = cfg.get("model")
    if isinstance(model, dict) and isinstance(cfg.get("tokens"), int):
        # SEDD's hydra-style config: the DiT's sizes under "model", the mask after the tokens
        cfg = {"hidden_size": model.get("hidden_size"), "n_blocks": model.get("n_blocks"),
               "cond_dim": model.get("cond_dim"), "vocab_size": cfg["tokens"] + 1,
               "max_position_embeddings": model.get("length")}
    hidden = cfg.get("hidden_size") or cfg.get("d_model") or cfg.get("n_embd") or cfg.get("hidden_dim")
    inter = cfg.get("intermediate_size") or cfg.get("d_ff") or cfg.get("n_inner") or cfg.get("mlp_hidden_size")
    layers = (cfg.get("num_hidden_layers") or cfg.get("n_layers") or cfg.get("n_layer") or cfg.get("num_layers")
              or cfg.get("n_blocks"))
    vocab = cfg.get("vocab_size") or cfg.get("embedding_size")
    ctx = (cfg.get("max_position_embeddings") or cfg.get("max_sequence_length") or cfg.get("n_positions")
           or cfg.get("model_max_length") or cfg.get("model_length"))
    native = family_split(cfg)
    if native is not None:
        family, split = native
        vocab = cfg.get("embedding_size") or vocab
        largest = int(hidden) * int(inter) if hidden and inter else None
        # the formula is exact for the family; a counted total (safetensors headers) agrees with it
        return Shape(split.total, vocab, hidden, inter, layers, ctx, family, split.quantized, largest)
    if parameters is None and cfg.get("n_blocks") and cfg.get("cond_dim") and hidden and vocab:
        parameters = dit_parameters(int(hidden), int(cfg["n_blocks"]), int(cfg["cond_dim"]), int(vocab))
    if parameters is None:
        if not (hidden and layers and vocab):
            return None
        ff = inter or 4 * hidden
        parameters = int(layers * (4 * hidden * hidden + 2 * hidden * ff) + vocab * hidden)
    return Shape(int(parameters), vocab, hidden, inter, layers, ctx)


def dit_parameters(hidden: int, blocks: int, cond_dim: int, vocab: int, mlp_ratio: int = 4) -> int:
    """Parameters of MDLM's and SEDD's DiT (engine.models.dit.DiTShape.parameter_count):
    input and output embeddings, a 256-wide sigma MLP, and per block attention,
    MLP and a 6-way adaLN from cond_dim."""
    d, c, r = hidden, cond_dim, mlp_ratio
    block = 2 * d + 4 * d * d + 2 * r * d * d + r * d + d + 6 * c * d + 6 * d
    return vocab * d + (256 * c + c + c * c + c) + blocks * block + d + d * vocab + vocab + 2 * c * d + 2 * d


def count_safetensors_parameters(folder: Path) -> int | None:
    """Exact parameter count from the safetensors headers (no tensor is read)."""
    total = 0
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    for file in files:
        try:
            with open(file, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                if n <= 0 or n > 100 * MIB:
                    return None
                header = json.loads(fh.read(n))
        except (OSError, ValueError):
            return None
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info.get("shape", []):
                count *= int(dim)
            total += count
    return total or None


def shape_for(name_or_entry: str | dict[str, Any]) -> Shape | None:
    """The best shape we know for a catalog entry, a repo id or a local folder; offline."""
    from . import catalog, local_snapshot

    entry = catalog.catalog_entry(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
    folder: Path | None = None
    if isinstance(name_or_entry, str) and Path(name_or_entry).is_dir():
        folder = Path(name_or_entry)
    elif entry is not None and entry.get("bundled"):
        from engine import resources

        candidate = resources.path(entry["bundled"])
        folder = candidate if candidate.is_dir() else None
    else:
        key = name_or_entry if isinstance(name_or_entry, str) else (entry or {}).get("id", "")
        folder = local_snapshot(key) if key else None
    params = (entry or {}).get("parameters")
    if folder is not None and (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        counted = count_safetensors_parameters(folder)
        shape = shape_from_config(config, counted or params)
        if shape is not None:
            return shape
    if entry is not None and entry.get("shape") and params:
        return shape_from_config(entry["shape"], params)
    if params:
        return Shape(int(params), max_context=(entry or {}).get("context_length"))
    return None


# devices ---------------------------------------------------------------------
@dataclass(frozen=True)
class Device:
    kind: str              # cuda | mps | cpu
    index: int
    name: str
    total: int             # bytes
    available: int         # bytes free now (CUDA: mem_get_info; CPU: MemAvailable)
    bf16: bool = True

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.index}" if self.kind == "cuda" else self.kind


def cpu_memory() -> tuple[int, int]:
    """(total, available) bytes of RAM: psutil, /proc/meminfo, sysconf, or Windows' API."""
    try:
        import psutil  # type: ignore[import-not-found]

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        pass
    try:
        info = {}
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
        total = info["MemTotal"]
        return total, info.get("MemAvailable", info.get("MemFree", total // 2))
    except (OSError, KeyError, ValueError):
        pass
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import ctypes

        class MEMORYSTATUSEX(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

        status = MEMORYSTATUSEX()
        status.dwLength = ctypes.sizeof(MEMORYSTATUSEX)
        ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))  # type: ignore[attr-defined]
        return int(status.ullTotalPhys), int(status.ullAvailPhys)
    try:  # pragma: no cover - macOS and other Unixes
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError):
            avail = total // 2
        return int(total), int(avail)
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 0, 0


def detect_devices() -> list[Device]:
    """CUDA GPUs, Apple MPS, and the CPU (always last).

    Uses torch when it is already imported (cuda.mem_get_info: free memory as
    the driver sees it); otherwise asks the NVIDIA driver through NVML (ctypes,
    no torch import: the check stays fast and safe on any thread).
    """
    devices: list[Device] = []
    total, avail = cpu_memory()
    torch = sys.modules.get("torch")
    gpus = _torch_cuda(torch) if torch is not None else None
    if gpus is None:
        gpus = _nvml_gpus() or []
    devices.extend(gpus)
    mps = _mps_device(torch, total, avail)
    if mps is not None:
        devices.append(mps)
    devices.append(Device("cpu", 0, _cpu_name(), total, avail, _cpu_has_bf16()))
    return devices


def _cpu_has_bf16() -> bool:
    """Native bf16 units (the engine runs bf16 on such CPUs, float32 elsewhere)."""
    import platform

    if sys.platform == "darwin" and platform.machine() == "arm64":
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _torch_cuda(torch: Any) -> list[Device] | None:
    try:
        if not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            try:
                free, tot = torch.cuda.mem_get_info(i)
            except Exception:  # noqa: BLE001 - some drivers refuse
                free, tot = props.total_memory, props.total_memory
            out.append(Device("cuda", i, props.name, int(tot), int(free), props.major >= 8))
        return out
    except Exception:  # noqa: BLE001 - a broken driver must not break the fit check
        return None


def _nvml_gpus() -> list[Device] | None:
    """NVIDIA GPUs through the driver's NVML library; None where there is no driver."""
    import ctypes

    lib = None
    for name in ("libnvidia-ml.so.1", "libnvidia-ml.so", "nvml.dll"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        return None

    class Memory(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    try:
        if lib.nvmlInit_v2() != 0:
            return None
        try:
            count = ctypes.c_uint(0)
            if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
                return None
            out = []
            for i in range(count.value):
                handle = ctypes.c_void_p()
                if lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != 0:
                    continue
                mem = Memory()
                lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem))
                buf = ctypes.create_string_buffer(96)
                lib.nvmlDeviceGetName(handle, buf, 96)
                major, minor = ctypes.c_int(0), ctypes.c_int(0)
                lib.nvmlDeviceGetCudaComputeCapability(handle, ctypes.byref(major), ctypes.byref(minor))
                out.append(Device("cuda", i, buf.value.decode(errors="replace") or f"GPU {i}", int(mem.total),
                                  int(mem.free), major.value >= 8))
            return out
        finally:
            lib.nvmlShutdown()
    except (AttributeError, OSError):
        return None


def _mps_device(torch: Any, total: int, avail: int) -> Device | None:
    import platform

    if torch is not None:
        try:
            if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
                return None
            limit = total
            rec = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
            if rec is not None:
                limit = int(rec())
            return Device("mps", 0, "Apple GPU (MPS)", limit, min(limit, avail), True)
        except Exception:  # noqa: BLE001
            return None
    if sys.platform == "darwin" and platform.machine() == "arm64":
        # unified memory: Metal lets a process use about three quarters of RAM
        limit = int(total * 0.75)
        return Device("mps", 0, "Apple GPU (MPS)", limit, min(limit, avail), True)
    return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "CPU"


def bitsandbytes_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


# verdicts --------------------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    precision: str
    device: str
    need: int
    available: int
    total: int
    verdict: str      # fits | tight | won't fit | n/a
    note: str = ""
    exact: bool = True


def verdict(need: int, available: int, total: int) -> str:
    if need <= 0.85 * available:
        return "fits"
    if need <= available or need <= 0.9 * total:
        return "tight"
    return "won't fit"


PRECISIONS = ("bf16", "int8", "int4")


def fit_model(name_or_entry: str | dict[str, Any], devices: list[Device] | None = None,
              context: int | None = None) -> list[Fit]:
    """Verdicts for bf16/fp16, 8-bit and 4-bit on the best device (CUDA, else MPS, else CPU)."""
    shape = shape_for(name_or_entry)
    devices = devices if devices is not None else detect_devices()
    device = devices[0]
    out: list[Fit] = []
    for precision in PRECISIONS:
        if shape is None:
            out.append(Fit(precision, device.label, 0, device.available, device.total, "n/a",
                           "size unknown until downloaded", False))
            continue
        prec = precision
        if precision == "bf16" and not device.bf16:
            prec = "fp32" if device.kind == "cpu" else "fp16"
        cpu_quant = device.kind == "cpu" and shape.family is not None and bitsandbytes_available()
        if precision in ("int8", "int4") and device.kind != "cuda" and not cpu_quant:
            out.append(Fit(precision, device.label, 0, device.available, device.total, "n/a",
                           "8/4-bit needs CUDA (bitsandbytes)", shape.exact))
            continue
        est = estimate(shape, prec, device.label, context)
        note = ""
        if precision in ("int8", "int4") and not bitsandbytes_available():
            note = "needs bitsandbytes (pip install bitsandbytes)"
        out.append(Fit(prec, device.label, est.total, device.available, device.total,
                       verdict(est.total, device.available, device.total), note, est.exact))
    return out
