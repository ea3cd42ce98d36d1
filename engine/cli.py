"""lacuna-cli: infill from the terminal, benchmark, manage models.

Exit status: 0 done, 2 bad input (one line on stderr), 1 anything else.
Everything the input alone shows to be wrong (markup, numbers, text that is
not UTF-8, an empty or impossible model name, an unwritable --events file) is
refused before the model loads.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import threading
from pathlib import Path

from .errors import InputError, LacunaError, ModelLoadError
from .policies import POLICIES
from .safe_write import AtomicFile, WriteRefused, display
from .schedules import MAX_STEPS  # planned steps run at most (engine.sampler.planned_steps); capped with a note
from .types import CACHES, INSTRUCT_LAYOUTS, SAMPLERS

MAX_STEPS_ACCEPTED = 10**9  # larger --steps is not a step count but a typo
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch.Generator.manual_seed takes
MAX_STDIN = 16 << 20        # bytes of text read from standard input
MAX_NAME = 4096             # characters of a model id or path (PATH_MAX on Linux)
_INT = re.compile(r"[+-]?[0-9]+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _show(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _int_arg(lo: int, hi: int):
    """An argparse type: a whole number in [lo, hi], refused in one short line otherwise."""
    def parse(text: str) -> int:
        if not _INT.fullmatch(text.strip()):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {_show(text)}")
        digits = text.strip().lstrip("+-").lstrip("0")
        value = int(text.strip()) if len(digits) <= 40 else None  # int() of thousands of digits refuses
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {_show(text)}")
        return value

    return parse


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {_show(text)}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Usage(Exception):
    pass


def _add_infill(sub) -> None:
    p = sub.add_parser("infill", help="fill [[N]] holes and [[text]] spans in TEXT",
                       description="Fill [[N]] (N new tokens), [[?]] (as many as the model chooses), "
                                   "[[~N]] (about N tokens) and [[some text]] (regenerate that text). "
                                   "TEXT '-' reads standard input; \\[[ is a literal [[.")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--model", default="starter", help="catalog id, HF repo id in the local cache, or a folder")
    p.add_argument("--steps", type=_int_arg(1, MAX_STEPS_ACCEPTED), default=None,
                   help=f"denoising steps (default: one per masked token; at most {MAX_STEPS} are run)")
    p.add_argument("--sampler", default="low_confidence", help=f"one of: {', '.join(SAMPLERS)}")
    p.add_argument("--temperature", type=_float_arg, default=0.0)
    p.add_argument("--top-k", type=_int_arg(0, 10**9), default=0)
    p.add_argument("--top-p", type=_float_arg, default=1.0)
    p.add_argument("--block-length", type=_int_arg(1, 10**9), default=None)
    p.add_argument("--threshold", type=_float_arg, default=None,
                   help="threshold sampler: commit every token at least this confident (default: the family's tau)")
    p.add_argument("--cache", choices=CACHES, default=None,
                   help="context cache: none (recompute every token each step) or dual (Fast-dLLM's, "
                        "approximate; default: the family's, dual for LLaDA, Dream and LLaDA-MoE)")
    p.add_argument("--context-tokens", type=_int_arg(1, 10**9), default=None,
                   help="the most tokens the model sees: masks, context and the model's own special tokens "
                        "together (default: its whole context)")
    p.add_argument("--instruction", default=None, metavar="TEXT",
                   help="what an Instruct model should do with the marked text, e.g. 'make it more formal' "
                        "(its chat template wraps the document; the text outside the marks stays as it is)")
    p.add_argument("--instruct-layout", choices=INSTRUCT_LAYOUTS, default=INSTRUCT_LAYOUTS[0],
                   help="quoted: the instruction and the marked text in the user turn (default); masked: "
                        "the instruction alone")
    p.add_argument("--seed", type=_int_arg(SEED_MIN, SEED_MAX), default=0,
                   help="random seed (any integer a torch generator takes)")
    p.add_argument("--allow-newlines", action=argparse.BooleanOptionalAction, default=None,
                   help="let fills contain line breaks (default: only where the masked text had one)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the best for the device)")
    p.add_argument("--quant", choices=("int8", "nf4"), default=None,
                   help="8-bit or 4-bit (NF4) weights via bitsandbytes, for LLaDA and Dream (pip install 'lacuna-editor[quant]')")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: text, spans (each with the length generated and the length "
                        "asked), nfe, seconds")
    p.add_argument("--events", metavar="FILE", help="write one JSON line per denoising step")
    p.set_defaults(func=_run_infill)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lacuna-cli", description="Lacuna: infill text with diffusion language models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_infill(sub)
    from .bench import cli as bench_cli

    bench_cli.add_parser(sub)
    try:
        from .hub import cli as hub_cli
    except ImportError:
        hub_cli = None
    if hub_cli is not None:
        hub_cli.add_parser(sub)
    return parser


def _read_text(arg: str) -> str:
    """TEXT, or standard input for ``-``: UTF-8 text (a BOM is dropped), never binary."""
    if arg != "-":
        if _SURROGATE.search(arg):
            raise InputError("the TEXT argument is not valid UTF-8")
        return arg
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text stream handed in (tests, embedding)
        text = sys.stdin.read(MAX_STDIN + 1)
        if _SURROGATE.search(text):
            raise InputError("standard input is not valid UTF-8 text")
        data = None
    else:
        data = raw.read(MAX_STDIN + 1)
        text = ""
    if len(data if data is not None else text) > MAX_STDIN:
        raise InputError(f"standard input is longer than {MAX_STDIN >> 20} MB")
    if data is not None:
        if b"\x00" in data:
            raise InputError("standard input looks binary (it has NUL bytes); give UTF-8 text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"standard input is not valid UTF-8 text (byte 0x{data[exc.start]:02x} "
                             f"at offset {exc.start})") from None
    if "\x00" in text:
        raise InputError("standard input looks binary (it has NUL characters); give UTF-8 text")
    return text


def _check_model_name(name: str) -> None:
    """What a model name alone can show to be wrong: empty, not UTF-8, NUL, far too long."""
    if not name.strip():
        raise InputError("--model is empty: give a catalog id, a Hub repo id (org/name) or a folder")
    if _SURROGATE.search(name):
        raise InputError("--model is not valid UTF-8")
    if "\x00" in name:
        raise InputError("--model contains a NUL character")
    if len(name) > MAX_NAME or any(len(part) > 255 for part in re.split(r"[\\/]", name)):
        raise InputError(f"--model is {len(name)} characters long: no catalog id, repo id or folder "
                         f"name is that long")


def _model_folder(name: str) -> Path | None:
    """The folder ``name`` loads from, found without torch (the loader's own lookup says why if None)."""
    from . import resources
    from .hub import catalog_entry, local_snapshot

    entry = catalog_entry(name)
    if entry is not None and entry.get("bundled"):
        return resources.path(entry["bundled"])
    try:
        folder = Path(os.path.expanduser(name))
        if folder.is_dir():
            return folder
    except (OSError, ValueError):
        return None
    return local_snapshot(name)


def _check_model_files(name: str) -> None:
    """Before the slow load: a model folder's config.json must be a JSON object."""
    path = _model_folder(name)
    if path is None or not (path / "config.json").is_file():
        return  # load_model explains what is missing
    config = path / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        what = "is not valid JSON" if isinstance(exc, ValueError) else "cannot be read"
        raise ModelLoadError(f"{config} {what} ({exc})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{name}: {config} is not a JSON object, so this is not a model folder")


class _EventsFile:
    """--events FILE: checked up front, written whole at the end through engine.safe_write.

    A failed run (or a full disk) leaves an existing FILE as it was and no partial file; FILE
    keeps its mode, owner and hard links, and a symbolic link is written through to its target,
    unless another user made the link (or the file) in a shared folder such as /tmp. A FIFO or
    a character device (/dev/null, a shell's >(...) pipe) is what the user asked to write to, so
    it is written as the steps come and never replaced (a FIFO waits for its reader, and says so
    once); a name of one of our descriptors (/dev/stdout, /dev/fd/N, /proc/self/fd/N) is
    written through a duplicate of it, at the descriptor's own offset; a socket or a block
    device is refused. ``path`` is the name as given, fit for a one-line message.
    """

    def __init__(self, target: str) -> None:
        self.path = display(target)
        try:
            if not target:
                raise WriteRefused("the file name is empty; name the file to write the steps to, or /dev/stdout")
            self._file = AtomicFile(target, streams=True, on_wait=self._waiting)
            problem = self._problem()
        except WriteRefused as exc:
            problem = str(exc)
        except OSError as exc:  # a name too long, ...
            problem = f"{_show(target)} is not a usable file name ({exc.strerror or 'the system refused it'})"
        except ValueError:
            problem = f"{_show(target)} is not a usable file name (it holds a NUL character)"
        if problem is not None:
            raise InputError(f"--events: {problem}")
        self._fh = None

    def _problem(self) -> str | None:
        target = self._file.target
        if self._file.fd is not None:
            return None  # AtomicFile checked that the descriptor is open for writing
        if self._file.stream:
            return None if os.access(target, os.W_OK) else f"{self.path} is not writable"
        folder = target.parent
        if not folder.is_dir():
            return f"the folder {display(folder)} does not exist"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"cannot write in the folder {display(folder)}"
        if target.exists() and not os.access(target, os.W_OK):
            return f"{self.path} is not writable"
        return None

    def _waiting(self) -> None:
        print(f"lacuna-cli: waiting for a program to read the FIFO {self.path}", file=sys.stderr, flush=True)

    def open(self) -> None:
        self._fh = self._file.open()

    def write(self, record: dict) -> None:
        self._fh.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        if self._file.stream:
            self._fh.flush()  # whoever reads the pipe sees each step as it comes

    def commit(self) -> None:
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


def _run_infill(args) -> int:
    from .markup import parse
    from .types import InfillRequest

    if args.sampler not in POLICIES:  # a current name, or an older one (an alias) the request renames
        raise InputError(f"unknown sampler {_show(args.sampler)}; choose one of: {', '.join(SAMPLERS)}")
    _check_model_name(args.model)
    events = _EventsFile(args.events) if args.events is not None else None
    marked = _read_text(args.text)
    if not marked.strip():
        raise InputError("the text is empty")
    text, spans = parse(marked)
    if not spans:
        raise InputError("nothing to fill: mark a hole with [[N]] or text to regenerate with [[text]]")
    # Validate everything the user typed before the slow model load.
    probe = InfillRequest(text=text, spans=spans, steps=min(args.steps or 1, MAX_STEPS), sampler=args.sampler,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          block_length=args.block_length, threshold=args.threshold, seed=args.seed,
                          allow_newlines=args.allow_newlines, cache=args.cache,
                          context_tokens=args.context_tokens, instruction=args.instruction,
                          instruct_layout=args.instruct_layout)
    _check_model_files(args.model)
    _quiet_transformers()
    from . import load_model
    from .canvas import token_count
    from .sampler import stream_infill

    model = load_model(args.model, device=args.device, dtype=args.dtype, quantization=args.quant)
    # an auto span's run sets its own steps (DreamOn: one per token); its covered text or 1 stands in
    steps = args.steps or sum(s.length if isinstance(s.length, int) else
                              token_count(model, text, s.start, s.end) or 1 for s in spans)
    # the note waits for the first step: a request the canvas refuses gets its error alone
    note = f"lacuna-cli: note: {steps} steps capped at {MAX_STEPS}" if steps > MAX_STEPS else None
    request = dataclasses.replace(probe, steps=max(1, min(steps, MAX_STEPS)))
    result = None
    try:
        if events is not None:
            events.open()
        for event in stream_infill(model, request, threading.Event()):
            if note is not None:
                print(note, file=sys.stderr)
                note = None
            if events is not None:
                events.write(_event_json(event))
            result = event.result or result
        if events is not None:
            events.commit()
    except OSError as exc:
        if events is None:
            raise
        raise LacunaError(f"--events: could not write {events.path}: {exc.strerror or exc}; "
                          f"the file was left as it was") from None
    finally:
        if events is not None:
            events.discard()
    if args.json:
        print(json.dumps({
            "text": result.text,
            # "length": the tokens generated (the chosen length of an auto span); "asked": what the
            # markup gave ("auto" for [[?]], "~N" for [[~N]], N for [[N]], null for [[text]])
            # "tried": for an auto span on a model that does not grow its canvas, every length tried,
            # best first, with its score and its fill
            "spans": [{"start": s.start, "end": s.end, "length": s.length, "asked": _asked(a.length),
                       **({"tried": [{"length": t.length, "score": round(t.score, 4), "text": t.result.span_text(i)}
                                     for t in result.lengths[i]]} if result.lengths and result.lengths[i] else {})}
                      for i, (s, a) in enumerate(zip(result.spans, request.spans))],
            "nfe": result.nfe, "steps": result.steps, "seconds": round(result.seconds, 4), "seed": result.seed,
            "instruction": request.instruction,
        }, ensure_ascii=False))
    else:
        sys.stdout.write(result.text if result.text.endswith("\n") else result.text + "\n")
    return 0


def _asked(length):
    return list(length) if isinstance(length, tuple) else length


def _event_json(event) -> dict:
    record = {
        "step": event.step, "steps": event.steps, "nfe": event.nfe, "elapsed": round(event.elapsed, 5),
        "committed": [{"index": c.index, "span": c.span, "token_id": c.token_id, "text": c.text,
                       "confidence": round(c.confidence, 5)} for c in event.committed],
        "tokens": list(event.tokens), "done": event.done,
    }
    if event.expanded or event.deleted:  # a canvas that grows and shrinks (DreamOn)
        record.update(expanded=list(event.expanded), deleted=list(event.deleted))
    return record


def _quiet_transformers() -> None:
    """No progress bars or advice from transformers on a model load. Not yet
    imported: by environment, read at its import (importing it here would cost
    seconds of start-up for the native families, which never need it)."""
    if "transformers" not in sys.modules:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        return
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _bad_argument(args: argparse.Namespace) -> str | None:
    """The first argument that is not valid UTF-8 (a lone surrogate from the OS), if any.

    --events and --heldout are file names, which may be any bytes on POSIX.
    """
    for key, value in vars(args).items():
        if key not in ("events", "heldout") and isinstance(value, str) and _SURROGATE.search(value):
            return key
    return None


def _report_ignored() -> None:
    store = sys.modules.get("lacuna.engine.hub.store")
    for line in store.ignored() if store is not None else ():
        print(f"lacuna-cli: warning: {line}", file=sys.stderr)


def _quiet_stdout() -> None:
    """The reader of our stdout went away (``| head``): send the rest nowhere, without a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help
        return exc.code if isinstance(exc.code, int) else 2
    bad = _bad_argument(args)
    if bad is not None:
        name = bad.upper() if bad in ("text", "id", "spec") else "--" + bad.replace("_", "-")
        print(f"lacuna-cli: error: {name} is not valid UTF-8", file=sys.stderr)
        return 2
    store = sys.modules.get("lacuna.engine.hub.store")
    if store is not None:  # main() run again in one process reports only what this run ignored
        store.forget_ignored()
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except InputError as exc:
        print(f"lacuna-cli: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except LacunaError as exc:
        print(f"lacuna-cli: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lacuna-cli: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # a CLI prints one line, never a traceback
        if os.environ.get("LACUNA_DEBUG"):
            raise
        print(f"lacuna-cli: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        _report_ignored()


if __name__ == "__main__":
    sys.exit(main())
