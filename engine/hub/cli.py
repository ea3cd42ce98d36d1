"""``lacuna-cli models ...``: list, pull, verify, rm, fit, add.

The lead's engine/cli.py calls :func:`add_parser` on its subparsers and then
``args.func(args)``. Exit status: 0 done, 2 bad input, 1 failure; messages are
one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from .fmt import human_bytes, human_count, human_eta, human_rate

CANNOT_LOAD = "the engine cannot load this family yet"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "models", help="list, download, verify, remove and size up models",
        description="Models live in the shared Hugging Face cache; Lacuna records what it installed.")
    sub = parser.add_subparsers(dest="models_command", metavar="COMMAND")

    p = sub.add_parser("list", help="catalog and installed models (offline)")
    p.add_argument("--json", action="store_true", help="print one JSON array")

    p = sub.add_parser("pull", help="download a model, resuming what was started, and verify it")
    p.add_argument("id", help="catalog id or Hub repo id (org/name)")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="accept the repo's custom code at this commit (Lacuna itself never runs it)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="fetch pickled .bin/.pt weights when the repo has no safetensors")
    p.add_argument("--stall-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    p.add_argument("--retries", type=int, default=5, help=argparse.SUPPRESS)

    p = sub.add_parser("verify", help="re-check the sha256 of every file of an installed model")
    p.add_argument("id")

    p = sub.add_parser("rm", help="delete an installed model from the cache")
    p.add_argument("id")

    p = sub.add_parser("fit", help="will a model fit this machine? (offline)",
                       description="The memory a fill needs, per precision, for a document of --context tokens "
                                   "with --hole masked tokens, and the longest document that fits on each device.")
    p.add_argument("id", nargs="?", help="catalog id or repo id (default: the whole catalog)")
    p.add_argument("--context", type=int, default=None, metavar="N",
                   help="document length in tokens, masks included (default: the model's whole context)")
    p.add_argument("--hole", type=int, default=None, metavar="N",
                   help="masked tokens filled at once (default 256; with blocks, the tokens of one block)")
    p.add_argument("--context-tokens", type=int, default=None, metavar="N",
                   help="the most tokens the model sees, as infill --context-tokens (default: its whole context)")
    p.add_argument("--cache", choices=("dual", "none"), default=None,
                   help="the context cache (default: the model's own, dual for LLaDA, Dream and LLaDA-MoE)")
    p.add_argument("--candidates", type=int, default=1, metavar="N", help="candidates per fill (default 1)")
    p.add_argument("--card", type=float, default=None, metavar="GB",
                   help="size up a GPU of this many GB instead of this machine's devices: GiB, as cards are "
                        "sold (an 8 GB card holds 8 GiB), all of it free")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("recommend", help="the best model for this machine (or a GPU card size)",
                       description="The largest catalog model that fits and fills a sentence (32 masked tokens "
                                   "in a 512-token document, 16 steps) within --max-seconds on this machine. "
                                   "The first run times the bundled starter to measure this machine's speed.")
    p.add_argument("--card", type=float, default=None, metavar="GB",
                   help="recommend for a GPU of this many GB instead (its speed is not estimated)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="the longest fill you will wait for (default 30)")
    p.add_argument("--remeasure", action="store_true",
                   help="time the starter again (the speed recorded first may be slow if the machine was busy)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("add", help="add a Hub repo id or a local folder to your catalog")
    p.add_argument("spec", help="org/name or a folder")

    parser.set_defaults(func=run)
    parser.set_defaults(_models_parser=parser)
    return parser


def _err(message: str) -> None:
    print(f"lacuna-cli: {message}".splitlines()[0], file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from lacuna.engine.errors import InputError, LacunaError

    command = getattr(args, "models_command", None)
    if not command:
        parser = getattr(args, "_models_parser", None)
        if parser is not None:
            parser.print_help(sys.stderr)
        _err("models: choose a command: list, pull, verify, rm, fit, recommend, add")
        return 2
    try:
        return {"list": _list, "pull": _pull, "verify": _verify, "rm": _rm, "fit": _fit,
                "recommend": _recommend, "add": _add}[command](args)
    except KeyboardInterrupt:
        _err("interrupted; partial files are kept: run the same command to resume")
        return 1
    except BrokenPipeError:
        raise  # the reader of stdout left (`| head`): the caller ends quietly
    except InputError as err:
        _err(str(err))
        return 2
    except LacunaError as err:
        _err(str(err))
        return 1
    except Exception as err:  # noqa: BLE001 - the CLI promises no tracebacks
        _err(f"{type(err).__name__}: {err}")
        return 1


def _note(info: Any) -> str:
    if info.family == "unknown":
        return "family known after download" if info.status == "available" else ""
    if info.status in ("available", "partial", "installed", "cached", "corrupt") and not info.loadable:
        return CANNOT_LOAD
    if info.status == "partial":
        return f"{human_bytes(info.partial_bytes)} downloaded; pull again to resume"
    if info.status == "corrupt":
        return "not verified: run `lacuna-cli models verify` or pull again"
    return ""


def _list(args: argparse.Namespace) -> int:
    from . import advice, catalog
    from .manage import list_models

    models = list_models()
    entries = {e["id"]: e for e in catalog.entries()}
    rate = _recorded_rate()
    if args.json:
        out = []
        for m in models:
            d = m.as_dict()
            d["note"] = _note(m)
            entry = entries.get(m.id)
            if not m.size and entry is not None:
                d["size"], d["size_estimated"] = advice.download_size(entry)
            d["seconds_per_fill"] = advice.fill_seconds(entry, rate) if entry is not None else None
            out.append(d)
        print(json.dumps(out, indent=2))
        return 0
    rows = [("ID", "FAMILY", "PARAMS", "SIZE", "PER FILL", "STATUS", "NOTE")]
    for m in models:
        entry = entries.get(m.id)
        size = human_bytes(m.size) if m.size else (
            advice.size_text(*advice.download_size(entry)) if entry is not None else "?")
        speed = advice.seconds_text(advice.fill_seconds(entry, rate)) if entry is not None else "—"
        rows.append((m.id, m.family, human_count(m.parameters), size, speed, m.status, _note(m)))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[6])
    print("SIZE: ≈ marks an estimate (parameters x bytes of the dtype); " + (
        "PER FILL: a sentence (32 tokens, 16 steps) on this CPU, estimated from the starter's measured speed"
        if rate else "PER FILL: run `lacuna-cli models recommend` once to measure this machine's speed"))
    return 0


def _recorded_rate() -> float | None:
    """This machine's recorded FLOP/s, without importing torch when none is recorded at all."""
    from . import speed_estimate, store

    if not store.read(speed_estimate.SPEED_FILE, {}):
        return None
    return speed_estimate.measured_rate()


