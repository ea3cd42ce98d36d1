"""Which model to use on this machine: the best catalog model that loads, fits and fills in time.

:func:`recommend` sizes up every loadable catalog model for one piece of work
(by default the editor's usual one, :data:`TYPICAL`: a 32-token sentence in a
512-token document, 16 steps, speed_estimate's defaults) on the best device
(``devices[0]``: a GPU, else the CPU). For each model it takes the highest
precision whose memory verdict is "fits" (engine.hub.fit), and on a CPU the
expected seconds per fill (engine.hub.speed_estimate: the FLOP/s the starter's
fill measured on this machine, applied to the model's FLOPs per fill; 8/4-bit
times :data:`CPU_QUANT_SLOWDOWN`). Among the models within ``max_seconds`` it
prefers quality, read as parameters (the loss of a language model falls with
its size: Kaplan et al. 2020, "Scaling Laws for Neural Language Models"), then
the higher precision, then a model pretrained only over an instruction-tuned
one of the same size (plain infilling of prose is what pretraining trains; the
catalog says so for LLaDA 8B Base). A GPU's speed is not measured (the rate is
the CPU's), so on a GPU the choice is the largest model that fits it.

The bundled starter always fits and is fast; it is chosen only when nothing
else fills in time, and the advice then names the quickest model that writes
(:attr:`Advice.alternative`). No Qt, no network; plain frozen data out.
"""
from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import fit
from . import speed_estimate as se
from .fmt import human_bytes

log = logging.getLogger(__name__)

MAX_SECONDS = 30.0  # a fill a user waits for at the keyboard; beyond it the editor feels stuck
# Bytes per stored parameter of a checkpoint's dtype (catalog "dtype"); unknown: float32, the upper bound.
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
UNKNOWN_DTYPE_BYTES = 4
# Seconds of an 8/4-bit fill over the same fill in the CPU's own precision (bf16 where the CPU has
# AVX512-BF16 or AMX, float32 elsewhere), keyed by that bf16 flag (fit.Device.bf16): the worse of two
# runs of the measurement benchmarks/bench_quant_cpu.py makes (bitsandbytes 0.50.2, a 2-core
# AMD EPYC with AVX512-BF16 shared with other jobs, a random LLaDA of d_model 1024 x 4 layers, one
# thread, best of 3-5). There, bitsandbytes runs NF4 through its fused AVX512-BF16 kernel and int8
# through torch._int_mm: a forward pass took 0.96-1.12x (int8) and 1.35-1.48x (NF4) the bf16 time.
# Held to AVX2 (ATEN_CPU_CAPABILITY=avx2), int8 becomes a float32 matmul and NF4 is dequantised to
# bf16: a fill took 1.37-1.46x and 2.6-4.2x the float32 time.
CPU_QUANT_SLOWDOWN = {True: {"int8": 1.1, "int4": 1.5}, False: {"int8": 1.5, "int4": 4.0}}
# The families whose adapter runs the dual context cache by default: speed_estimate's one list
# (tests/engine/hub/test_advice.py checks it against the loaded adapters).
CACHED_FAMILIES = se.DUAL_CACHE_FAMILIES
PRECISION_RANK = {"fp32": 3, "bf16": 3, "fp16": 3, "int8": 2, "int4": 1}
PRECISION_LABEL = {"fp32": "float32", "bf16": "bf16", "fp16": "fp16", "int8": "8-bit", "int4": "4-bit"}


@dataclass(frozen=True)
class Work:
    """One fill: a ``hole``-token span in a ``context``-token document, ``steps`` denoising steps;
    ``block`` (0: one block) bounds the masked tokens scored at once, which is what memory sees."""

    context: int = se.DEFAULT_CONTEXT
    hole: int = se.DEFAULT_HOLE
    steps: int = se.DEFAULT_STEPS
    cache: bool | None = None   # the dual context cache (None: the family's default)
    candidates: int = 1
    block: int = 0
    sampling: bool = False
    top_p: bool = False

    def fit_kwargs(self) -> dict[str, Any]:
        """fit.fit_model's keywords for this work."""
        hole = min(self.hole, self.block) if self.block else self.hole
        return {"context": self.context, "hole": hole, "cache": self.cache, "candidates": self.candidates,
                "sampling": self.sampling, "top_p": self.top_p}

    def describe(self) -> str:
        """The fill in words: "a sentence" for the typical one."""
        if self == TYPICAL:
            return "a sentence"
        return f"{self.hole:,} masked tokens in a {self.context:,}-token document"


TYPICAL = Work()


