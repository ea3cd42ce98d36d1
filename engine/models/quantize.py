"""8-bit and 4-bit (NF4) Linear layers through bitsandbytes, quantised in row chunks.

bitsandbytes quantises a whole matrix in one call; its CPU NF4 kernel widens
it to float32 and buckets it in int32 (about 16 bytes per parameter of the
matrix at once), which is what pushed a CPU load's peak far over the weights.
Both of its schemes are local, so this module feeds them a few rows at a time
and assembles the result:

- LLM.int8() (Dettmers et al. 2022, ``int8_vectorwise_quant``) scales each
  row by its own absolute maximum: any whole rows quantise exactly as they
  would inside the full matrix.
- NF4 (Dettmers et al. 2023, QLoRA; ``quantize_4bit``) scales each block of
  ``blocksize`` consecutive values of the flattened matrix by its own absolute
  maximum: chunks whose length is a multiple of the block size give the same
  packed bytes and block scales as the whole matrix. Only the double
  quantisation of those scales (``compress_statistics``: subtract their mean,
  quantise them in blocks of 256) looks at all blocks; it runs once, on the
  assembled scales (4 bytes per 64 parameters), exactly as bitsandbytes does.

The result is bit-identical to bitsandbytes quantising the whole matrix
(tests/engine/models/test_quantize.py checks both). The quantised layers are
bitsandbytes' own ``Linear8bitLt`` and ``Linear4bit`` and keep a bias in the
compute dtype, as theirs do.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ModelLoadError
from .weights import QuantizeHook, Rows

QUANTIZATIONS = ("int8", "nf4")
NF4_BLOCKSIZE = 64  # bitsandbytes' default for 4-bit weights
NESTED_BLOCKSIZE = 256  # bitsandbytes' block for the double-quantised NF4 scales
# Parameters quantised at once: the transients (float32 and int32 copies of the
# chunk, about 16 bytes per parameter on a CPU) stay near 1 MiB whatever the matrix.
CHUNK_PARAMETERS = 1 << 16


def import_bitsandbytes():
    """The bitsandbytes module, or a ModelLoadError saying how to install it.

    Imported with the ``kernels`` package hidden: on CPUs with AVX512-BF16 or
    AMX, bitsandbytes (0.48+, ``backends/cpu/ops.py``) calls
    ``kernels.get_kernel("kernels-community/quantization-bitsandbytes")`` at
    import, which asks the Hub (``HF_ENDPOINT``, with the user's token) for a
    compiled kernel and loads it. Lacuna never downloads by itself nor runs code
    from a hub, so that lookup must fail: bitsandbytes then uses the kernels of
    its own wheel (its documented fallback) and logs a warning we drop. No
    environment switch of ``kernels`` turns the lookup off (HF_HUB_OFFLINE would
    still load a copy already in the cache), hence the import block."""
    with _IMPORT_LOCK:
        module = sys.modules.get("bitsandbytes")
        if module is not None:
            return module
        try:
            with _hub_kernels_hidden():
                import bitsandbytes as bnb
        except ImportError:
            raise ModelLoadError(
                "8-bit and 4-bit weights need bitsandbytes: pip install 'lacuna-editor[quant]'") from None
    return bnb


_IMPORT_LOCK = threading.Lock()
# Modules through which an import can fetch code from a hub; hidden while bitsandbytes imports.
HUB_CODE_MODULES = ("kernels",)
_KERNELS_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"


@contextlib.contextmanager
def _hub_kernels_hidden():
    """Make ``import kernels`` raise ImportError inside the block (a None entry in
    sys.modules), then put back whatever was there: another user of ``kernels``
    in the process keeps its module."""
    saved = {name: sys.modules.get(name, _ABSENT) for name in HUB_CODE_MODULES}
    notice = logging.getLogger("bitsandbytes.backends.cpu.ops")
    notice.addFilter(_drop_kernels_notice)
    for name in HUB_CODE_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        notice.removeFilter(_drop_kernels_notice)
        for name, module in saved.items():
            if module is _ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


_ABSENT = object()


def _drop_kernels_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_KERNELS_NOTICE)


def release_freed_memory() -> None:
    """Hand memory freed on the heap back to the system (glibc's ``malloc_trim``; a no-op
    elsewhere). The chunk transients are freed between long-lived quantised tensors,
    and glibc keeps such holes mapped: over a load they added up to 0.3-0.6x the
    quantised weights on a CPU (measured, docs/benchmarks.md)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def _chunk_rows(rows: Rows, row_multiple: int) -> Rows:
    """``rows`` limited to reads of about CHUNK_PARAMETERS parameters, a multiple of ``row_multiple`` rows."""
    per_row = max(1, math.prod(rows.shape[1:]))
    want = max(row_multiple, CHUNK_PARAMETERS // per_row // row_multiple * row_multiple)
    if want >= rows.max_rows:
        return rows
    return Rows(rows.shape, rows.dtype, want, rows.read)


def nf4_weight(rows: Rows, device: torch.device):
    """bitsandbytes ``Params4bit`` (NF4, blocks of 64, double-quantised scales) of the
    matrix ``rows`` gives, [out, in] in ``rows.dtype``, quantised on ``device`` chunk by chunk.

    Returns the parameter (packed uint8 ``[ceil(out*in/2), 1]`` on ``device``) with its
    ``quant_state``."""
    bnb = import_bitsandbytes()
    F = bnb.functional
    n = math.prod(rows.shape)
    per_row = max(1, math.prod(rows.shape[1:]))
    # rows per chunk so that each chunk ends on a block boundary (and an even count)
    multiple = NF4_BLOCKSIZE // math.gcd(per_row, NF4_BLOCKSIZE)
    rows = _chunk_rows(rows, multiple)
    packed = torch.empty(((n + 1) // 2, 1), dtype=torch.uint8, device=device)
    absmax = torch.empty((n + NF4_BLOCKSIZE - 1) // NF4_BLOCKSIZE, dtype=torch.float32, device=device)
    for start, stop in rows.spans(multiple):
        chunk = rows.read(start, stop).to(device)
        q, state = F.quantize_4bit(chunk, blocksize=NF4_BLOCKSIZE, compress_statistics=False, quant_type="nf4")
        first = start * per_row
        packed[first // 2: first // 2 + q.numel()].copy_(q.view(-1, 1))
        absmax[first // NF4_BLOCKSIZE: first // NF4_BLOCKSIZE + state.absmax.numel()].copy_(state.absmax)
        del chunk, q, state
    if device.type == "cpu":
        release_freed_memory()
    offset = absmax.mean()
    nested, state2 = F.quantize_blockwise(absmax - offset, blocksize=NESTED_BLOCKSIZE)
    del absmax
    state = F.QuantState(absmax=nested, shape=torch.Size(rows.shape), dtype=rows.dtype, blocksize=NF4_BLOCKSIZE,
                         code=F.get_4bit_type("nf4", device=device), quant_type="nf4", offset=offset, state2=state2)
    return bnb.nn.Params4bit(packed, requires_grad=False, quant_state=state, blocksize=NF4_BLOCKSIZE,
                             compress_statistics=True, quant_type="nf4", bnb_quantized=True)


def int8_weight(rows: Rows, device: torch.device):
    """bitsandbytes ``Int8Params`` (LLM.int8(), one scale per row, no outliers held back)
    of the matrix ``rows`` gives, quantised on ``device`` a few rows at a time: int8
    ``[out, in]`` with ``SCB`` float32 ``[out]``."""
    bnb = import_bitsandbytes()
    out_features = rows.shape[0]
    rows = _chunk_rows(rows, 1)
    cb = torch.empty(rows.shape, dtype=torch.int8, device=device)
    scb = torch.empty(out_features, dtype=torch.float32, device=device)
    for start, stop in rows.spans():
        # bitsandbytes quantises from float16, whatever the weight's dtype
        chunk = rows.read(start, stop).to(device=device, dtype=torch.float16)
        q, scales, _ = bnb.functional.int8_vectorwise_quant(chunk)
        cb[start:stop].copy_(q)
        scb[start:stop].copy_(scales)
        del chunk, q, scales
    if device.type == "cpu":
        release_freed_memory()
    weight = bnb.nn.Int8Params(cb, requires_grad=False, has_fp16_weights=False)
    weight.CB, weight.SCB = cb, scb
    return weight


CPU_PACK_ROWS = 32  # bitsandbytes' block_n for its AVX512-BF16 NF4 layout


def cpu_packable(out_features: int, in_features: int) -> bool:
    """Whether bitsandbytes' AVX512-BF16 CPU kernel can repack an NF4 [out, in] weight."""
    return out_features % CPU_PACK_ROWS == 0 and in_features % NF4_BLOCKSIZE == 0


def quantized_linear(quantization: str, layer: nn.Linear, rows: Rows, device: torch.device,
                     compute_dtype: torch.dtype) -> nn.Module:
    """bitsandbytes' Linear4bit (NF4) or Linear8bitLt in place of ``layer`` (an nn.Linear,
    on any device, typically meta), its weight from ``rows``, on ``device``. A bias of
    ``layer`` that is already filled is kept; one still on the meta device stays there
    for the loader to fill."""
    bnb = import_bitsandbytes()
    biased = layer.bias is not None
    if quantization == "nf4":
        q = bnb.nn.Linear4bit(layer.in_features, layer.out_features, bias=biased, compute_dtype=compute_dtype,
                              quant_type="nf4", compress_statistics=True, device="meta")
        q.weight = nf4_weight(rows, device)
        q.quant_state = q.weight.quant_state
        if not cpu_packable(layer.out_features, layer.in_features):
            # bitsandbytes' AVX512-BF16 CPU path repacks the weight at its first forward into
            # tiles of CPU_PACK_ROWS rows with one scale per NF4 block of each row, and raises
            # for any other shape; such a layer takes its general path (dequantise, matmul).
            q.support_avx512bf16_for_cpu = False
    elif quantization == "int8":
        q = bnb.nn.Linear8bitLt(layer.in_features, layer.out_features, bias=biased, has_fp16_weights=False,
                                device="meta")
        q.weight = int8_weight(rows, device)
    else:
        raise ModelLoadError(f"unknown quantization {quantization!r}: use int8 or nf4")
    if biased:
        q.bias = layer.bias if layer.bias.is_meta else nn.Parameter(layer.bias.detach().to(device, compute_dtype),
                                                                   requires_grad=False)
    return q


def quantize_hook(quantization: str | None, dtype: torch.dtype, keep: Callable[[str], bool]) -> QuantizeHook | None:
    """A weights.load_into hook that puts Linear layers (with or without bias) in
    8-bit or NF4 through bitsandbytes, quantised chunk by chunk as they are read.

    ``keep(module_name)`` True leaves a layer in ``dtype`` (embeddings, the output
    head and norms stay 16-bit, as transformers' bitsandbytes integration does:
    the head's precision is what the sampler reads). bitsandbytes runs on CPUs
    from 0.45, which the CPU tests use."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"unknown quantization {quantization!r}: use int8 or nf4")
    import_bitsandbytes()
    if quantization == "int8":
        # bitsandbytes logs a warning on every int8 matmul whose input is not fp16: it
        # casts, as documented, and a user can do nothing about it.
        logging.getLogger("bitsandbytes.autograd._functions").addFilter(_drop_cast_notice)

    def hook(name: str, layer: nn.Linear, rows: Rows, device: torch.device) -> nn.Module | None:
        if keep(name):
            return None
        return quantized_linear(quantization, layer, rows, device, dtype)

    hook.keep = keep  # type: ignore[attr-defined]  # lets the loader read kept layers without chunking
    return hook


def quantize_network(network: nn.Module, quantization: str, dtype: torch.dtype, keep: Callable[[str], bool]) -> None:
    """Quantise, in place, the Linear layers of an already built network that ``keep``
    does not exempt (what loading does tensor by tensor; used by the benchmark)."""
    hook = quantize_hook(quantization, dtype, keep)
    targets = [(name, m) for name, m in network.named_modules() if isinstance(m, nn.Linear)]
    for name, layer in targets:
        replacement = hook(name, layer, Rows.of(layer.weight.data, dtype), layer.weight.device)
        if replacement is not None:
            parent, _, child = name.rpartition(".")
            setattr(network.get_submodule(parent), child, replacement)
            layer.weight = None  # the list above still holds the layer: free its full-precision weight now


def _drop_cast_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("MatMul8bitLt: inputs will be cast")
