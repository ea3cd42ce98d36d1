"""``lacuna-cli bench speed``: the plain loop against parallel decoding
(threshold), the dual context cache and both, on one long document; N
candidates in one batch against N separate runs; cold start of
``lacuna-cli infill``. Wall time and CPU time (process_time, all threads) are
both reported: on a shared machine the CPU time is the steadier figure. It
measures; it never passes or fails on time.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import sys
from time import perf_counter, process_time

import torch

from .bench import bench_text, machine

SPEED_CONFIGS = (
    ("a", "plain loop", "low_confidence", "none"),
    ("b", "+ threshold", "threshold", "none"),
    ("c", "+ dual cache", "low_confidence", "dual"),
    ("d", "threshold + dual cache", "threshold", "dual"),
)


def random_llada(layers: int = 4, d_model: int = 512, heads: int = 8, mlp: int = 1408, context: int = 4096,
                 tokenizer_from: str = "starter", seed: int = 0):
    """A randomly initialised network in LLaDA's layout (engine.models.llada,
    RMSNorm, rotary, SwiGLU, untied head) on the starter's tokenizer, behind
    the NativeAdapter: what the cache does to a compute-bound forward pass,
    independent of any trained weights. float32. ``tokenizer_from``: a
    native model (catalog id or folder) whose tokenizer.json to use."""
    from .models.llada import LLaDAConfig, LLaDANetwork
    from .models.loader import resolve_path
    from .models.native import NativeAdapter, load_tokenizer

    path = resolve_path(tokenizer_from)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    keys = {k: config[k] for k in ("mask_token_id", "eos_token_id", "pad_token_id", "bos_token_id") if k in config}
    tokenizer = load_tokenizer(path, keys, tokenizer_from, context)
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    net = LLaDANetwork(LLaDAConfig(
        d_model=d_model, n_layers=layers, n_heads=heads, n_kv_heads=heads, mlp_hidden_size=mlp,
        vocab_size=vocab, embedding_size=vocab, max_sequence_length=context, rope_theta=500000.0,
        mask_token_id=tokenizer.mask_token_id, eos_token_id=tokenizer.eos_token_id or 0,
        pad_token_id=tokenizer.pad_token_id or 0,
    ))
    params = sum(p.numel() for p in net.parameters()) / 1e6
    name = f"random LLaDA layout ({layers} layers, d_model {d_model}, {params:.1f}M)"
    return NativeAdapter(name, "llada", net.float(), tokenizer, tokenizer.mask_token_id, context)


def _request(text, spans, steps, sampler, cache, threshold=None, seed=0, temperature=0.0, block_length=None):
    from .types import InfillRequest

    return InfillRequest(text=text, spans=spans, steps=steps, sampler=sampler, cache=cache, threshold=threshold,
                         seed=seed, temperature=temperature, block_length=block_length)


def speed(model, context: int = 2000, span: int = 32, steps: int = 32, repeats: int = 3,
          threshold: float | None = None, block_length: int | None = None) -> dict:
    """Tokens/s and NFE of configs (a)-(d) on one document of about ``context``
    tokens with a ``span``-token hole in the middle. Runs alternate between
    configs (a slow moment of a shared machine does not hit one side only);
    medians of ``repeats``."""
    from .canvas import build
    from .sampler import infill, resolve_threshold

    text, spans = bench_text(model, context, span)
    modes = ("none", *getattr(model, "cache_modes", ()))
    configs = [c for c in SPEED_CONFIGS if c[3] in modes]
    requests = {key: _request(text, spans, steps, sampler, cache, threshold, block_length=block_length)
                for key, _, sampler, cache in configs}
    canvas_tokens = build(model, requests["a"]).ids.numel()
    times: dict[str, list[float]] = {key: [] for key in requests}
    cpu: dict[str, list[float]] = {key: [] for key in requests}
    results = {}
    for key, req in requests.items():  # warm-up (a run is many passes: one timed run suffices for slow models)
        if repeats > 1:
            results[key] = infill(model, req)
    for r in range(repeats):
        order = list(requests.items())
        for key, req in (order if r % 2 == 0 else order[::-1]):
            t, c = perf_counter(), process_time()
            results[key] = infill(model, req)
            times[key].append(perf_counter() - t)
            cpu[key].append(process_time() - c)
    base = statistics.median(times["a"])
    base_cpu = statistics.median(cpu["a"])
    rows = []
    for key, label, sampler, cache in configs:
        t = statistics.median(times[key])
        c = statistics.median(cpu[key])
        # CPU seconds (all threads of this process) are far less disturbed than
        # wall time when other jobs share the cores.
        rows.append({"config": key, "label": label, "sampler": sampler, "cache": cache,
                     "seconds": round(t, 4), "tokens_per_s": round(span / t, 2), "nfe": results[key].nfe,
                     "speedup": round(base / t, 2), "cpu_seconds": round(c, 4),
                     "cpu_speedup": round(base_cpu / c, 2), "fill": results[key].span_text(0)})
    return {"model": model.name, "family": model.family, "device": str(model.device),
            "dtype": str(model.dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
            "document_tokens": context, "canvas_tokens": canvas_tokens, "masked": span, "steps": steps,
            "block_length": block_length, "threshold": resolve_threshold(model, requests["a"]),
            "repeats": repeats, "rows": rows}


def restore_accuracy(model, heldout=None, examples: int = 100, seed: int = 0, threshold: float | None = None,
                     configs=SPEED_CONFIGS, block_length: int | None = None) -> list[dict]:
    """Restore accuracy on held-out text (engine.training.evaluate's examples)
    for each config: single-word exact match and 2-8-word token accuracy,
    greedy, steps = the span's tokens (one block unless ``block_length``)."""
    from .sampler import stream_infill
    from .training import evaluate
    from .types import Span

    texts = evaluate.load_texts(heldout)
    words = evaluate.word_examples(texts, examples, seed)
    phrases = evaluate.span_examples(texts, examples, seed + 1)
    modes = ("none", *getattr(model, "cache_modes", ()))

    def fill(ex, sampler, cache):
        steps = evaluate.token_count(model, ex)
        req = _request(ex.text, [Span(ex.start, ex.end)], steps, sampler, cache, threshold, block_length=block_length)
        ids, result, nfe = {}, None, 0
        for ev in stream_infill(model, req):
            for c in ev.committed:
                ids[c.index] = c.token_id
            result, nfe = ev.result or result, ev.nfe
        return result, [ids[k] for k in sorted(ids)], nfe, steps

    rows = []
    for key, label, sampler, cache in configs:
        if cache not in modes:
            continue
        t = perf_counter()
        hits = sum(fill(ex, sampler, cache)[0].span_text(0).strip() == ex.target for ex in words)
        correct = total = exact = n = nfe = tokens = 0
        for ex in phrases:
            orig = evaluate._original_ids(model, ex)
            result, got, used, k = fill(ex, sampler, cache)
            if k != len(orig):
                continue
            n += 1
            total += k
            nfe += used
            correct += sum(a == b for a, b in zip(orig, got))
            exact += result.span_text(0) == ex.target
        rows.append({"config": key, "label": label, "word_n": len(words), "word_exact": hits / max(1, len(words)),
                     "phrase_n": n, "phrase_token_acc": correct / max(1, total),
                     "phrase_exact": exact / max(1, n), "phrase_nfe_per_token": nfe / max(1, total),
                     "seconds": round(perf_counter() - t, 1)})
    return rows


def views(model, view_sizes=(64, 128, 256, 512), heldout=None, examples: int = 100, seed: int = 0,
          cache: str | None = None, context: int = 2000, span: int = 32, steps: int = 32) -> dict:
    """The long-document trade-off: how many tokens the model sees
    (``InfillRequest.context_tokens``) against restore accuracy and time.

    Per view size: the seconds of a ``span``-token hole in a
    ``context``-token document at ``steps`` steps, and single-word restore on
    held-out chunks given whole (not cropped: a larger view sees more of the
    chunk, whose length varies (at most about 4,000 characters); greedy, steps = the
    word's tokens) with its mean seconds per fill. Accuracy needs held-out
    text (``heldout``, else the corpus split when it has been built; it is
    never downloaded here) and a trained model (not for random networks).
    Returns {"rows": [...], "skipped": [{"view", "why"}]}."""
    from .errors import ContextTooLong
    from .sampler import infill
    from .training import evaluate
    from .types import Span

    text, spans = bench_text(model, context, span)
    rows, skipped = [], []
    runnable = []
    for view in view_sizes:
        if view > model.context_length:
            skipped.append({"view": view, "why": f"over the model's context of {model.context_length} tokens"})
        elif view <= span + len(model.prefix_ids) + len(model.suffix_ids):
            skipped.append({"view": view, "why": f"no room for context around the {span}-token hole"})
        else:
            runnable.append(view)
    has_text = heldout is not None or evaluate.DEFAULT_HELDOUT.is_file()
    words = []
    if runnable and has_text and not model.name.startswith("random"):
        words = evaluate.word_examples(evaluate.load_texts(heldout), examples, seed, crop=False)
    for view in runnable:
        req = dataclasses.replace(_request(text, spans, steps, "low_confidence", cache), context_tokens=view)
        infill(model, req)  # warm-up
        t, c = perf_counter(), process_time()
        infill(model, req)
        hole_s, hole_cpu = perf_counter() - t, process_time() - c
        hits = n = 0
        t = perf_counter()
        for ex in words:
            r = _request(ex.text, [Span(ex.start, ex.end)], evaluate.token_count(model, ex), "low_confidence", cache)
            try:
                hits += infill(model, dataclasses.replace(r, context_tokens=view)).span_text(0).strip() == ex.target
            except ContextTooLong:  # a word longer than the view leaves room for: not counted
                continue
            n += 1
        rows.append({"view": view, "hole_seconds": round(hole_s, 4), "hole_cpu_seconds": round(hole_cpu, 4),
                     "word_n": n, "word_exact": hits / n if n else None,
                     "word_seconds_per_fill": round((perf_counter() - t) / n, 4) if n else None})
    return {"rows": rows, "skipped": skipped}


def candidates(model, context: int = 2000, span: int = 32, steps: int = 32, counts=(1, 4, 8),
               repeats: int = 1, cache: str | None = None) -> list[dict]:
    """Seconds per candidate: N candidates in one batch (stream_candidates)
    against N separate runs, temperature 1, the model's default cache."""
    from .sampler import infill, infill_candidates

    text, spans = bench_text(model, context, span)
    req = _request(text, spans, steps, "low_confidence", cache, temperature=1.0)
    rows = []
    for n in counts:
        seeds = list(range(n))
        batched, separate, batched_cpu, separate_cpu = [], [], [], []
        for _ in range(repeats):
            t, c = perf_counter(), process_time()
            infill_candidates(model, req, seeds)
            batched.append(perf_counter() - t)
            batched_cpu.append(process_time() - c)
            t, c = perf_counter(), process_time()
            for s in seeds:
                infill(model, dataclasses.replace(req, seed=s))
            separate.append(perf_counter() - t)
            separate_cpu.append(process_time() - c)
        b, s = statistics.median(batched), statistics.median(separate)
        bc, sc = statistics.median(batched_cpu), statistics.median(separate_cpu)
        rows.append({"n": n, "batched_s_per_candidate": round(b / n, 4), "separate_s_per_candidate": round(s / n, 4),
                     "speedup": round(s / b, 2), "batched_cpu_s_per_candidate": round(bc / n, 4),
                     "separate_cpu_s_per_candidate": round(sc / n, 4), "cpu_speedup": round(sc / bc, 2)})
    return rows


def cold_start(model: str = "starter", repeats: int = 3,
               text: str = "In the beginning God created the [[1]] and the [[2]].") -> dict:
    """Wall and CPU seconds (user + system, of the child process) from starting
    ``python -m engine.cli infill`` to its exit (imports, model load, fill),
    medians of ``repeats`` fresh processes."""
    import os
    import resource
    import subprocess

    cmd = [sys.executable, "-m", "engine.cli", "infill", "--model", model, "--json", text]
    walls, cpus, fills = [], [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ}, check=False)
        walls.append(perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if out.returncode == 0:
            fills.append(json.loads(out.stdout)["seconds"])
    return {"model": model, "repeats": repeats, "wall_s": round(statistics.median(walls), 3),
            "all_wall_s": [round(w, 3) for w in walls], "cpu_s": round(statistics.median(cpus), 3),
            "all_cpu_s": [round(c, 3) for c in cpus],
            "fill_s": round(statistics.median(fills), 4) if fills else None}


def main(args) -> int:
    from . import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {"machine": machine(), "models": []}
    models = []
    # --cold-start alone times fresh processes only: the speed table (minutes) runs when it is
    # not asked for, or when something else of speed mode is
    tables = not args.cold_start or bool(args.random_layout or args.candidates or args.views or args.quality)
    if args.random_layout:
        models.append(random_llada(args.layers or 4, args.width, max(1, args.width // 64), int(args.width * 2.75),
                                   tokenizer_from=args.model))
    if args.model and tables:
        models.append(load_model(args.model, device=args.device, dtype=args.dtype))
    for model in models:
        if args.cache is not None:  # refused before minutes of measuring, not after
            from .sampler import resolve_cache
            from .types import Span

            resolve_cache(model, _request("x", [Span(0, 1)], 1, "low_confidence", args.cache))
        entry = {"speed": speed(model, args.context, args.span, args.steps, args.repeats, args.threshold,
                                args.block_length)}
        if args.candidates:
            entry["candidates"] = candidates(model, args.context, args.span, args.steps, args.candidates)
        if args.views:
            entry["views"] = views(model, args.views, args.heldout, args.examples, cache=args.cache,
                                   context=args.context, span=args.span, steps=args.steps)
        if args.quality and not model.name.startswith("random"):
            entry["quality"] = restore_accuracy(model, args.heldout, args.examples, threshold=args.threshold,
                                                block_length=args.block_length)
        report["models"].append(entry)
        if not args.json:
            _print_speed(entry)
    if args.cold_start:
        report["cold_start"] = cold_start(args.model or "starter", args.cold_start)
        c = report["cold_start"]
        if not args.json:
            print(f"cold start of `lacuna-cli infill` on {c['model']}: {c['wall_s']:.2f} s wall to the result "
                  f"(median of {c['repeats']}: {c['all_wall_s']}), {c['cpu_s']:.2f} s CPU ({c['all_cpu_s']}), "
                  f"of which the fill {c['fill_s']} s")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"machine: {report['machine']}")
    return 0


def _print_speed(entry: dict) -> None:
    s = entry["speed"]
    print(f"{s['model']} ({s['family']}) on {s['device']} {s['dtype']}, {s['threads']} threads: "
          f"{s['masked']}-token hole in a {s['document_tokens']}-token document "
          f"({s['canvas_tokens']} tokens in the model's view), {s['steps']} steps, tau {s['threshold']}")
    print("| config | sampler | cache | NFE | wall s | tokens/s | speedup | CPU s | CPU speedup |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in s["rows"]:
        print(f"| ({r['config']}) {r['label']} | {r['sampler']} | {r['cache']} | {r['nfe']} | {r['seconds']:.3f} | "
              f"{r['tokens_per_s']:.1f} | {r['speedup']:.2f}x | {r['cpu_seconds']:.3f} | {r['cpu_speedup']:.2f}x |")
    if "candidates" in entry:
        print("| candidates | batched s/candidate | separate s/candidate | speedup | CPU speedup |")
        print("|---:|---:|---:|---:|---:|")
        for r in entry["candidates"]:
            print(f"| {r['n']} | {r['batched_s_per_candidate']:.3f} | {r['separate_s_per_candidate']:.3f} | "
                  f"{r['speedup']:.2f}x | {r['cpu_speedup']:.2f}x |")
    if "views" in entry:
        print(f"| tokens in view | {s['masked']}-token hole: wall s | CPU s | single word exact | s per word fill |")
        print("|---:|---:|---:|---:|---:|")
        for r in entry["views"]["rows"]:
            acc = "n/a" if r["word_exact"] is None else f"{100 * r['word_exact']:.1f}% (n={r['word_n']})"
            per = "n/a" if r["word_seconds_per_fill"] is None else f"{r['word_seconds_per_fill']:.4f}"
            print(f"| {r['view']} | {r['hole_seconds']:.3f} | {r['hole_cpu_seconds']:.3f} | {acc} | {per} |")
        for r in entry["views"]["skipped"]:
            print(f"view {r['view']} skipped: {r['why']}")
    if "quality" in entry:
        print("| config | single word exact | 2-8 words token acc | 2-8 words exact | NFE/token | seconds |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in entry["quality"]:
            print(f"| ({r['config']}) {r['label']} | {100 * r['word_exact']:.1f}% (n={r['word_n']}) | "
                  f"{100 * r['phrase_token_acc']:.1f}% (n={r['phrase_n']}) | {100 * r['phrase_exact']:.1f}% | "
                  f"{r['phrase_nfe_per_token']:.2f} | {r['seconds']} |")
