"""The fit estimate (engine.hub.fit) against the measured peak memory of real runs (issue 19).

Each case builds a native network with the real widths of LLaDA-8B or
Dream-7B and one or two layers (random weights), loads a tokenizer, and runs
the engine's own sampler (engine.sampler.stream_candidates) for two steps on
a document of ``context`` tokens with one insertion of ``hole`` masked
tokens: the first step is the run's peak (a full forward pass that fills
the dual cache, then the sampler over hole x vocabulary); the second is
there to show that a later step (a cached one, with the cache on) holds no
more. It measures the process's peak RSS (Linux VmHWM, reset through
/proc/self/clear_refs) over the RSS before the tokenizer was loaded, in a
fresh process per case, and sets it beside ``fit.estimate`` for the same
shapes, precision, context, hole and cache. The same figures are taken
apart: tokenizer (loaded, with the encoders and vocabulary profile the
adapter builds at load, then after a first small run), weights, and the
run's working memory over all of that.

The tokenizer is synthetic (a word-level vocabulary of the model's size,
through the engine's FastTokenizer) unless ``--tokenizer FOLDER`` names a
real one (tokenizer.json, or Dream's vocab.json + merges.txt).

It measures; nothing passes or fails. Usage::

    python -m lacuna.engine.bench.fit                  # the default cases (minutes: real widths)
    python -m lacuna.engine.bench.fit --quick          # the short-document cases only
    python -m lacuna.engine.bench.fit verdicts         # full-depth verdicts for issue 19's cases
    python -m lacuna.engine.bench.fit one '{"family": "llada", "context": 512, "hole": 64}'   # one case, here

A case is JSON: family (llada | dream), layers (1), dtype (bfloat16 |
float32), context, hole, cache (dual | none; default the family's),
candidates (1), temperature (0), top_p (1), config (overrides of the
family's reference shapes, e.g. {"d_model": 512} for a small test),
tokenizer (a folder, optional), threads (2; or LACUNA_BENCH_THREADS); or
folder (a checkpoint loaded as a user loads it, any family, instead of
family/config/tokenizer). ``one`` also takes a JSON list, measured in
order in one process (order it by growing peak). ``--only TEXT`` runs the
cases whose label has TEXT, ``--json`` prints every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from time import perf_counter

GIB = 1 << 30
MIB = 1 << 20

# (label, case): the short and full-context documents, with a small and a large hole,
# the cache on and off, at the real widths with one layer (two for the per-layer scaling).
CASES = [
    ("LLaDA short", dict(family="llada", context=256, hole=32, cache="dual")),
    ("LLaDA short, no cache", dict(family="llada", context=256, hole=32, cache="none")),
    ("LLaDA full context", dict(family="llada", context=4096, hole=32, cache="dual")),
    ("LLaDA full context, no cache", dict(family="llada", context=4096, hole=32, cache="none")),
    ("LLaDA full context, 2 layers", dict(family="llada", layers=2, context=4096, hole=32, cache="dual")),
    ("LLaDA full context, 3000-token hole", dict(family="llada", context=4096, hole=3000, cache="dual")),
    ("LLaDA full context, 3000-token hole, no cache", dict(family="llada", context=4096, hole=3000, cache="none")),
    ("LLaDA 1024, 512-token hole, sampling", dict(family="llada", context=1024, hole=512, cache="dual",
                                                   temperature=1.0)),
    ("LLaDA 1024, 512-token hole, top-p 0.9", dict(family="llada", context=1024, hole=512, cache="dual", top_p=0.9)),
    ("LLaDA 1024, 256-token hole, 2 candidates", dict(family="llada", context=1024, hole=256, cache="dual",
                                                       candidates=2)),
    ("LLaDA 1024, 256-token hole, float32", dict(family="llada", context=1024, hole=256, cache="dual",
                                                  dtype="float32")),
    ("Dream short", dict(family="dream", context=256, hole=32, cache="dual")),
    ("Dream full context", dict(family="dream", context=2048, hole=32, cache="dual")),
    ("Dream full context, 1400-token hole", dict(family="dream", context=2048, hole=1400, cache="dual")),
    ("Dream full context, 1400-token hole, no cache", dict(family="dream", context=2048, hole=1400, cache="none")),
]
QUICK = ("LLaDA short", "LLaDA short, no cache", "Dream short")


# building ------------------------------------------------------------------------
def _family(name: str):
    """(module, config class, reference-config factory, logit shift, layer-count key) of a native family."""
    if name == "llada":
        from ..models import llada

        return llada, llada.LLaDAConfig, llada.LLaDAConfig.llada_8b, 0, "n_layers"
    if name == "dream":
        from ..models import dream

        return dream, dream.DreamConfig, dream.DreamConfig.dream_7b, 1, "num_hidden_layers"
    raise ValueError(f"no benchmark network for the {name!r} family: use llada or dream")


def build_config(case: dict):
    _, _, reference, _, layers_key = _family(case["family"])
    return reference(**{layers_key: int(case.get("layers", 1)), **case.get("config", {})})


def build_network(case: dict, config, dtype):
    """Random weights at ``config``'s shapes, every page written (so RSS holds them)."""
    import torch

    module = _family(case["family"])[0]
    network_class = module.LLaDANetwork if case["family"] == "llada" else module.DreamNetwork
    with torch.device("meta"):
        net = network_class(config).to(dtype)
    net.to_empty(device="cpu")
    with torch.no_grad():
        net.reset_parameters()
    return net.eval().requires_grad_(False)


