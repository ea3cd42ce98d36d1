"""Benchmarks of the native families at real scale, and of loading memory.

``scale``: a randomly initialised network with the exact shapes of LLaDA-8B,
Dream-v0-7B or LLaDA-MoE-7B-A1B (read through the family's logit shift), fewer layers on a CPU, runs the engine's real sampler on
a 256-token infill at 256, 64 and 32 steps, in bf16 and in 4-bit (NF4), and
reports tokens per second and peak memory. Where a full run would take too
long (a CPU), only the first ``measure_steps`` steps of each run are timed
and the rate is projected from them: every step runs the whole canvas
through the blocks and the head on at most one block of masked positions,
so step cost is flat across a run; the report says which figures are
projected.

``load_memory``: peak host memory (RSS) while loading a checkpoint and over
one forward pass, against the weights' size and engine.hub.fit's estimate.

They measure; nothing passes or fails on time. Usage:
``lacuna-cli bench --scale llada [--layers N]`` and
``python -m lacuna.engine.bench.native load FOLDER [--dtype D] [--quant Q]``.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
import threading
from pathlib import Path
from time import perf_counter

import torch

from ..errors import Cancelled

GIB = 1 << 30


# process memory ----------------------------------------------------------------
def _status() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def _trim() -> None:
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak() -> int:
    """Reset the process's peak RSS (Linux) and return the current RSS, in bytes (0 elsewhere)."""
    _trim()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return 0
    return _status().get("VmRSS", 0)


def peak_rss() -> int:
    return _status().get("VmHWM", 0)


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes held by a module's parameters and buffers, quantisation state included."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        total += t.numel() * t.element_size()
        state = getattr(t, "quant_state", None)
        if state is not None:
            for name in ("absmax", "code"):
                v = getattr(state, name, None)
                if isinstance(v, torch.Tensor):
                    total += v.numel() * v.element_size()
            nested = getattr(state, "state2", None)
            if nested is not None and isinstance(getattr(nested, "absmax", None), torch.Tensor):
                total += nested.absmax.numel() * nested.absmax.element_size()
        scb = getattr(t, "SCB", None)
        if isinstance(scb, torch.Tensor):
            total += scb.numel() * scb.element_size()
    return total


# loading memory -----------------------------------------------------------------
def load_memory(folder: str, dtype: str = "float32", quantization: str | None = None, context: int = 256) -> dict:
    """Peak RSS over a load of ``folder`` on the CPU and over one forward pass of
    ``context`` tokens (all masked), both over the RSS just before loading."""
    from ..hub import fit
    from ..models.loader import load_model, precision_name

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    _warm_up(folder, config, dtype, quantization)
    base = reset_peak()
    t = perf_counter()
    model = load_model(folder, device="cpu", dtype=dtype, quantization=quantization)
    load_s = perf_counter() - t
    load_peak = peak_rss() - base
    ids = torch.full((context,), model.mask_id, dtype=torch.long)
    model.logits(ids, torch.arange(context))
    run_peak = peak_rss() - base
    weights = tensor_bytes(model.network)
    # one forward pass scoring every position, no context cache: what was measured above
    est = fit.estimate_for_config(config, precision_name(model.dtype, quantization), "cpu", context,
                                  hole=context, cache=False)
    return {
        "folder": str(folder), "dtype": str(model.dtype).replace("torch.", ""), "quantization": quantization,
        "context": context, "weights_bytes": weights, "load_seconds": round(load_s, 2),
        "peak_over_baseline_bytes": load_peak, "load_peak_ratio": round(load_peak / weights, 3),
        "run_peak_bytes": run_peak, "fit_estimate_bytes": est.total if est else None,
        "fit_error_pct": round(100 * (est.total - run_peak) / run_peak, 1) if est else None,
    }


