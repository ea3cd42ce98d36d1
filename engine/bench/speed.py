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

from .overhead import bench_text, machine

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
    from ..models.llada import LLaDAConfig, LLaDANetwork
    from ..models.loader import resolve_path
    from ..models.native import NativeAdapter, load_tokenizer

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
    from ..types import InfillRequest

    return InfillRequest(text=text, spans=spans, steps=steps, sampler=sampler, cache=cache, threshold=threshold,
                         seed=seed, temperature=temperature, block_length=block_length)


def speed(model, context: int = 2000, span: int = 32, steps: int = 32, repeats: int = 3,
          threshold: float | None = None, block_length: int | None = None) -> dict:
    """Tokens/s and NFE of configs (a)-(d) on one document of about ``context``
    tokens with a ``span``-token hole in the middle. Runs alternate between
    configs (a slow moment of a shared machine does not hit one side only);
    medians of ``repeats``."""
    from ..canvas import build
    from ..sampler import infill, resolve_threshold

    text, spans = bench_text(model, context, span)
    modes = ("none", *model.cache_modes)
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
    """Restore accuracy on held-out text (engine.bench.restore's examples)
    for each config: single-word exact match and 2-8-word token accuracy,
    greedy, steps = the span's tokens (one block unless ``block_length``)."""
    from ..sampler import stream_infill
    from . import restore as evaluate
    from ..types import Span

    texts = evaluate.load_texts(heldout)
    words = evaluate.word_examples(texts, examples, seed)
    phrases = evaluate.span_examples(texts, examples, seed + 1)
    modes = ("none", *model.cache_modes)

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
    from ..errors import ContextTooLong
    from ..sampler import infill
    from . import restore as evaluate
    from ..types import Span

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
    from ..sampler import infill, infill_candidates

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
    ``python -m lacuna.engine.cli infill`` to its exit (imports, model load, fill),
    medians of ``repeats`` fresh processes."""
    import os
    import resource
    import subprocess

    cmd = [sys.executable, "-m", "lacuna.engine.cli", "infill", "--model", model, "--json", text]
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
    from .. import load_model

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
            from ..sampler import resolve_cache
            from ..types import Span

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


# ------------------------------------------------ MDLM and SEDD at full size on the CPU

DIT_SHAPES = {  # the released configs: kuleshov-group/mdlm-owt config.json, louaaron/sedd-small config.json
    "mdlm": {"hidden_size": 768, "n_heads": 12, "n_blocks": 12, "cond_dim": 128, "vocab_size": 50258},
    "sedd": {"hidden_size": 768, "n_heads": 12, "n_blocks": 12, "cond_dim": 128, "vocab_size": 50258},
}
DIT_CONTEXT = 1024


def random_dit(family: str, tokenizer_folder: str | None = None, layers: int | None = None, seed: int = 0,
               dtype: torch.dtype = torch.float32, init_std: float | None = None):
    """mdlm-owt or sedd-small in the real layout (every width and the vocabulary as
    released, ``layers`` blocks, default all 12) with random weights, seeded:
    torch's default initialisation, or with ``init_std`` every weight and bias
    drawn from N(0, init_std^2) (norm weights stay 1), which makes attention
    far from uniform (the default's is nearly uniform, so every masked position
    reads the same context). On GPT-2's tokenizer from ``tokenizer_folder``
    (tokenizer.json, or vocab.json + merges.txt) or the local Hugging Face cache.
    Raises InputError when no GPT-2 tokenizer is found."""
    from pathlib import Path

    from ..errors import InputError, ModelLoadError
    from ..models.dit import DiTShape
    from ..models.dit_adapter import GPT2_TOKENIZER_REPO, load_gpt2_tokenizer
    from ..models.mdlm import MDLMAdapter, MDLMNetwork
    from ..models.sedd import SEDDAdapter, SEDDNetwork

    if family not in DIT_SHAPES:
        raise InputError(f"--family takes one of {', '.join(DIT_SHAPES)}, not {family!r}")
    dims = dict(DIT_SHAPES[family], **({"n_blocks": layers} if layers else {}))
    shape = DiTShape(**dims)
    folder = Path(tokenizer_folder) if tokenizer_folder else Path("/nonexistent-gpt2-folder")
    try:
        tokenizer = load_gpt2_tokenizer(GPT2_TOKENIZER_REPO, folder, GPT2_TOKENIZER_REPO)
    except ModelLoadError:
        raise InputError(f"no GPT-2 tokenizer in {tokenizer_folder or 'the Hugging Face cache'}: run "
                         f"`lacuna-cli models pull {GPT2_TOKENIZER_REPO}` or give --tokenizer FOLDER") from None
    torch.manual_seed(seed)
    if family == "mdlm":
        network, adapter = MDLMNetwork(shape), MDLMAdapter
    else:
        network, adapter = SEDDNetwork(shape), SEDDAdapter
    if init_std is not None:
        with torch.no_grad():
            for key, param in network.named_parameters():
                if not key.endswith(("norm1.weight", "norm2.weight", "norm_final.weight")):
                    param.normal_(0.0, init_std)
    network = network.to(dtype).requires_grad_(False)
    depth = f"{shape.n_blocks} of 12 blocks" if shape.n_blocks != 12 else "12 blocks"
    init = f", weights N(0, {init_std}^2)" if init_std is not None else ""
    name = f"random {family} layout ({depth} x {shape.hidden_size}, {shape.parameter_count() / 1e6:.1f}M{init})"
    return adapter(name, network, tokenizer, shape.vocab_size - 1, DIT_CONTEXT)


def hole_request(model, document: int, hole: int, steps: int, at: float = 0.5, insertion: bool = False,
                 cache: str = "none", sampler: str = "low_confidence"):
    """A ``document``-token text with ``hole`` tokens masked where a fraction
    ``at`` of it lies: ``hole`` of its own tokens (a hole), or ``hole`` new ones
    (an insertion)."""
    from ..types import Span

    tok = model.tokenizer
    text, _ = bench_text(model, document + hole, 1)
    ids = tok.encode(text, add_special_tokens=False)[:document]
    cut = max(0, min(len(ids) - (0 if insertion else hole), int(at * len(ids))))
    before = tok.decode(ids[:cut], clean_up_tokenization_spaces=False)
    covered = "" if insertion else tok.decode(ids[cut:cut + hole], clean_up_tokenization_spaces=False)
    after = tok.decode(ids[cut + (0 if insertion else hole):], clean_up_tokenization_spaces=False)
    span = Span(len(before), len(before) + len(covered), length=hole)
    return _request(before + covered + after, [span], steps, sampler, cache)


def _fill_ids(model, request) -> tuple[list[int], object]:
    from ..sampler import stream_infill

    ids, result = {}, None
    for ev in stream_infill(model, request):
        for c in ev.committed:
            ids[c.index] = c.token_id
        result = ev.result or result
    return [ids[k] for k in sorted(ids)], result


def cache_agreement(model, requests: int = 50, document: int = 200, hole: int = 16, steps: int | None = None,
                    sampler: str = "low_confidence", seed: int = 0) -> dict:
    """Token agreement of the dual cache's fills with the plain loop's: over
    ``requests`` greedy fills of a ``hole``-token hole at seeded random places of
    a ``document``-token text, the share of slots holding the same token."""
    import random

    rng = random.Random(seed)
    same = total = exact = 0
    for _ in range(requests):
        req = hole_request(model, document, hole, steps or hole, at=rng.uniform(0.05, 0.95), sampler=sampler)
        plain, _ = _fill_ids(model, req)
        cached, _ = _fill_ids(model, dataclasses.replace(req, cache="dual"))
        same += sum(a == b for a, b in zip(plain, cached))
        total += len(plain)
        exact += plain == cached
    return {"requests": requests, "document_tokens": document, "hole": hole, "steps": steps or hole,
            "sampler": sampler, "tokens_same": same, "tokens": total, "agreement": same / max(1, total),
            "fills_identical": exact}


def cache_drift(model, document: int = 1000, hole: int = 32,
                committed: tuple[int, ...] = (0, 1, 8, 16, 24)) -> list[dict]:
    """How far one cached step strays from the plain pass, after k of the hole's slots are
    committed since the refresh: the refresh runs with every slot of a ``hole``-token hole in a
    ``document``-token text masked; the k slots the plain pass is most sure of then get its
    greedy tokens; at the still-masked slots the cached step's log-probabilities are compared
    with a plain pass over the same canvas. Per k: the sigma the refresh and the step were
    conditioned on, how many slots keep the plain pass's argmax, and the largest absolute
    difference of a finite log-probability (nats). At k = 0 the two agree to rounding."""
    from ..canvas import build

    ids = build(model, hole_request(model, document, hole, 1)).ids.unsqueeze(0).to(model.device)
    block = (ids[0] == model.mask_id).nonzero().squeeze(1)
    first, _ = model.prefill(ids, block)
    confidence, tokens = torch.log_softmax(first[0], dim=-1).max(dim=-1)
    order = confidence.argsort(descending=True)
    rows = []
    for k in committed:
        if k >= block.numel():
            continue
        _, cache = model.prefill(ids, block)  # a cached step overwrites the block's entries: a fresh one each k
        now = ids.clone()
        now[0, block[order[:k]]] = tokens[order[:k]]
        rest = block[order[k:].sort().values]
        cached = torch.log_softmax(model.logits_cached(now, block, rest, cache)[0], dim=-1)
        plain = torch.log_softmax(model.logits(now, rest)[0], dim=-1)
        finite = torch.isfinite(cached) & torch.isfinite(plain)
        rows.append({"committed": k, "sigma_refresh": round(float(model.sigma(ids)[0]), 4),
                     "sigma_step": round(float(model.sigma(now)[0]), 4),
                     "argmax_same": int((cached.argmax(-1) == plain.argmax(-1)).sum()), "slots": int(rest.numel()),
                     "max_abs_logprob_diff": float((cached - plain).abs()[finite].max())})
    return rows


def dit_figures(model, document: int = 1000, hole: int = 32, insertion: int = 128, steps: int = 32,
                threads: tuple[int, ...] = (1, 2), repeats: int = 1) -> list[dict]:
    """Seconds per fill (wall and this process's CPU seconds, all threads) of a
    ``hole``-token hole and an ``insertion``-token insertion in a
    ``document``-token text, plain loop against the dual cache, greedy, at each
    thread count; with the token agreement of the cached fill with the plain
    one and the load average (1 min) when each was measured."""
    import os

    from ..canvas import build

    rows = []
    for n in threads:
        torch.set_num_threads(n)
        for kind, size, is_insertion in (("hole", hole, False), ("insertion", insertion, True)):
            fills = {}
            for cache in ("none", "dual"):
                req = hole_request(model, document, size, steps, insertion=is_insertion, cache=cache)
                _fill_ids(model, dataclasses.replace(req, steps=1))  # warm-up: first-call allocations
                walls, cpus, loads = [], [], []
                for _ in range(repeats):
                    loads.append(os.getloadavg()[0])
                    t, c = perf_counter(), process_time()
                    fills[cache], result = _fill_ids(model, req)
                    walls.append(perf_counter() - t)
                    cpus.append(process_time() - c)
                rows.append({"threads": n, "fill": kind, "masked": size, "cache": cache, "steps": steps,
                             "canvas_tokens": build(model, req).ids.numel(), "nfe": result.nfe,
                             "wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3),
                             "load_1min": round(statistics.median(loads), 2)})
            agree = sum(a == b for a, b in zip(fills["none"], fills["dual"])) / max(1, len(fills["none"]))
            rows[-1]["agreement"] = round(agree, 4)
    return rows


def dit_main(argv: list[str] | None = None) -> int:
    """``python -m lacuna.engine.bench.speed dit``: MDLM and SEDD in their real layouts
    with random weights on this CPU (see dit_figures and cache_agreement)."""
    import argparse

    from .overhead import machine
    from ..errors import LacunaError

    def positive(text: str) -> int:
        if not text.strip().isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
        return int(text)

    def counts(text: str) -> tuple[int, ...]:
        return tuple(positive(t) for t in text.split(","))

    p = argparse.ArgumentParser(prog="python -m lacuna.engine.bench.speed dit", description=dit_main.__doc__)
    p.add_argument("--family", action="append", choices=tuple(DIT_SHAPES), help="mdlm, sedd (default both)")
    p.add_argument("--tokenizer", default=None, help="a folder with GPT-2's tokenizer.json (default: the HF cache)")
    p.add_argument("--dtype", action="append", choices=("float32", "bfloat16"), help="default: both")
    p.add_argument("--threads", type=counts, default=(1, 2), help="torch thread counts, comma-separated")
    p.add_argument("--document", type=positive, default=1000)
    p.add_argument("--hole", type=positive, default=32)
    p.add_argument("--insertion", type=positive, default=128)
    p.add_argument("--steps", type=positive, default=32)
    p.add_argument("--repeats", type=positive, default=1)
    p.add_argument("--layers", type=positive, default=None, help="blocks of the timed networks (default: all 12)")
    p.add_argument("--agreement", type=int, default=0, metavar="N",  # 0: not measured
                   help="also the cache's token agreement over N requests on --agreement-layers blocks")
    p.add_argument("--agreement-layers", type=positive, default=2)
    p.add_argument("--init-std", type=float, default=None,
                   help="random weights from N(0, std^2) instead of torch's default initialisation")
    p.add_argument("--drift", action="store_true",
                   help="also how far one cached step strays from the plain pass as the hole's slots commit "
                        "(on the timed network; see cache_drift)")
    p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                   help="the full-size seconds per fill (--no-figures: the agreement or the drift only)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    threads = args.threads
    report = {"machine": machine(), "runs": []}
    try:
        for family in args.family or list(DIT_SHAPES):
            for dtype in args.dtype or ["float32", "bfloat16"]:
                dt = getattr(torch, dtype)
                entry = {"family": family, "dtype": dtype}
                if args.figures or args.drift:
                    model = random_dit(family, args.tokenizer, layers=args.layers, dtype=dt, init_std=args.init_std)
                    entry["model"] = model.name
                    if args.figures:
                        entry["rows"] = dit_figures(model, args.document, args.hole, args.insertion, args.steps,
                                                    threads, args.repeats)
                    if args.drift:
                        torch.set_num_threads(max(threads))
                        entry["drift"] = cache_drift(model, args.document, args.hole)
                    del model
                if args.agreement:
                    torch.set_num_threads(max(threads))
                    small = random_dit(family, args.tokenizer, layers=args.agreement_layers, dtype=dt,
                                       init_std=args.init_std)
                    entry["agreement"] = dict(cache_agreement(small, args.agreement), model=small.name)
                report["runs"].append(entry)
                if not args.json:
                    _print_dit(entry)
    except LacunaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else f"machine: {report['machine']}")
    return 0


def _print_dit(entry: dict) -> None:
    if "rows" in entry:
        print(f"{entry['model']}, {entry['dtype']}")
        print("| threads | fill | canvas | cache | NFE | wall s | CPU s | load (1 min) | agreement |")
        print("|---:|---|---:|---|---:|---:|---:|---:|---:|")
        for r in entry["rows"]:
            agree = f"{100 * r['agreement']:.1f}%" if "agreement" in r else ""
            print(f"| {r['threads']} | {r['masked']}-token {r['fill']} | {r['canvas_tokens']} | {r['cache']} | "
                  f"{r['nfe']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['load_1min']:.1f} | {agree} |")
    if "drift" in entry:
        print(f"{entry['model']}, {entry['dtype']}: one cached step against the plain pass, by slots committed "
              f"since the refresh")
        print("| committed | sigma refresh -> step | argmax same | max abs log-prob diff |")
        print("|---:|---|---:|---:|")
        for r in entry["drift"]:
            print(f"| {r['committed']} | {r['sigma_refresh']:.4f} -> {r['sigma_step']:.4f} | "
                  f"{r['argmax_same']}/{r['slots']} | {r['max_abs_logprob_diff']:.3g} |")
    if "agreement" in entry:
        a = entry["agreement"]
        print(f"{a['model']}, {entry['dtype']}: dual cache vs plain loop over {a['requests']} greedy fills of a "
              f"{a['hole']}-token hole in {a['document_tokens']} tokens, {a['steps']} steps: "
              f"{a['tokens_same']}/{a['tokens']} tokens the same ({100 * a['agreement']:.1f}%), "
              f"{a['fills_identical']} fills identical")


if __name__ == "__main__":
    if sys.argv[1:2] != ["dit"]:
        sys.exit("usage: python -m lacuna.engine.bench.speed dit [--family mdlm|sedd] ...; the other modes are "
                 "`lacuna-cli bench speed`")
    sys.exit(dit_main(sys.argv[2:]))