@dataclass(frozen=True)
class Option:
    """One model sized up for one device: the highest precision that fits, its memory, its speed."""

    entry: Mapping[str, Any] = field(compare=False)  # a private copy of the catalog entry: read it only
    precision: str             # fit's names: bf16 | fp16 | fp32 | int8 | int4
    device: str                # the device's label (cpu, cuda:0)
    device_name: str
    verdict: str               # fit's verdict at that precision ("fits")
    need: int                  # bytes the work needs there
    available: int             # bytes free on the device
    size: int | None           # bytes to download (0: bundled with Lacuna; None: unknown)
    size_estimated: bool       # True: parameters x bytes of the dtype, not the Hub's listing
    seconds: float | None      # expected seconds per fill (None: not measured for this device)
    parameters: int
    note: str = ""             # what fit adds (e.g. bitsandbytes to install)

    @property
    def id(self) -> str:
        return str(self.entry["id"])

    @property
    def name(self) -> str:
        return str(self.entry.get("name") or self.entry["id"])

    @property
    def bundled(self) -> bool:
        return bool(self.entry.get("bundled"))


@dataclass(frozen=True)
class Advice(Option):
    """The recommendation: the chosen Option, why (one line), whether it fills within the bound,
    and, when the choice is the bundled starter, the quickest model that writes."""

    reason: str = ""
    fast_enough: bool = True
    max_seconds: float = MAX_SECONDS
    work: Work = field(default=TYPICAL)
    alternative: Option | None = None


# sizes and speeds ------------------------------------------------------------
def download_size(entry: Mapping[str, Any]) -> tuple[int | None, bool]:
    """(bytes to download, estimated) of a catalog entry: 0 for the bundled model, the catalog's
    download_size (the Hub's listing) when known, else parameters x bytes per parameter of its
    dtype (float32 when unknown), marked estimated; (None, False) when nothing is known."""
    if entry.get("bundled"):
        return 0, False
    size = entry.get("download_size")
    if isinstance(size, int) and size > 0:
        return size, False
    params = entry.get("parameters")
    if not params:
        return None, False
    return int(params) * DTYPE_BYTES.get(str(entry.get("dtype") or ""), UNKNOWN_DTYPE_BYTES), True


def size_text(size: int | None, estimated: bool) -> str:
    """"679 MB", "≈15 GB" for an estimate, "bundled" for 0, "?" when unknown."""
    if size is None:
        return "?"
    if size == 0:
        return "bundled"
    return ("≈" if estimated else "") + human_bytes(size)


def seconds_text(seconds: float | None) -> str:
    """"0.3 s", "12 s", "11 min", "2.1 h"; "—" when unknown."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def entry_cost(entry: Mapping[str, Any]) -> se.Cost | None:
    """What one token costs the model: from the catalog's shape, else the downloaded or bundled
    config, else from the parameters alone (2 FLOPs per parameter per token); None when unknown."""
    shape, params = entry.get("shape") or {}, entry.get("parameters") or 0
    if not shape or not params:
        local = se._local_shape(dict(entry))  # the bundled starter and downloaded models
        if local is not None:
            shape, params = local
    cost = se.cost_from_shape(shape, int(params)) if shape and params else None
    if cost is None and params:
        cost = se.Cost(int(params), 0, 0, 0)
    return cost


def fill_seconds(entry: Mapping[str, Any], rate: float | None, work: Work = TYPICAL, precision: str = "bf16",
                 device: fit.Device | None = None) -> float | None:
    """Expected seconds of ``work`` with the model of ``entry`` on the CPU at ``rate`` FLOP/s
    (speed_estimate), in ``precision``; None without a rate, off the CPU, or when the model's
    size is unknown. The document is capped at the model's context; candidates multiply the work."""
    if not rate or (device is not None and device.kind != "cpu"):
        return None
    cost = entry_cost(entry)
    if cost is None:
        return None
    shape = fit.shape_for(dict(entry))
    limit = (shape.max_context if shape is not None else None) or entry.get("context_length")
    context = max(1, min(work.context, int(limit)) if limit else work.context)
    cached = entry.get("family") in CACHED_FAMILIES and work.cache is not False
    flops = cost.fill_flops(context, max(1, min(work.hole, context)), work.steps, cached)
    seconds = flops * max(1, work.candidates) / rate
    if precision in ("int8", "int4"):
        seconds *= CPU_QUANT_SLOWDOWN[bool(device.bf16) if device is not None else True][precision]
    return seconds


_RATES: dict[str, float] = {}
_RATE_LOCK = threading.Lock()


def machine_rate(calibrate: bool = True, again: bool = False) -> float | None:
    """This machine's effective FLOP/s: the one recorded by speed_estimate.calibrate, else (when
    ``calibrate``) measured now with the starter, about a second, once per process; ``again``:
    measure and record it anew (a first measurement on a busy machine reads it slow for good).
    None when neither works (the starter missing). Imports torch: call it off the GUI thread."""
    rate = None if again else se.measured_rate()
    if rate or not calibrate:
        return rate
    with _RATE_LOCK:  # the first-run card and the model manager may ask at once
        key = se.machine_key()
        if again:
            _RATES.pop(key, None)
        if key not in _RATES:
            try:
                _RATES[key] = se.calibrate()
            except Exception:  # noqa: BLE001 - no speed is better than no advice
                log.warning("could not time the starter; speeds are not shown", exc_info=True)
                return None
        return _RATES[key]