def _warm_up(folder: str, config: dict, dtype: str, quantization: str | None) -> None:
    """Import and exercise the code a load uses, so that library memory and first-use
    caches are in the baseline and not counted as the model's: a one-layer toy of the
    family when its module offers ``bench_network``, else one load of ``folder`` itself
    (freed and trimmed before the measured load; the tokenizer is loaded again there
    and counted)."""
    from ..models.loader import load_model, native_family

    family = native_family(config)
    if family is not None and hasattr(family, "bench_network"):
        net = family.bench_network(1, torch.device("cpu"), getattr(torch, dtype), toy=True)
        if quantization is not None:  # bitsandbytes' first use (kernels, lazy imports) is library cost too
            from ..models.quantize import quantize_network

            quantize_network(net, quantization, getattr(torch, dtype), keep=lambda n: not family.quantized_module(n))
        with torch.inference_mode():
            net(torch.zeros(1, 8, dtype=torch.long))
        del net
        if (Path(folder) / "tokenizer.json").is_file():
            from ..models.native import load_tokenizer

            load_tokenizer(Path(folder), config, "warm-up", 16)
    else:  # this loads the family's own tokenizer too, whatever its files (Dream: vocab.json + merges.txt)
        model = load_model(folder, device="cpu", dtype=dtype, quantization=quantization)
        model.logits(torch.full((8,), model.mask_id, dtype=torch.long), torch.arange(8))
        del model
    _trim()


