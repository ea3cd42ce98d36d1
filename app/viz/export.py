"""Export a run so people can share what they saw: its StepEvents as JSON
lines, and an animated GIF of the denoising view.

The GIF is written by Pillow (a well-kept imaging library; Qt writes no
animated images). Frames come from the view itself, so the export shows
exactly what the window showed, tint and placeholders included.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from PySide6.QtGui import QImage

from engine.safe_write import AtomicFile, WriteRefused


def event_record(ev) -> dict:
    """One StepEvent as plain JSON data (the result, on the last event, as text and spans)."""
    data = dataclasses.asdict(dataclasses.replace(ev, result=None))
    data.pop("result", None)
    if ev.result is not None:
        r = ev.result
        data["result"] = {"text": r.text, "spans": [[s.start, s.end] for s in r.spans], "nfe": r.nfe,
                          "steps": r.steps, "seconds": r.seconds, "seed": r.seed}
    return data


def export_paths(chosen: str | os.PathLike) -> tuple[Path, Path]:
    """The animated GIF and the JSON-lines file an export to ``chosen`` writes.
    A chosen ``.gif`` or ``.jsonl`` file is one of them, and the other takes its
    stem; any other suffix is kept (``run.v2`` gives ``run.v2.gif``, not
    ``run.gif``), so an export never writes over a file of a third kind."""
    p = Path(chosen)
    kind = p.suffix.lower()
    stem = p.name[:-len(p.suffix)] if kind in (".gif", ".jsonl") else p.name
    return (p if kind == ".gif" else p.with_name(stem + ".gif"),
            p if kind == ".jsonl" else p.with_name(stem + ".jsonl"))


def replaced_unasked(chosen: str | os.PathLike, paths) -> list[Path]:
    """The existing files among ``paths`` that the user did not choose by name:
    a save dialog asks about replacing ``chosen`` only, so ask about these
    before writing (data.gif chosen, data.jsonl already there)."""
    mine = os.path.abspath(chosen)
    return [Path(p) for p in paths if os.path.lexists(p) and os.path.abspath(p) != mine]


def _atomic_write(path: Path, write) -> None:
    # engine.safe_write: a failed export never leaves half a file, a new file gets the umask's mode,
    # an existing one keeps its mode, owner and links; a FIFO or device is refused (WriteRefused, an OSError)
    try:
        with AtomicFile(path) as f:
            write(f)
    except WriteRefused:
        raise
    except OSError as exc:  # named by the file the user chose, not by our temporary one
        raise OSError(f"could not write {path}: {exc.strerror or exc}") from None


def write_events(events, path: str | os.PathLike, header: dict | None = None) -> Path:
    """Write ``events`` as JSON lines (a first line ``{"run": header}`` when given)."""
    path = Path(path)
    lines = [json.dumps({"run": header}, ensure_ascii=False)] if header else []
    lines += [json.dumps(event_record(ev), ensure_ascii=False) for ev in events]
    _atomic_write(path, lambda f: f.write(("\n".join(lines) + "\n").encode("utf-8")))
    return path


def _to_pil(image: QImage):
    from PIL import Image

    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    size = (rgba.width(), rgba.height())
    return Image.frombuffer("RGBA", size, bytes(rgba.constBits()), "raw", "RGBA", rgba.bytesPerLine(), 1)


def write_gif(frames: list[QImage], path: str | os.PathLike, ms_per_frame: int = 125,
              hold_last_ms: int = 1500) -> Path:
    """An animated GIF that loops, one frame per step; the finished fill stays longer.

    Raises ValueError for no frames and OSError when the file cannot be written."""
    if not frames:
        raise ValueError("a run with no steps has nothing to animate")
    path = Path(path)
    images = [_to_pil(f).convert("RGB") for f in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [max(ms_per_frame, hold_last_ms)]

    def save(f) -> None:
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=durations,
                       loop=0, optimize=False)

    _atomic_write(path, save)
    return path
