"""Will a model fit? Devices, a memory estimate per precision for the work a user does, and a verdict.

The estimate is for one denoising run at batch ``candidates`` (1 by default)
over a canvas of ``L`` tokens (the document the editor feeds: its tokens,
capped by the model's context and by ``InfillRequest.context_tokens``) with
``H`` masked positions scored per step (the hole, or one block of it). It is
the peak of the run's first step (later steps hold less: engine.sampler
scores only the still-masked rows, and a cached step runs only the block):

    weights   parameters x bytes per parameter of the precision
              (8-bit and 4-bit: bitsandbytes keeps embeddings and norms in 16-bit,
              counted exactly per native family, else as a share of the weights)
    cache     the dual context cache (engine.models.kvcache; on by default for
              the native families): keys and values of every layer at every
              position, 2 x layers x L x kv_heads x head_dim x activation bytes
    working   the larger of two moments of the first step, each on top of the cache:
              * the forward pass: the live activations of one layer at L
                (inference keeps no others; attention goes through SDPA, which
                does not materialise L x L scores): see ``activation_bytes``;
                8/4-bit adds the largest quantised matrix as bitsandbytes
                dequantises it (the compute dtype on a GPU, 8-9 bytes per
                parameter through its CPU kernels' int32/float32 copies);
              * the sampler: H x vocabulary x ``sampler_bytes`` (16 bytes with
                the cache on and greedy decoding: float32 logits, the rows taken
                out of them, the constrained copy and the softmax; 12 with the
                cache off; Gumbel noise in float64 adds 28 when sampling).
    overhead  a fixed runtime share. CPU: 8 MiB, plus the tokenizer in host
              memory once a run has used it, about 1,000 bytes per vocabulary
              entry (measured, engine.bench.fit: the fast tokenizer, Lacuna's
              two encoders built from it and the vocabulary profile). CUDA:
              the CUDA context, 300 MiB (PyTorch measured 274 MiB with lazy
              module loading, which it turns on by default since 1.13:
              pytorch/pytorch#86509), and cuBLAS's workspace, 32 MiB on Hopper
              (4 MiB before it: pytorch/pytorch#120925); not measured here (no
              GPU on the test machines): the GPU figure is the CPU-measured
              tensor terms, which are the same tensors on a GPU, plus this
              constant. MPS: 300 MiB, not measured. The library code itself
              (about 150 MB once per process for torch + transformers' modeling
              code) is not counted: it is paid once, whatever the model.

Checked on this machine's CPU against the measured peak RSS of real runs
(engine/bench/fit.py at LLaDA-8B's and Dream-7B's real widths with one or two
layers; tests/engine/hub/test_fit*.py at small widths): within 20%.

Native families (LLaDA, ...) count exactly from their config: ``family_split``
gives the parameters 8/4-bit loading quantises (the Linear layers of the
blocks) and those it keeps in 16-bit (embedding, head, norms); the loader
quantises exactly those layers and checks this estimate before it loads.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..models import families
from ..models.configs import ParamSplit

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
CUDA_CONTEXT = 300 * MIB     # pytorch/pytorch#86509: 274 MiB with lazy loading (not measured here)
CUBLAS_WORKSPACE = 32 * MIB  # pytorch/pytorch#120925: 32 MiB on sm90+, 4 MiB on big sm80 cards
OVERHEAD = {"cpu": 8 * MIB, "cuda": CUDA_CONTEXT + CUBLAS_WORKSPACE, "mps": 300 * MIB}
DEFAULT_CONTEXT = 512  # the load check's short document, when no context is given
SHORT_HOLE = 32        # its masked tokens: the load check refuses what cannot run even a short fill
DEFAULT_HOLE = 256     # masked tokens when a context but no hole is given: about a paragraph
DEFAULT_VOCAB = 50_000  # when the vocabulary is unknown (before download)
# A loaded fast tokenizer once a run has used it (its encoders and the vocabulary profile built),
# per vocabulary entry, host memory. Measured: Dream's 151,665-entry BPE 144 MiB (engine.bench.fit),
# GPT-2's 50,257 entries 1,085 bytes each; a word-level or WordPiece vocabulary holds less.
TOKENIZER_BYTES_PER_TOKEN = 1000
# The native families whose adapter runs the dual cache by default (engine.models.families;
# a Shape names only the families the fit check counts exactly, those with a ModelConfig).
CACHED_FAMILIES = tuple(f.name for f in families.FAMILIES if f.default_cache == "dual")
# The context the engine gives a family when it is below what the config allows
# (Dream's config inherits Qwen2.5's 131072 positions; its README and generation code use 2048).
FAMILY_CONTEXT = {f.name: f.context for f in families.FAMILIES if f.context}
# Sampler bytes per (masked position x vocabulary entry), engine.sampler and engine.select
# (checked against measured peaks by engine.bench.fit):
LOGITS_BYTES = 4        # the float32 logits a forward pass returns, per candidate
GUMBEL_BYTES = 32       # select.sample_tokens at temperature > 0: uniform draws, the noise,
                        # the scaled logits and their sum, float64, one candidate at a time
SOFTMAX_BYTES = 4       # select.probabilities, one candidate at a time
TOP_P_BYTES = 24        # select.filter_top_k_top_p: sorted values, int64 order, softmax, cumulative sum


def weight_bytes(parameters: int, precision: str, quantized: int | None = None) -> int:
    """Bytes of weights; ``quantized``: how many of the parameters 8/4-bit loading
    quantises (known per family), else a typical share."""
    if precision in ("int8", "int4"):
        quant = parameters * (1 - QUANT_KEPT_16BIT) if quantized is None else quantized
        kept = parameters - quant
        return int(kept * 2 + quant * (BYTES_PER_PARAM[precision] + QUANT_EXTRA[precision]))
    return int(parameters * BYTES_PER_PARAM[precision])


# per-family parameter counts -------------------------------------------------
def family_split(config: dict[str, Any]) -> tuple[str, ParamSplit] | None:
    """(family, split) for a native family's config (engine.models.families and the family's
    ModelConfig.parameter_split), or None (another family, or an incomplete config)."""
    family = families.detect(config)
    config_type = family.config_type() if family is not None else None
    if config_type is None:
        return None
    split = config_type.split_from_dict(config)
    return (family.name, split) if split is not None else None


@dataclass(frozen=True)
class Shape:
    parameters: int
    vocab_size: int | None = None
    hidden_size: int | None = None
    intermediate_size: int | None = None
    num_hidden_layers: int | None = None
    max_context: int | None = None  # tokens the engine feeds this model at most
    family: str | None = None
    quantized: int | None = None  # parameters 8/4-bit loading quantises (native families)
    largest_linear: int | None = None  # parameters of the biggest quantised matrix
    kv_width: int | None = None  # key/value heads x head dimension (the cache's width per layer)

    @property
    def exact(self) -> bool:
        return bool(self.vocab_size and self.hidden_size)

    @property
    def cached(self) -> bool:
        """True when the family runs the dual context cache by default."""
        return self.family in CACHED_FAMILIES


@dataclass(frozen=True)
class Estimate:
    """Bytes a run needs: ``total`` = weights + working + overhead. ``working`` is
    the cache plus the larger of the forward pass's activations and the
    sampler's buffers (they are not alive together); those three are also
    given apart. ``context``: canvas tokens L; ``hole``: masked positions H."""

    precision: str
    device: str
    context: int
    weights: int
    working: int
    overhead: int
    exact: bool  # False when the model's shape is guessed (not downloaded yet)
    hole: int = 0
    cache: int = 0         # the dual context cache (0 when off)
    activations: int = 0   # one layer's live activations at L (and the dequantised matrix)
    sampler: int = 0       # the sampler's buffers over H x vocabulary

    @property
    def total(self) -> int:
        return self.weights + self.working + self.overhead


def tokenizer_bytes(vocab: int) -> int:
    """Host memory of a fast tokenizer of ``vocab`` entries once a run has used it
    (part of a CPU estimate's overhead)."""
    return int(vocab) * TOKENIZER_BYTES_PER_TOKEN


def sampler_bytes(cache: bool, candidates: int = 1, sampling: bool = False, top_p: bool = False) -> int:
    """Peak bytes engine.sampler holds per (masked position x vocabulary entry) in
    the first step of a run, for ``candidates`` sharing one forward pass.

    The model returns float32 logits [B, H, V]; with the cache on (or B > 1)
    each candidate takes its rows out of them (advanced indexing copies);
    ``select.suppress`` clones them into the candidate's constrained logits,
    kept until its step; the step then adds, one candidate at a time, the
    softmax (4 bytes) or, when ``sampling`` (temperature > 0), float64
    Gumbel-max noise (32 bytes); ``top_p`` (< 1) sorts each row while
    constraining it (24 bytes at that moment, one candidate at a time).
    Source: the code of engine.sampler._run/_constrain/_step and
    engine.select. Measured at LLaDA-8B's widths (engine.bench.fit): 16.1,
    12.1 without the cache, 45.5 sampling, 37.7 with top-p."""
    b = max(1, int(candidates))
    held = 2 * LOGITS_BYTES * b + (LOGITS_BYTES * b if cache or b > 1 else 0)
    step = GUMBEL_BYTES if sampling else SOFTMAX_BYTES
    if top_p:
        step = max(step, TOP_P_BYTES)
    return held + step


def activation_bytes(shape: Shape, context: int, act: int, cache: bool) -> int:
    """Peak bytes of one layer's live activations over ``context`` tokens (batch 1).

    Native families (engine.models.llada / dream, through engine.models.blocks):
    the attention half holds the layer's input, its norm, q, the rotated q
    and k, v, with the rotary embedding's float32 temporaries for q (its
    float32 copy when the dtype is 16-bit, rotate_half, two products and
    their sum: 16 or 12 bytes per channel); the MLP half holds the input, the
    new residual, its norm and SwiGLU's silu(gate), up and their product (3
    x intermediate), and in LLaDA's block also q, k and v, which stay alive
    until the block returns. With the cache on, k and v are the cache's and
    are counted there. Other families: 4 x hidden + 2 x intermediate per
    token. Checked against the live tensor bytes of one block at LLaDA-8B's
    and Dream-7B's widths (1024 tokens, cache off): within 1% in bf16, 7%
    under in float32 (the CPU's allocator adds up to a third in RSS at
    sizes under its 32 MiB mmap threshold)."""
    L = int(context)
    if not shape.hidden_size:
        return int(0.02 * shape.parameters * act / 2)  # shape unknown (not downloaded): a share of the model
    d = int(shape.hidden_size)
    ff = int(shape.intermediate_size or 4 * d)
    if shape.family in ("llada", "dream", "dreamon"):
        kv = int(shape.kv_width or d)
        current_kv = 0 if cache else 2 * kv * act
        rotary = (16 if act < 4 else 12) * d
        attention = 4 * d * act + current_kv + rotary
        mlp = (3 * d + 3 * ff) * act
        if shape.family == "llada":
            mlp += d * act + current_kv
        return L * max(attention, mlp)
    return L * (4 * d + 2 * ff) * act


def kv_cache_bytes(shape: Shape, context: int, act: int, candidates: int = 1) -> int:
    """Bytes of the dual context cache: 2 x layers x L x kv width x activation bytes
    per candidate (engine.models.kvcache.DualCache); 0 when the shape is unknown."""
    if not (shape.num_hidden_layers and (shape.kv_width or shape.hidden_size)):
        return 0
    kv = int(shape.kv_width or shape.hidden_size)
    return 2 * int(shape.num_hidden_layers) * int(context) * kv * act * max(1, int(candidates))


def estimate(shape: Shape, precision: str = "bf16", device: str = "cpu",
             context: int | None = None, *, hole: int | None = None, cache: bool | None = None,
             candidates: int = 1, sampling: bool = False, top_p: bool = False) -> Estimate:
    """Bytes one run needs (see the module's docstring for each term).

    ``context``: canvas tokens L the editor feeds (None: the load check's
    short document, DEFAULT_CONTEXT tokens with SHORT_HOLE masked), capped at
    the model's context; ``hole``: masked positions scored per step (None:
    DEFAULT_HOLE), capped at L;
    ``cache``: the dual context cache (None: the family's default);
    ``candidates``: samples sharing each forward pass; ``sampling``:
    temperature > 0; ``top_p``: a top-p filter (< 1) is on."""
    limit = shape.max_context
    L = int(context or min(limit or DEFAULT_CONTEXT, DEFAULT_CONTEXT))
    if limit:
        L = min(L, int(limit))
    L = max(1, L)
    if hole is None:
        hole = DEFAULT_HOLE if context else SHORT_HOLE
    H = max(1, min(int(hole), L))
    on = shape.cached if cache is None else bool(cache) and shape.cached
    act = ACT_BYTES[precision]
    vocab = shape.vocab_size or DEFAULT_VOCAB
    b = max(1, int(candidates))
    kv = kv_cache_bytes(shape, L, act, b) if on else 0
    activations = b * activation_bytes(shape, L, act, on)
    kind = device.split(":")[0]
    if precision in ("int8", "int4") and shape.largest_linear:
        # bitsandbytes dequantises one matrix at a time: to the compute dtype on a GPU, through
        # int32/float32 copies on a CPU (loading quantises in small chunks, engine.models.quantize)
        activations += shape.largest_linear * (DEQUANT_BYTES_CPU[precision] if kind == "cpu" else act)
    sampler = H * vocab * sampler_bytes(on, b, sampling, top_p)
    overhead = OVERHEAD.get(kind, OVERHEAD["cuda"]) + (tokenizer_bytes(vocab) if kind == "cpu" else 0)
    return Estimate(precision, device, L, weight_bytes(shape.parameters, precision, shape.quantized),
                    kv + max(activations, sampler), overhead, shape.exact, H, kv, activations, sampler)


def estimate_for_config(config: dict[str, Any], precision: str, device: str = "cpu",
                        context: int | None = None, **work: Any) -> Estimate | None:
    """The estimate for a model whose config.json is at hand (what the loader checks);
    ``work``: estimate's keyword arguments (hole, cache, candidates, sampling, top_p)."""
    shape = shape_from_config(config)
    return estimate(shape, precision, device, context, **work) if shape is not None else None


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
        if family in FAMILY_CONTEXT:
            ctx = min(int(ctx), FAMILY_CONTEXT[family]) if ctx else FAMILY_CONTEXT[family]
        # the formula is exact for the family; a counted total (safetensors headers) agrees with it
        return Shape(split.total, vocab, hidden, inter, layers, ctx, family, split.quantized, largest,
                     _kv_width(cfg, hidden))
    if parameters is None and cfg.get("n_blocks") and cfg.get("cond_dim") and hidden and vocab:
        parameters = dit_parameters(int(hidden), int(cfg["n_blocks"]), int(cfg["cond_dim"]), int(vocab))
    if parameters is None:
        if not (hidden and layers and vocab):
            return None
        ff = inter or 4 * hidden
        parameters = int(layers * (4 * hidden * hidden + 2 * hidden * ff) + vocab * hidden)
    return Shape(int(parameters), vocab, hidden, inter, layers, ctx, kv_width=_kv_width(cfg, hidden))


def _kv_width(cfg: dict[str, Any], hidden: Any) -> int | None:
    """Key/value heads x head dimension, from the config's head counts (None when unknown)."""
    heads = cfg.get("num_attention_heads") or cfg.get("n_heads") or cfg.get("n_head")
    if not (hidden and heads):
        return None
    kv = cfg.get("num_key_value_heads") or cfg.get("n_kv_heads") or heads
    try:
        return int(kv) * (int(hidden) // int(heads))
    except (TypeError, ValueError, ZeroDivisionError):
        return None


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
        from lacuna.engine import resources

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
            return _entry_context(shape, entry)
    if entry is not None and entry.get("shape") and params:
        shape = shape_from_config(entry["shape"], params)
        return _entry_context(shape, entry) if shape is not None else None
    if params:
        return Shape(int(params), max_context=(entry or {}).get("context_length"))
    return None


def _entry_context(shape: Shape, entry: dict[str, Any] | None) -> Shape:
    """The catalog's context length where it is below the config's (what the engine feeds)."""
    limit = (entry or {}).get("context_length")
    if isinstance(limit, int) and limit > 0 and (shape.max_context is None or limit < shape.max_context):
        return replace(shape, max_context=limit)
    return shape


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


# 8-bit and 4-bit, one truth for the verdicts, the model manager and the CLI. The loader
# (engine.models.loader) quantises the blocks of the native families only, on CUDA and on
# the CPU alike (bitsandbytes runs on CPUs from 0.45), and refuses MPS. On a CPU both load
# and fill, as fast as bf16 at best (benchmarks/bench_quant_cpu.py measures it):
# they save memory, not time.
QUANT_FAMILIES = families.quantizing()
QUANT_NOT_NATIVE = "8/4-bit loading is for LLaDA, Dream and LLaDA-MoE only"
QUANT_NOT_ON_MPS = "8/4-bit needs bitsandbytes, which does not run on Apple's MPS"
QUANT_INSTALL = "needs bitsandbytes: pip install 'lacuna-editor[quant]'"
QUANT_ON_CPU = "8/4-bit runs on the CPU through bitsandbytes: it saves memory, not time"


def quantization_refused(shape: Shape, device: Device) -> str | None:
    """Why 8/4-bit cannot load ``shape`` on ``device`` whatever is installed, or None
    when it can (bitsandbytes may still need installing: QUANT_INSTALL)."""
    if shape.family not in QUANT_FAMILIES:
        return QUANT_NOT_NATIVE
    if device.kind == "mps":
        return QUANT_NOT_ON_MPS
    return None


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
    context: int = 0                 # canvas tokens the verdict is for
    hole: int = 0                    # masked positions per step it is for
    longest: int | None = None       # the longest canvas that fits at this hole (0: none; None: n/a)
    max_context: int | None = None   # the model's context, when known
    estimate: Estimate | None = None


FITS = 0.85  # a need up to this share of the free memory "fits"; more is "tight"


def verdict(need: int, available: int, total: int) -> str:
    if need <= FITS * available:
        return "fits"
    if need <= available or need <= 0.9 * total:
        return "tight"
    return "won't fit"


PRECISIONS = ("bf16", "int8", "int4")
LONGEST_SEARCH = 1 << 20  # tokens: the search bound for a model whose context is unknown


def longest_context(shape: Shape, precision: str, device: Device, **work: Any) -> int:
    """The longest canvas (tokens, up to the model's context) whose estimate on
    ``device`` "fits" (at most FITS of its free memory) with the same work
    (hole, cache, candidates, ...; estimate's keywords); 0 when not even a
    canvas of the hole alone fits. The estimate grows with the canvas, so a
    binary search finds it."""
    hole = max(1, int(work.pop("hole", None) or DEFAULT_HOLE))

    def fits(length: int) -> bool:
        est = estimate(shape, precision, device.label, length, hole=min(hole, length), **work)
        return est.total <= FITS * device.available

    high = int(shape.max_context or LONGEST_SEARCH)
    low = min(hole, high)
    if not fits(low):
        return 0
    if fits(high):
        return high
    while high - low > 1:  # fits(low), not fits(high)
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def fit_model(name_or_entry: str | dict[str, Any], devices: list[Device] | None = None,
              context: int | None = None, *, hole: int | None = None, cache: bool | None = None,
              candidates: int = 1, sampling: bool = False, top_p: bool = False,
              context_tokens: int | None = None) -> list[Fit]:
    """Verdicts for bf16/fp16, 8-bit and 4-bit on the best device (CUDA, else MPS, else CPU)
    for the work the editor will do: a canvas of ``context`` tokens (None: the
    model's whole context), capped by the model's context and ``context_tokens``
    (InfillRequest.context_tokens), with ``hole`` masked tokens (None:
    DEFAULT_HOLE); the other keywords are estimate's. Each Fit also carries the
    longest canvas that fits at that hole."""
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
        refused = quantization_refused(shape, device) if precision in ("int8", "int4") else None
        if refused:
            out.append(Fit(precision, device.label, 0, device.available, device.total, "n/a", refused,
                           shape.exact))
            continue
        view = shape if not context_tokens else replace(
            shape, max_context=min(int(context_tokens), shape.max_context or int(context_tokens)))
        length = int(context or view.max_context or DEFAULT_CONTEXT)
        est = estimate(view, prec, device.label, length, hole=hole, cache=cache, candidates=candidates,
                       sampling=sampling, top_p=top_p)
        # the hole asked for, not the estimate's (capped at this canvas): a longer document holds all of it
        longest = longest_context(view, prec, device, hole=hole or est.hole, cache=cache, candidates=candidates,
                                  sampling=sampling, top_p=top_p)
        said = verdict(est.total, device.available, device.total)
        notes = []
        if precision in ("int8", "int4") and not bitsandbytes_available():
            notes.append(QUANT_INSTALL)
        if said != "fits" and est.cache and cache is None:
            off = estimate(view, prec, device.label, length, hole=hole, cache=False, candidates=candidates,
                           sampling=sampling, top_p=top_p)
            if verdict(off.total, device.available, device.total) == "fits":
                from .fmt import human_bytes

                notes.append(f"fits with the context cache off (needs {human_bytes(off.total)}; slower)")
        out.append(Fit(prec, device.label, est.total, device.available, device.total, said, "; ".join(notes),
                       est.exact, est.context, est.hole, longest, view.max_context, est))
    return out