def card(gb: float) -> fit.Device:
    """A simulated GPU of ``gb`` GiB, all of it free (as cards are sold: an 8 GB card holds 8 GiB)."""
    size = int(gb * fit.GIB)
    article = "an" if f"{gb:g}".startswith(("8", "11", "18")) else "a"
    return fit.Device("cuda", 0, f"{article} {gb:g} GB card", size, size, True)


# the choice --------------------------------------------------------------------
def option_for(entry: Mapping[str, Any], device: fit.Device, rate: float | None,
               work: Work = TYPICAL) -> Option | None:
    """``entry`` on ``device`` at the highest precision whose verdict is "fits", or None
    when none fits or its size is unknown."""
    shape = fit.shape_for(dict(entry))
    if shape is None:
        return None
    fits = fit.fit_model(dict(entry), [device], **work.fit_kwargs())
    chosen = next((f for f in fits if f.verdict == "fits"), None)
    if chosen is None:
        return None
    size, estimated = download_size(entry)
    return Option(copy.deepcopy(dict(entry)), chosen.precision, device.label, device.name, chosen.verdict,
                  chosen.need, chosen.available, size, estimated,
                  fill_seconds(entry, rate, work, chosen.precision, device), shape.parameters, chosen.note)


def candidates(entries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The catalog entries a user can run: a loadable family, bundled or downloadable, not a companion."""
    from . import catalog

    return [e for e in (entries if entries is not None else catalog.entries())
            if e.get("loadable") and (e.get("bundled") or e.get("repo")) and not e.get("companion")
            and not catalog.lends_tokenizer_only(e)]


def _rank(option: Option) -> tuple:
    pretrained_only = option.id.endswith("-base")
    return (option.parameters, PRECISION_RANK.get(option.precision, 0), pretrained_only,
            -(option.seconds or 0.0))


def recommend(devices: list[fit.Device], rate: float | None, *, work: Work = TYPICAL,
              max_seconds: float = MAX_SECONDS, entries: list[dict[str, Any]] | None = None) -> Advice | None:
    """The best model for ``work`` on ``devices[0]`` (see the module's docstring); ``rate``: this
    machine's FLOP/s (machine_rate), None when unknown (then no CPU speed bounds the choice and the
    reason says so); ``entries``: the catalog (default: catalog.entries()). None when nothing fits."""
    device = devices[0]
    options = [o for o in (option_for(e, device, rate, work) for e in candidates(entries)) if o is not None]
    if not options:
        return None
    timed = device.kind == "cpu" and bool(rate)
    in_time = [o for o in options if not timed or (o.seconds is not None and o.seconds <= max_seconds)]
    writers = [o for o in options if not o.bundled]
    quickest = min((o for o in writers if o.seconds is not None), key=lambda o: o.seconds, default=None)
    if in_time:
        best = max(in_time, key=_rank)
        fast = True
    else:  # nothing in time, not even the starter: the quickest of all
        best = min(options, key=lambda o: (o.seconds is None, o.seconds or 0.0))
        fast = False
    alternative = quickest if best.bundled else None
    reason = _reason(best, device, work, max_seconds, timed, alternative, fast, bool(rate))
    return Advice(**{f: getattr(best, f) for f in Option.__dataclass_fields__}, reason=reason,
                  fast_enough=fast, max_seconds=max_seconds, work=work, alternative=alternative)


def _where(device: fit.Device) -> str:
    if device.kind == "cpu":
        return "this machine's memory"
    return device.name if _simulated(device) else f"{device.label} ({device.name})"


def _simulated(device: fit.Device) -> bool:
    return device.name.endswith(" GB card")


def _reason(best: Option, device: fit.Device, work: Work, max_seconds: float, timed: bool,
            alternative: Option | None, fast: bool, rated: bool) -> str:
    fill = work.describe()
    memory = f"{PRECISION_LABEL.get(best.precision, best.precision)}, needs {human_bytes(best.need)}"
    if not _simulated(device):
        memory += f" of {human_bytes(best.available)} free"
    if best.bundled:
        if alternative is not None:
            return (f"No model in the catalog fills {fill} within {max_seconds:g} s on this machine; the quickest, "
                    f"{alternative.name}, takes about {seconds_text(alternative.seconds)} (estimated). "
                    f"The starter takes {seconds_text(best.seconds)} but is a demonstration.")
        return "Nothing else in the catalog fits this machine; the starter is a demonstration."
    if not fast:
        return (f"{best.name} is the quickest model that fits {_where(device)} ({memory}), yet it takes "
                f"about {seconds_text(best.seconds)} per fill, over {max_seconds:g} s.")
    if timed:
        return (f"{best.name}: the largest model that fits {_where(device)} ({memory}) and fills {fill} "
                f"in about {seconds_text(best.seconds)} here (estimated from the starter's measured speed).")
    speed = ("its speed on a GPU is not measured here" if device.kind != "cpu"
             else "this machine's speed is not measured yet")
    return f"{best.name}: the largest model that fits {_where(device)} ({memory}); {speed}."
