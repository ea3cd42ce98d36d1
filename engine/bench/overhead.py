"""Benchmarks (they measure; they never pass or fail on time).

Engine overhead: the wall time of an infill at S steps against the wall time
of the same S forward passes run bare, with exactly the shapes the infill
used. The difference is everything the engine adds: canvas, selection,
sampling, events, decoding. Usage: ``lacuna-cli bench`` or ``python -m lacuna.engine.bench.overhead``.
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import threading
from time import perf_counter, process_time

import torch

from ..errors import InputError

_PARAGRAPH = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair. "
)


class _Recorder:
    """Passes calls through to a model and records each forward pass's inputs
    (to replay them bare) and the CPU seconds spent inside it."""

    def __init__(self, model):
        self._model = model
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.inside_cpu = 0.0
        self.inside_wall = 0.0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def logits(self, ids, positions):
        self.calls.append((ids.clone(), positions.clone()))
        start, wall = process_time(), perf_counter()
        try:
            return self._model.logits(ids, positions)
        finally:
            self.inside_cpu += process_time() - start
            self.inside_wall += perf_counter() - wall


def bench_text(model, context: int, span: int):
    """A text of about ``context`` tokens with an insertion of ``span`` tokens in the middle."""
    from ..types import Span

    tok = model.tokenizer
    ids = tok.encode(_PARAGRAPH * (1 + 2 * context // max(1, len(tok.encode(_PARAGRAPH)))), add_special_tokens=False)
    text = tok.decode(ids[:context], clean_up_tokenization_spaces=False)
    middle = text.find(" ", len(text) // 2)
    middle = middle if middle > 0 else len(text) // 2
    return text, [Span(middle, middle, length=span)]


def overhead(model, context: int = 256, span: int = 32, steps: int = 16, repeats: int = 7,
             sampler: str = "low_confidence") -> dict:
    """The engine's cost over its model's forward passes, two ways:

    - ``overhead_pct``: the wall time of an infill against the same forward
      passes replayed bare (the very ids and positions the infill passed),
      median of paired repetitions, alternating order;
    - ``engine_cpu_pct``: within the infill itself, this process's CPU seconds
      outside the model's forward passes over those inside them; on a shared
      machine this is far steadier than wall time (others' load slows both
      sides of a wall-time pair unevenly);
    - ``engine_wall_pct``: the same split of the infill's wall time, outside
      the forward passes over inside them. Engine and forward passes alternate
      step by step within one run, so a busy machine slows both alike; median
      of the repetitions.
    """
    import os

    from ..sampler import infill
    from ..types import InfillRequest

    text, spans = bench_text(model, context, span)
    # no context cache: its passes run a block against cached keys, which the
    # bare full-canvas passes below would not compare with (bench speed does)
    request = InfillRequest(text=text, spans=spans, steps=steps, sampler=sampler, seed=0, cache="none")
    recorder = _Recorder(model)
    infill(recorder, request)  # warm-up, and the passes to replay
    calls = list(recorder.calls)
    length = calls[0][0].shape[-1]

    def bare() -> None:
        for ids, positions in calls:
            model.logits(ids, positions)

    from ..models.dit_adapter import DiTAdapter
    from ..models.masked_lm import MaskedLMAdapter

    def full_vocab() -> None:
        with torch.inference_mode():
            for ids, _ in calls:
                batch = ids if ids.dim() == 2 else ids.unsqueeze(0)
                if isinstance(model, MaskedLMAdapter):  # transformers masked LMs
                    model.model(input_ids=batch).logits
                elif isinstance(model, DiTAdapter):  # MDLM, SEDD: ids and sigma -> logits
                    model.network(batch, model.sigma(batch))
                else:  # native networks: ids -> logits
                    model.network(batch)

    bare()
    engine_times, bare_times, full_times, engine_cpu = [], [], [], []

    def timed(fn, into):
        t = perf_counter()
        fn()
        into.append(perf_counter() - t)

    engine_wall: list[float] = []

    def run() -> None:
        recorder.inside_cpu = recorder.inside_wall = 0.0
        start, wall = process_time(), perf_counter()
        infill(recorder, request, threading.Event())
        total, total_wall = process_time() - start, perf_counter() - wall
        engine_cpu.append((total - recorder.inside_cpu) / recorder.inside_cpu)
        engine_wall.append((total_wall - recorder.inside_wall) / recorder.inside_wall)

    loads = [os.getloadavg()[0]]
    for r in range(repeats):
        # Alternate the order so a slow moment of the machine does not always hit one side.
        order = [(run, engine_times), (bare, bare_times), (full_vocab, full_times)]
        for fn, into in (order if r % 2 == 0 else order[::-1]):
            timed(fn, into)
    loads.append(os.getloadavg()[0])
    e, b, f = (statistics.median(x) for x in (engine_times, bare_times, full_times))
    # Paired ratios are robust to load that drifts between repetitions.
    paired = statistics.median((x - y) / y for x, y in zip(engine_times, bare_times))
    return {
        "model": model.name, "device": str(model.device), "dtype": str(model.dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(), "cache": "none", "canvas_tokens": length, "masked": span, "steps": steps,
        "nfe": len(calls), "sampler": sampler, "repeats": repeats,
        "infill_s": round(e, 4), "bare_forwards_s": round(b, 4), "full_vocab_forwards_s": round(f, 4),
        "overhead_pct": round(100 * paired, 2), "engine_cpu_pct": round(100 * statistics.median(engine_cpu), 2),
        "engine_wall_pct": round(100 * statistics.median(engine_wall), 2),
        "vs_reference_forwards_pct": round(100 * (e - f) / f, 2),
        "load_1min": [round(x, 2) for x in loads],
    }


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


def _scale(args) -> int:
    from .native import format_scale, scale

    try:
        precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
        steps = tuple(int(x) for x in args.scale_steps.split(",") if x.strip())
    except ValueError:
        raise InputError("--scale-steps takes comma-separated whole numbers, e.g. 256,64,32") from None
    bad = [p for p in precisions if p not in ("bf16", "fp32", "int8", "nf4")]
    if bad or not precisions or not steps or min(steps) < 1:
        raise InputError("--precisions takes bf16, fp32, int8, nf4; --scale-steps positive numbers")
    try:
        report = scale(args.scale, args.layers, args.device, precisions, steps, measure_steps=args.measure_steps)
    except (ModuleNotFoundError, ValueError) as exc:
        raise InputError(f"--scale {args.scale}: no benchmark network for this family ({exc})") from None
    report["machine"] = machine()
    print(json.dumps(report, indent=2) if args.json else f"machine: {report['machine']}\n" + format_scale(report))
    return 0


def main(args) -> int:
    from .. import load_model

    if getattr(args, "scale", None):
        return _scale(args)
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    report = {"machine": machine(), "overhead": overhead(model, args.context, args.span, args.steps, args.repeats)}
    if args.quality:
        from . import restore as evaluate

        report["quality"] = evaluate.sampler_table(model, heldout=args.heldout, examples=args.examples)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    o = report["overhead"]
    print(f"machine: {report['machine']}")
    print(f"model {o['model']} on {o['device']} ({o['dtype']}, {o['threads']} threads): "
          f"{o['masked']} masked of {o['canvas_tokens']} tokens, {o['steps']} steps, {o['nfe']} NFE, "
          f"no context cache (`lacuna-cli bench speed` compares the caches)")
    print(f"  infill                 {o['infill_s'] * 1000:8.1f} ms (median of {o['repeats']})")
    print(f"  bare forward passes    {o['bare_forwards_s'] * 1000:8.1f} ms")
    print(f"  engine overhead        {o['overhead_pct']:8.2f} % (wall, paired with the bare passes)")
    print(f"  engine CPU overhead    {o['engine_cpu_pct']:8.2f} % (CPU outside the forward passes / inside them)")
    print(f"  engine wall overhead   {o['engine_wall_pct']:8.2f} % (wall outside the forward passes / inside them, "
          f"same runs)")
    print(f"  load average (1 min)   {o['load_1min'][0]:.2f} before, {o['load_1min'][1]:.2f} after")
    print(f"  full-vocab forwards    {o['full_vocab_forwards_s'] * 1000:8.1f} ms "
          f"(the reference loop's cost; infill is {o['vs_reference_forwards_pct']:+.1f}% against it)")
    if "quality" in report:
        from . import restore as evaluate

        print(evaluate.format_table(report["quality"]))
    return 0


if __name__ == "__main__":
    from ..cli import main as cli_main

    sys.exit(cli_main(["bench", *sys.argv[1:]]))
