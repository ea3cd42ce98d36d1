"""``lacuna-cli bench``: the benchmarks' command line (engine/cli.py adds it, as it adds
``lacuna-cli models`` from engine/hub/cli.py)."""
from __future__ import annotations

from ..cli import _check_model_name, _float_arg, _int_arg, _quiet_transformers
from ..errors import InputError
from ..schedules import MAX_STEPS
from ..types import CACHES


def add_parser(sub) -> None:
    """``lacuna-cli bench``: its arguments, on the CLI's subparsers."""
    p = sub.add_parser("bench", help="measure engine overhead (and sampler quality on held-out text), or speed")
    p.add_argument("mode", nargs="?", default="overhead", choices=("overhead", "speed", "fit"),
                   help="overhead: engine cost over bare forward passes; speed: plain loop vs threshold vs "
                        "dual cache vs both, candidates, cold start (engine.bench.speed); fit: the fit "
                        "estimate against measured peak memory at real widths (engine.bench.fit; minutes)")
    p.add_argument("--model", default="starter")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--context", type=_int_arg(1, 10**6), default=None,
                   help="context tokens around the span (256; speed: 2000)")
    p.add_argument("--span", type=_int_arg(1, 10**6), default=32, help="masked tokens")
    p.add_argument("--steps", type=_int_arg(1, MAX_STEPS), default=None, help="denoising steps (16; speed: 32)")
    p.add_argument("--repeats", type=_int_arg(1, 10**4), default=None, help="timed repetitions (7; speed: 3)")
    p.add_argument("--quality", action="store_true", help="also measure restore accuracy per sampler on held-out text")
    p.add_argument("--heldout", default=None, help="held-out text file for --quality (default: rebuilt corpus split)")
    p.add_argument("--examples", type=_int_arg(1, 10**6), default=None,
                   help="held-out examples per task (200; speed: 100)")
    p.add_argument("--scale", metavar="FAMILY", default=None,
                   help="instead: a random network with the family's real shapes (llada: LLaDA-8B), "
                        "tokens/s and peak memory of a 256-token infill at 256, 64 and 32 steps, bf16 and 4-bit")
    p.add_argument("--layers", type=_int_arg(1, 10**4), default=None,
                   help="--scale: blocks to build (default: all on CUDA, 1 elsewhere); "
                        "speed --random-layout: blocks of the random network (default 4)")
    p.add_argument("--precisions", default="bf16,nf4", help="--scale: comma-separated, of bf16, fp32, int8, nf4")
    p.add_argument("--scale-steps", default="256,64,32", help="--scale: comma-separated step counts")
    p.add_argument("--measure-steps", type=_int_arg(1, MAX_STEPS), default=None,
                   help="--scale: time only the first K steps of each run and project (default: all on CUDA, 2 elsewhere)")
    p.add_argument("--json", action="store_true")
    speed = p.add_argument_group("speed mode")
    speed.add_argument("--random-layout", action="store_true",
                       help="also a randomly initialised network in LLaDA's layout (compute-bound)")
    speed.add_argument("--width", type=_int_arg(64, 10**5), default=512, help="d_model of the random network")
    speed.add_argument("--threshold", type=_float_arg, default=None, help="tau for (b) and (d) (default: the family's)")
    speed.add_argument("--block-length", type=_int_arg(1, 10**6), default=None)
    speed.add_argument("--candidates", default=None, metavar="N,N,...",
                       help="batched candidates against separate runs, e.g. 1,4,8")
    speed.add_argument("--views", default=None, metavar="N,N,...",
                       help="the long-document trade-off: time and single-word restore with the model seeing "
                            "at most N tokens, e.g. 64,128,256,512 (accuracy on --heldout, or the corpus split "
                            "if it has been built)")
    speed.add_argument("--cache", choices=CACHES, default=None,
                       help="speed mode, --views only: the context cache (default: the family's)")
    speed.add_argument("--threads", type=_int_arg(1, 1024), default=None, help="torch threads (default: torch's)")
    speed.add_argument("--cold-start", type=_int_arg(0, 100), default=0, metavar="N",
                       help="time N fresh `lacuna-cli infill` processes on --model (alone, nothing else "
                            "is measured; with --candidates, --views, --quality or --random-layout, those too)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the benchmark ``args.mode`` names; the exit status."""
    from .overhead import main as bench_main

    if args.mode == "fit":
        from .fit import main as fit_main

        return fit_main(["--json"] if args.json else [])

    _check_model_name(args.model)
    _quiet_transformers()
    speed = args.mode == "speed"
    for name, overhead, fast in (("context", 256, 2000), ("steps", 16, 32), ("repeats", 7, 3), ("examples", 200, 100)):
        if getattr(args, name) is None:
            setattr(args, name, fast if speed else overhead)
    if not speed:
        for flag, value in (("--cache", args.cache), ("--views", args.views), ("--candidates", args.candidates)):
            if value is not None:
                raise InputError(f"{flag} applies to `lacuna-cli bench speed` only")
    if speed:
        from .speed import main as speed_main

        for flag, value, example in (("--candidates", args.candidates, "1,4,8"), ("--views", args.views, "128,512")):
            if value is None:
                continue
            try:
                counts = tuple(int(n) for n in value.split(","))
            except ValueError:
                counts = ()
            if not counts or min(counts) < 1:
                raise InputError(f"{flag} takes comma-separated positive counts, e.g. {example}, not {value!r}")
            if flag == "--views" and min(counts) <= args.span:
                raise InputError(f"--views: every view must be larger than the {args.span}-token hole (--span)")
            setattr(args, flag[2:], counts)  # bench_speed takes the parsed counts
        return speed_main(args)
    return bench_main(args)
