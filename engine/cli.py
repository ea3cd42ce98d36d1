"""lacuna-cli: infill from the terminal, benchmark, manage models.

Exit status: 0 done, 2 bad input (one line on stderr), 1 anything else.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading

from .errors import InputError, LacunaError
from .types import SAMPLERS


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Usage(Exception):
    pass


def _add_infill(sub) -> None:
    p = sub.add_parser("infill", help="fill [[N]] holes and [[text]] spans in TEXT",
                       description="Fill [[N]] (N new tokens) and [[some text]] (regenerate that text). "
                                   "TEXT '-' reads standard input; \\[[ is a literal [[.")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--model", default="starter", help="catalog id, HF repo id in the local cache, or a folder")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: one per masked token)")
    p.add_argument("--sampler", default="low_confidence", help=f"one of: {', '.join(SAMPLERS)}")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--block-length", type=int, default=None)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the best for the device)")
    p.add_argument("--quant", choices=("int8", "nf4"), default=None,
                   help="8-bit or 4-bit (NF4) weights via bitsandbytes, for LLaDA and Dream (pip install 'lacuna-editor[quant]')")
    p.add_argument("--json", action="store_true", help="print one JSON object: text, spans, nfe, seconds")
    p.add_argument("--events", metavar="FILE", help="write one JSON line per denoising step")
    p.set_defaults(func=_run_infill)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measure engine overhead (and sampler quality on held-out text)")
    p.add_argument("--model", default="starter")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--context", type=int, default=256, help="context tokens around the span")
    p.add_argument("--span", type=int, default=32, help="masked tokens")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quality", action="store_true", help="also measure restore accuracy per sampler on held-out text")
    p.add_argument("--heldout", default=None, help="held-out text file for --quality (default: rebuilt corpus split)")
    p.add_argument("--examples", type=int, default=200)
    p.add_argument("--scale", metavar="FAMILY", default=None,
                   help="instead: a random network with the family's real shapes (llada: LLaDA-8B), "
                        "tokens/s and peak memory of a 256-token infill at 256, 64 and 32 steps, bf16 and 4-bit")
    p.add_argument("--layers", type=int, default=None, help="--scale: blocks to build (default: all on CUDA, 1 elsewhere)")
    p.add_argument("--precisions", default="bf16,nf4", help="--scale: comma-separated, of bf16, fp32, int8, nf4")
    p.add_argument("--scale-steps", default="256,64,32", help="--scale: comma-separated step counts")
    p.add_argument("--measure-steps", type=int, default=None,
                   help="--scale: time only the first K steps of each run and project (default: all on CUDA, 2 elsewhere)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lacuna-cli", description="Lacuna: infill text with diffusion language models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_infill(sub)
    _add_bench(sub)
    try:
        from .hub import cli as hub_cli
    except ImportError:
        hub_cli = None
    if hub_cli is not None:
        hub_cli.add_parser(sub)
    return parser


def _read_text(arg: str) -> str:
    if arg == "-":
        return sys.stdin.read()
    return arg


def _run_infill(args) -> int:
    from .markup import parse
    from .types import InfillRequest

    if args.sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {args.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    marked = _read_text(args.text)
    if not marked.strip():
        raise InputError("the text is empty")
    text, spans = parse(marked)
    if not spans:
        raise InputError("nothing to fill: mark a hole with [[N]] or text to regenerate with [[text]]")
    # Validate everything the user typed before the slow model load.
    probe = InfillRequest(text=text, spans=spans, steps=max(1, args.steps or 1), sampler=args.sampler,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          block_length=args.block_length, threshold=args.threshold, seed=args.seed)
    from . import load_model
    from .canvas import token_count
    from .sampler import stream_infill

    model = load_model(args.model, device=args.device, dtype=args.dtype, quantization=args.quant)
    steps = args.steps or sum(s.length or token_count(model, text, s.start, s.end) for s in spans)
    request = dataclasses.replace(probe, steps=max(1, steps))
    events = open(args.events, "w", encoding="utf-8") if args.events else None
    result = None
    try:
        for event in stream_infill(model, request, threading.Event()):
            if events is not None:
                events.write(json.dumps(_event_json(event), ensure_ascii=False) + "\n")
            result = event.result or result
    finally:
        if events is not None:
            events.close()
    if args.json:
        print(json.dumps({
            "text": result.text,
            "spans": [{"start": s.start, "end": s.end, "length": s.length} for s in result.spans],
            "nfe": result.nfe, "steps": result.steps, "seconds": round(result.seconds, 4), "seed": result.seed,
        }, ensure_ascii=False))
    else:
        sys.stdout.write(result.text if result.text.endswith("\n") else result.text + "\n")
    return 0


def _event_json(event) -> dict:
    return {
        "step": event.step, "steps": event.steps, "nfe": event.nfe, "elapsed": round(event.elapsed, 5),
        "committed": [{"index": c.index, "span": c.span, "token_id": c.token_id, "text": c.text,
                       "confidence": round(c.confidence, 5)} for c in event.committed],
        "tokens": list(event.tokens), "done": event.done,
    }


def _run_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"lacuna-cli: error: {exc}", file=sys.stderr)
        return 2
    except LacunaError as exc:
        print(f"lacuna-cli: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lacuna-cli: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # a CLI prints one line, never a traceback
        if os.environ.get("LACUNA_DEBUG"):
            raise
        print(f"lacuna-cli: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