def synthetic_tokenizer(vocab: int, mask_id: int, context: int):
    """The engine's FastTokenizer over a word-level vocabulary "w0" ... of ``vocab`` entries."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from ..models.tokenizer import FastTokenizer

    backend = Tokenizer(models.WordLevel({f"w{i}": i for i in range(vocab)}, unk_token="w0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return FastTokenizer(backend, context, {"mask_token": f"w{mask_id}", "unk_token": "w0"})


def load_tokenizer(case: dict, config, context: int):
    folder = case.get("tokenizer")
    vocab = config.logits_width
    if not folder:
        return synthetic_tokenizer(vocab, config.mask_token_id, context)
    from ..models.native import load_tokenizer as load

    path = Path(folder)
    backend = None
    if not (path / "tokenizer.json").is_file():
        from ..models.dream import qwen2_backend

        backend = qwen2_backend(path, path.name)
    return load(path, config.to_config(), path.name, context, backend=backend)


def _words(tokenizer, n: int) -> str:
    """A text of about ``n`` tokens: "the" repeated where it is one token, else distinct words."""
    from ..models import vocab

    if n <= 0:
        return ""
    if len(vocab.encode(tokenizer, " the")) == 1 and len(vocab.encode(tokenizer, "the", True)) == 1:
        return " ".join(["the"] * n)
    return " ".join(f"w{1000 + i}" for i in range(n))


def _request(tokenizer, context: int, hole: int, case: dict):
    """An insertion of ``hole`` tokens in the middle of a text of about ``context - hole`` tokens."""
    from ..types import InfillRequest, Span

    words = max(0, context - hole)
    left = _words(tokenizer, words // 2)
    right = _words(tokenizer, words - words // 2)
    text = left + (" " if left and right else "") + right
    cut = len(left)
    return InfillRequest(text=text, spans=(Span(cut, cut, length=hole),), steps=max(2, hole), seed=0,
                         cache=case.get("cache"), temperature=float(case.get("temperature", 0.0)),
                         top_p=float(case.get("top_p", 1.0)))


def _run(model, request, candidates: int, steps: int = 2) -> int:
    from ..errors import Cancelled
    from ..sampler import stream_candidates

    cancel = threading.Event()
    taken = 0
    try:
        for _ in stream_candidates(model, request, tuple(range(candidates)), cancel):
            taken += 1
            if taken >= steps:
                cancel.set()
    except Cancelled:
        pass
    return taken


def _warm_up(case: dict, dtype) -> None:
    """Library code and first-use state (oneDNN kernels, lazy imports) into the baseline:
    a tiny network of the family through the same sampler paths."""
    from ..models.native import NativeAdapter

    _, _, reference, shift, layers_key = _family(case["family"])
    tiny = dict(d_model=64, n_heads=4, n_kv_heads=4, mlp_hidden_size=64, embedding_size=128) \
        if case["family"] == "llada" else dict(hidden_size=64, intermediate_size=64, num_attention_heads=4,
                                                num_key_value_heads=2, pad_token_id=1, bos_token_id=1, eos_token_id=1)
    config = reference(**{layers_key: 1, "vocab_size": 128, "mask_token_id": 127, **tiny})
    net = build_network(case, config, dtype)
    tok = synthetic_tokenizer(128, 127, 64)
    model = NativeAdapter("warm-up", case["family"], net, tok, 127, 64, logit_shift=shift)
    for cache in ("dual", "none"):
        warm = dict(case, cache=cache)
        _run(model, _request(tok, 48, 8, warm), int(case.get("candidates", 1)))
    del model, net, tok


def measure(case: dict) -> dict:
    """One case in this process: measured peaks (bytes) and the estimate for the same work.

    ``case["folder"]``: a checkpoint folder loaded as a user loads it
    (engine.models.loader.load_model: any family, its own tokenizer); then
    the load and a first small fill are measured together, as "loaded".
    Otherwise a random native network (``family``) and a synthetic or given
    tokenizer, measured apart."""
    import torch

    from .. import canvas as canvas_mod
    from .native import peak_rss, reset_peak, tensor_bytes
    from ..hub import fit
    from ..models.native import NativeAdapter

    threads = int(case.get("threads") or os.environ.get("LACUNA_BENCH_THREADS") or 2)
    torch.set_num_threads(max(1, threads))
    dtype = getattr(torch, case.get("dtype", "bfloat16"))
    candidates = int(case.get("candidates", 1))
    folder = case.get("folder")
    if folder:
        from ..models.loader import load_model

        warm = load_model(folder, device="cpu", dtype=dtype)  # library code and first-use state into the baseline
        _run(warm, _request(warm.tokenizer, 16, 2, case), candidates, steps=1)
        del warm
        base = reset_peak()
        t0 = perf_counter()
        model = load_model(folder, device="cpu", dtype=dtype)
        build_s = perf_counter() - t0
        loaded = base
        tokenizer, net = model.tokenizer, model.network
        shape = fit.shape_for(folder)
    else:
        _warm_up(case, dtype)
        shift = _family(case["family"])[3]
        config = build_config(case)
        from ..models.families import BY_NAME
        from ..models.vocab import facts

        limit = min(BY_NAME[case["family"]].context or config.max_positions, config.max_positions)
        base = reset_peak()
        tokenizer = load_tokenizer(case, config, limit)
        # the vocabulary facts the adapter builds at load: the tokenizer's share, not the weights'
        facts(tokenizer, min(config.logits_width, len(tokenizer)))
        loaded = reset_peak()
        t0 = perf_counter()
        net = build_network(case, config, dtype)
        build_s = perf_counter() - t0
        model = NativeAdapter("bench", case["family"], net, tokenizer, config.mask_token_id, limit,
                              logit_shift=shift)
        shape = fit.shape_from_config(config.to_config())
    built = reset_peak()
    # a first small run: what any first fill builds beyond the vocabulary facts of the load
    _run(model, _request(tokenizer, 16, 2, case), 1, steps=1)
    request = _request(tokenizer, int(case["context"]), int(case["hole"]), case)
    canvas = canvas_mod.build(model, request)
    length, hole = int(canvas.ids.numel()), int(canvas.masked.sum())
    del canvas
    ready = reset_peak()
    t0 = perf_counter()
    steps = _run(model, request, candidates)
    run_s = perf_counter() - t0
    peak = peak_rss()

    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    cache = case.get("cache")
    est = fit.estimate(shape, precision, "cpu", length, hole=hole, cache=None if cache is None else cache == "dual",
                       candidates=candidates, sampling=float(case.get("temperature", 0.0)) > 0,
                       top_p=float(case.get("top_p", 1.0)) < 1)
    vocab = shape.vocab_size or 0
    return {
        "case": case, "threads": torch.get_num_threads(), "dtype": str(dtype).replace("torch.", ""),
        "context": length, "hole": hole, "vocab": vocab, "steps": steps,
        "build_seconds": round(build_s, 1), "run_seconds": round(run_s, 1),
        "weights_tensor_bytes": tensor_bytes(net), "parameters": shape.parameters,
        "network_parameters": sum(p.numel() for p in net.parameters()),
        # a folder's load may map the weights lazily (safetensors): its pages count once a fill touched them
        "measured": {"total": peak - base, "loaded": ready - base, "working": peak - ready} if folder else
                    {"total": peak - base, "tokenizer": (loaded - base) + (ready - built),
                     "weights": built - loaded, "working": peak - ready},
        "estimate": {"total": est.total, "tokenizer": fit.tokenizer_bytes(vocab), "weights": est.weights,
                     "working": est.working, "cache": est.cache, "activations": est.activations,
                     "sampler": est.sampler, "overhead": est.overhead},
        "error_pct": round(100 * (est.total - (peak - base)) / (peak - base), 1),
    }


# the cases, each in a fresh process --------------------------------------------------
def run_case(case: dict, timeout: float = 1800) -> dict:
    """``measure(case)`` in a fresh Python process (a peak cannot be taken back in one)."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "lacuna.engine.bench.fit", "one", json.dumps(case)],
                         capture_output=True, text=True, timeout=timeout, cwd=root)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"case {json.dumps(case)} failed: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mib(n: float) -> str:
    return f"{n / MIB:,.0f}"