# speed at scale -------------------------------------------------------------------
def _synthetic_tokenizer(vocab: int, mask_id: int):
    """A word-level tokenizer with ``vocab`` entries "w0" ... (no download needed);
    the mask id is its mask token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"w{i}": i for i in range(vocab)}
    backend = Tokenizer(models.WordLevel(words, unk_token="w0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, mask_token=f"w{mask_id}", unk_token="w0")


# The reference model of each native transformer family: its config at the real shapes,
# its network class and its logit shift (Dream reads position i from the output at i-1).
BENCH_FAMILIES = {
    "llada": ("lacuna.engine.models.llada", "LLaDAConfig", "llada_8b", "LLaDANetwork", "n_layers", 0),
    "dream": ("lacuna.engine.models.dream", "DreamConfig", "dream_7b", "DreamNetwork", "num_hidden_layers", 1),
    "llada_moe": ("lacuna.engine.models.llada_moe", "LLaDAMoEConfig", "llada_moe_7b", "LLaDAMoENetwork",
                  "num_hidden_layers", 0),
}


def bench_network(family: str, layers: int | None, device: torch.device, dtype: torch.dtype):
    """(network, logit shift): a randomly initialised ``family`` network at its reference
    model's exact shapes (LLaDA-8B, Dream-v0-7B, LLaDA-MoE-7B-A1B) with ``layers`` blocks
    (None: all). ``device`` "meta" gives the network unallocated. ValueError for a family
    without a reference model (MDLM and SEDD run at full size on a CPU already)."""
    if family not in BENCH_FAMILIES:
        raise ValueError(f"no reference shapes for {family!r}; one of: {', '.join(BENCH_FAMILIES)}")
    module_name, config_class, reference, network_class, depth_key, shift = BENCH_FAMILIES[family]
    module = importlib.import_module(module_name)
    make = getattr(getattr(module, config_class), reference)
    config = make(**({depth_key: layers} if layers else {}))
    with torch.device("meta"):
        net = getattr(module, network_class)(config).to(dtype)
    if device.type != "meta":
        net.to_empty(device=device)
        with torch.no_grad():
            net.reset_parameters()
        net = net.eval().requires_grad_(False)
    return net, shift


def scale(family: str = "llada", layers: int | None = None, device: str | None = None,
          precisions: tuple[str, ...] = ("bf16", "nf4"), steps_list: tuple[int, ...] = (256, 64, 32),
          length: int = 256, prompt: int = 64, block_length: int = 32, measure_steps: int | None = None) -> dict:
    """Tokens/s and peak memory of a ``length``-token infill after a ``prompt``-token
    context, per precision and step count, on a random network of the family's
    reference shapes (``layers`` blocks; all of them by default on CUDA, 1 on a CPU),
    read through the family's logit shift. ValueError for a family without reference shapes."""
    from ..models.loader import pick_device, pick_dtype
    from ..models.native import NativeAdapter
    from ..models.quantize import quantize_network
    from ..sampler import stream_infill
    from ..types import InfillRequest, Span

    dev = pick_device(device)
    reference_layers = _layers(bench_network(family, None, torch.device("meta"), torch.bfloat16)[0].config)
    shift = BENCH_FAMILIES[family][5]
    module = importlib.import_module(BENCH_FAMILIES[family][0])
    if layers is None and dev.type != "cuda":
        layers = 1
    layers = layers or reference_layers
    if measure_steps is None:
        measure_steps = 0 if dev.type == "cuda" else 2
    rows = []
    for precision in precisions:
        # the engine's own choice: bf16 (fp16) on GPUs and bf16-capable CPUs, else float32
        dtype = torch.float32 if precision == "fp32" else pick_dtype(dev)
        base = reset_peak()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t = perf_counter()
        net, _ = bench_network(family, layers, dev, dtype)
        if precision in ("nf4", "int8"):
            quantize_network(net, precision, dtype, keep=lambda name: not module.quantized_module(name))
        build_s = perf_counter() - t
        cfg = net.config
        vocab = int(getattr(cfg, "embedding_size", None) or cfg.vocab_size)
        mask_id = int(getattr(cfg, "mask_token_id"))
        tok = _synthetic_tokenizer(vocab, mask_id)
        model = NativeAdapter(f"random {family}", family, net, tok, mask_id, 4096,
                              logit_shift=shift, quantization=None)
        text = " ".join(f"w{1000 + i}" for i in range(prompt))
        for steps in steps_list:
            request = InfillRequest(text=text, spans=(Span(len(text), len(text), length=length),), steps=steps,
                                    block_length=block_length, seed=0)
            cancel = threading.Event()
            limit = measure_steps or steps
            times: list[float] = []
            start = perf_counter()
            last = start
            try:
                for event in stream_infill(model, request, cancel):
                    now = perf_counter()
                    times.append(now - last)
                    last = now
                    if len(times) >= limit:
                        cancel.set()
            except Cancelled:
                pass
            planned = event.steps
            per_step = sum(times) / len(times)
            projected = len(times) < planned
            seconds = per_step * planned if projected else sum(times)
            peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else peak_rss() - base)
            rows.append({
                "precision": precision, "dtype": str(dtype).replace("torch.", ""), "steps": planned, "measured_steps": len(times), "projected": projected,
                "seconds_per_step": round(per_step, 3), "seconds": round(seconds, 2),
                "tokens_per_s": round(length / seconds, 3), "peak_memory_bytes": peak,
                "build_seconds": round(build_s, 1),
            })
        del model, net
        _trim()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "family": family, "device": str(dev), "layers": layers, "reference_layers": reference_layers,
        "logit_shift": shift,
        "threads": torch.get_num_threads(), "length": length, "prompt": prompt, "block_length": block_length,
        "rows": rows,
    }


def _layers(config) -> int:
    return int(getattr(config, "n_layers", None) or getattr(config, "num_hidden_layers"))


def format_scale(report: dict) -> str:
    lines = [f"{report['family']} at its reference shapes, {report['layers']} of {report['reference_layers']} layers, "
             f"on {report['device']} ({report['threads']} threads): {report['length']}-token infill after "
             f"{report['prompt']} tokens, block {report['block_length']}"]
    for r in report["rows"]:
        how = f"projected from {r['measured_steps']} measured steps" if r["projected"] else "measured"
        lines.append(f"  {r['precision']:>5} ({r['dtype']}) {r['steps']:4d} steps: {r['tokens_per_s']:9.3f} tok/s "
                     f"({r['seconds_per_step']:.3f} s/step, {how}); peak {r['peak_memory_bytes'] / GIB:.2f} GiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lacuna.engine.bench.native")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("load", help="peak host memory while loading a checkpoint folder on the CPU")
    p.add_argument("folder")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--quant", default=None)
    p.add_argument("--context", type=int, default=256)
    args = parser.parse_args(argv)
    print(json.dumps(load_memory(args.folder, args.dtype, args.quant, args.context)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