def _recommend(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from lacuna.engine.errors import InputError

    from . import advice, fit

    if args.card is not None and not 0 < args.card < 100_000:
        raise InputError(f"models recommend: --card must be a size in GB, such as 8 or 24, got {args.card:g}")
    if args.max_seconds is not None and not args.max_seconds > 0:
        raise InputError(f"models recommend: --max-seconds must be a positive number, got {args.max_seconds:g}")
    devices = [advice.card(args.card)] if args.card is not None else fit.detect_devices()
    rate = None
    if devices[0].kind == "cpu":
        rate = None if args.remeasure else advice.machine_rate(calibrate=False)
        if rate is None:
            print("Measuring this machine's speed with the bundled starter…", file=sys.stderr)
            rate = advice.machine_rate(again=args.remeasure)
    best = advice.recommend(devices, rate, max_seconds=args.max_seconds or advice.MAX_SECONDS)
    if best is None:
        _err("no model in the catalog fits this machine")
        return 1
    if args.json:
        def plain(option: Any) -> dict[str, Any] | None:
            if option is None:
                return None
            d = {k: v for k, v in asdict(option).items() if k not in ("entry", "alternative", "work")}
            return {"id": option.id, "name": option.name, **d}

        print(json.dumps({**plain(best), "alternative": plain(best.alternative),
                          "work": asdict(best.work), "rate_flops_per_s": rate}, indent=2))
        return 0
    print(_advice_line(best))
    if best.alternative is not None:
        print("quickest that writes: " + _advice_line(best.alternative))
    print(best.reason)
    if rate:
        print(f"This machine's speed: {rate / 1e9:.{1 if rate < 1e10 else 0}f} GFLOP/s, from the starter's fill "
              "(run with --remeasure to time it again if the machine was busy then).")
    if best.bundled:
        print(f"The starter is a {human_count(best.parameters)}-parameter demonstration: its fills show how "
              "diffusion infilling works, not sensible text.")
    elif best.size:
        print(f"Download it with: lacuna-cli models pull {best.id}")
    return 0


def _advice_line(option: Any) -> str:
    from . import advice

    precision = advice.PRECISION_LABEL.get(option.precision, option.precision)
    where = option.device_name if option.device_name.endswith(" GB card") else option.device
    parts = [f"{option.id} ({option.name})", f"download {advice.size_text(option.size, option.size_estimated)}",
             f"{option.verdict} on {where} in {precision} (needs {human_bytes(option.need)})"]
    if option.seconds is not None:
        parts.append(f"about {advice.seconds_text(option.seconds)} per fill")
    return ", ".join(parts) + (f" [{option.note}]" if option.note else "")


class _Printer:
    """A progress bar on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_line = 0.0
        self.last_decile = -1
        self.states: dict[str, str] = {}
        self.last_message = ""

    def __call__(self, p: Any) -> None:
        for f in p.files:
            old = self.states.get(f.path)
            if f.state != old:
                self.states[f.path] = f.state
                if f.state in ("done", "cached"):
                    self._line(f"{f.path}: {'already in the cache' if f.state == 'cached' else 'done'} "
                               f"({human_bytes(f.size)})")
        if p.phase == "retrying" and p.message and p.message != self.last_message:
            self._line(p.message)
        if p.message:
            self.last_message = p.message
        if p.phase in ("downloading", "retrying") and p.total:
            if self.tty:
                width = 30
                filled = int(width * p.fraction)
                bar = "#" * filled + "." * (width - filled)
                text = (f"\r[{bar}] {int(p.fraction * 100):3d}% {human_bytes(p.done)}/{human_bytes(p.total)}"
                        f" {human_rate(p.rate)} ETA {human_eta(p.eta)}   ")
                self.stream.write(text)
                self.stream.flush()
            else:
                decile = int(p.fraction * 10)
                now = time.monotonic()
                if decile != self.last_decile and now - self.last_line >= 1.0 or decile == 10 and \
                        self.last_decile != 10:
                    self.last_decile = decile
                    self._line(p.describe())

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 79 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()
        self.last_line = time.monotonic()


def _pull(args: argparse.Namespace) -> int:
    from .download import PullOptions
    from .manage import pull_with_companions as pull

    options = PullOptions(stall_timeout=args.stall_timeout, max_retries=args.retries,
                          trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle)
    printer = _Printer(sys.stdout)
    try:
        record = pull(args.id, args.revision, progress=printer, options=options)
    finally:
        printer.finish()
    print(f"{record['repo']}@{record['commit'][:12]}: installed and verified, "
          f"{len(record['files'])} files, {human_bytes(record['size'])}")
    from . import catalog

    family = record.get("family") or "unknown"
    if family not in catalog.LOADABLE_FAMILIES:
        print(f"note: {family} models: {CANNOT_LOAD}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from . import catalog
    from .manage import folder_facts, verify

    entry = catalog.catalog_entry(args.id)
    if entry is not None and entry.get("bundled"):
        from lacuna.engine import resources

        folder = resources.path(entry["bundled"])
        family, _, size = folder_facts(folder)
        if not (folder / "config.json").is_file():
            _err(f"{entry['id']}: the bundled model is missing from this installation ({folder}); "
                 f"reinstall Lacuna")
            return 1
        print(f"{entry['id']}: bundled with Lacuna ({family}, {human_bytes(size)} at {folder}); it is not "
              f"downloaded, so there is no Hub hash to check it against")
        return 0
    report = verify(args.id)
    if report.ok:
        print(report.message())
        return 0
    _err(report.message())
    return 1


def _rm(args: argparse.Namespace) -> int:
    from .manage import remove

    freed = remove(args.id)
    print(f"{args.id}: removed ({human_bytes(freed)} freed)")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from lacuna.engine.errors import InputError

    from . import catalog, fit

    for flag, value in (("--context", args.context), ("--hole", args.hole), ("--context-tokens", args.context_tokens)):
        if value is not None and value < 1:
            raise InputError(f"models fit: {flag} must be a positive number of tokens, got {value}")
    if args.candidates < 1:
        raise InputError(f"models fit: --candidates must be 1 or more, got {args.candidates}")
    if args.card is not None and not 0 < args.card < 100_000:
        raise InputError(f"models fit: --card must be a size in GB, such as 8 or 24, got {args.card:g}")
    if args.card is not None:
        size = int(args.card * fit.GIB)
        devices = [fit.Device("cuda", 0, f"a simulated {args.card:g} GiB card, all of it free", size, size, True)]
    else:
        devices = fit.detect_devices()
    if args.id:
        entry = catalog.catalog_entry(args.id)
        if entry is None and not catalog.is_repo_id(args.id):
            from .validate import show

            raise InputError(f"{show(args.id)} is not a catalog id or a Hub repo id")
        targets = [(args.id, entry or args.id)]
    else:
        targets = [(e["id"], e) for e in catalog.entries()]
    work = {"hole": args.hole, "cache": None if args.cache is None else args.cache == "dual",
            "candidates": args.candidates, "context_tokens": args.context_tokens}
    # per model, per device: the verdicts for this work (fit_model sizes up the first device it is given)
    results = {name: [(d, fit.fit_model(target, [d], args.context, **work)) for d in devices]
               for name, target in targets}
    if args.json:
        print(json.dumps({
            "devices": [d.__dict__ | {"label": d.label} for d in devices],
            "work": {"context": args.context, **work},
            "models": {name: [asdict(f) for f in per[0][1]] for name, per in results.items()},
            "per_device": {name: {d.label: [asdict(f) for f in fits] for d, fits in per}
                           for name, per in results.items()}}, indent=2))
        return 0
    for d in devices:
        print(f"{d.label}: {d.name}, {human_bytes(d.available)} free of {human_bytes(d.total)}")
    for name, per in results.items():
        print(f"{name}: " + "; ".join(_fit_summary(f) for f in per[0][1]))
        for d, fits in per:
            for line in _fit_details(d, fits):
                print("  " + line)
    if any(d.kind == "cpu" for d in devices):
        print(f"note: {fit.QUANT_ON_CPU} (LLaDA, Dream and LLaDA-MoE)")
    return 0


def _fit_summary(f: Any) -> str:
    if f.verdict == "n/a":
        return f"{f.precision}: n/a ({f.note})"
    approx = "" if f.exact else "~"
    return f"{f.precision}: {f.verdict} ({approx}{human_bytes(f.need)})" + (f" [{f.note}]" if f.note else "")


def _fit_details(device: Any, fits: list) -> list[str]:
    """The work a device's verdicts are for, then per precision: the estimate's parts and the longest document."""
    sized = [f for f in fits if f.estimate is not None]
    if not sized:
        return []
    first = sized[0].estimate
    whole = " (the whole context)" if sized[0].max_context and first.context >= sized[0].max_context else ""
    cache = "dual cache" if first.cache else "no cache"
    lines = [f"on {device.label}, a {first.context:,}-token document{whole} with {first.hole:,} masked "
             f"tokens, {cache}:"]
    for f in sized:
        e = f.estimate
        parts = [f"weights {human_bytes(e.weights)}"]
        if e.cache:
            parts.append(f"cache {human_bytes(e.cache)}")
        worst = "sampler" if e.sampler >= e.activations else "activations"
        parts.append(f"{worst} {human_bytes(max(e.sampler, e.activations))}")
        parts.append(f"runtime {human_bytes(e.overhead)}")
        if f.longest is None:
            longest = "?"
        elif f.longest == 0:
            longest = "none"
        elif f.max_context and f.longest >= f.max_context:
            longest = f"{f.longest:,} tokens (the whole context)"
        else:
            longest = f"{f.longest:,} tokens"
        approx = "" if f.exact else "~"
        lines.append(f"  {f.precision:>4}: {f.verdict}, needs {approx}{human_bytes(f.need)} ({', '.join(parts)}); "
                     f"longest document that fits: {longest}" + (f" [{f.note}]" if f.note else ""))
    return lines


def _add(args: argparse.Namespace) -> int:
    from . import catalog

    entry = catalog.add_user_entry(args.spec)
    print(f"{entry['id']}: in your catalog")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry for tests and ``python -m lacuna.engine.hub.cli``."""
    parser = argparse.ArgumentParser(prog="lacuna-cli")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_usage(sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