def format_row(label: str, r: dict) -> str:
    m, e = r["measured"], r["estimate"]
    c = r["case"]
    extra = "".join([f", {c['layers']} layers" if c.get("layers", 1) != 1 else "",
                     f", {c['candidates']} candidates" if c.get("candidates", 1) != 1 else ""])
    return (f"| {label} | {r['dtype']} | {r['context']} | {r['hole']} | {c.get('cache') or 'default'}{extra} | "
            f"{_mib(m['total'])} | {_mib(e['total'])} | {r['error_pct']:+.1f}% | "
            f"{_mib(m.get('weights', 0))} / {_mib(e['weights'])} | {_mib(m.get('tokenizer', 0))} / "
            f"{_mib(e['tokenizer'])} | {_mib(m['working'])} / {_mib(e['working'])} |")


HEADER = ("| case | dtype | L | H | cache | measured MiB | estimate MiB | error | weights m / e | "
          "tokenizer m / e | working m / e |\n|---|---|---|---|---|---|---|---|---|---|---|")


def verdicts() -> str:
    """Full-depth verdicts for issue 19's cases: the old figure (512 tokens, no cache, no
    sampler) is in the issue; these are the estimate for the work it names."""
    from ..hub import fit
    from ..hub.fmt import human_bytes

    cases = [
        ("llada-8b-instruct", "int4", 8, 4096, 32, None),
        ("llada-8b-instruct", "int8", 12, 4096, 32, None),
        ("llada-8b-instruct", "bf16", 24, 4096, 3000, True),
        ("llada-8b-instruct", "bf16", 24, 4096, 3000, False),
        ("dream-7b-instruct", "bf16", 16, 2048, 1400, None),
        ("dream-7b-instruct", "bf16", 24, 2048, 1400, None),
    ]
    lines = ["| model | precision | card | document | hole | cache | needs | verdict | longest document that fits |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, precision, card, context, hole, cache in cases:
        shape = fit.shape_for(name)
        device = fit.Device("cuda", 0, f"{card} GiB", card * GIB, card * GIB, True)
        est = fit.estimate(shape, precision, device.label, context, hole=hole, cache=cache)
        longest = fit.longest_context(shape, precision, device, hole=hole, cache=cache)
        said = fit.verdict(est.total, device.available, device.total)
        lines.append(f"| {name} | {precision} | {card} GiB | {est.context} | {est.hole} | "
                     f"{'dual' if est.cache else 'none'} | {est.total / GIB:.2f} GiB ({human_bytes(est.total)}) | "
                     f"{said} | {longest or 'none'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lacuna.engine.bench.fit", description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", default="cases", choices=("cases", "one", "verdicts"))
    parser.add_argument("case", nargs="?", help="one: the case as JSON")
    parser.add_argument("--quick", action="store_true", help="the short-document cases only")
    parser.add_argument("--only", default=None, help="cases whose label contains this text")
    parser.add_argument("--tokenizer", default=None, help="Dream's tokenizer folder (vocab.json + merges.txt)")
    parser.add_argument("--json", action="store_true", help="print every case's figures as JSON lines")
    args = parser.parse_args(argv)
    if args.what == "one":
        # a list is measured in order, in this process: order it by growing peak, so that
        # memory freed by one case cannot hide part of the next one's peak
        spec = json.loads(args.case or "{}")
        print(json.dumps([measure(c) for c in spec] if isinstance(spec, list) else measure(spec)))
        return 0
    if args.what == "verdicts":
        print(verdicts())
        return 0
    chosen = [(label, case) for label, case in CASES
              if (not args.quick or label in QUICK) and (args.only is None or args.only in label)]
    if not args.json:
        print(HEADER)
    for label, case in chosen:
        if args.tokenizer and case["family"] == "dream":
            case = dict(case, tokenizer=args.tokenizer)
        result = run_case(case)
        print(json.dumps({"label": label, **result}) if args.json else format_row(label, result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
