"""Export a run so people can share what they saw: its StepEvents as JSON
lines, and an animated GIF of the denoising view.

The GIF is written by Pillow (a well-kept imaging library; Qt writes no
animated images), one frame at a time (GifStream). The frames are drawn by
app.workers.export off the GUI thread, with the live view's own fragments and
calm-layout cells, so the export shows what the window showed, tint and
placeholders included.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from PySide6.QtGui import QImage

from lacuna.engine.safe_write import AtomicFile, WriteRefused, display


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
        raise OSError(f"could not write {display(path)}: {exc.strerror or exc}") from None


def write_events(events, path: str | os.PathLike, header: dict | None = None) -> Path:
    """Write ``events`` as JSON lines (a first line ``{"run": header}`` when given)."""
    path = Path(path)
    data = events_jsonl(events, header)
    _atomic_write(path, lambda f: f.write(data))
    return path


def events_jsonl(events, header: dict | None = None) -> bytes:
    """The JSON-lines file of ``events`` (UTF-8), as write_events writes it."""
    lines = [json.dumps({"run": header}, ensure_ascii=False)] if header else []
    lines += [json.dumps(event_record(ev), ensure_ascii=False) for ev in events]
    return ("\n".join(lines) + "\n").encode("utf-8")


class GifStream:
    """An animated GIF that loops, written to ``f`` (a binary file) one frame at a time.

    Each frame after the first holds only the box that changed since the frame
    before, with a palette of its own (a GIF frame has at most 256 colours; the
    box rarely has more); a frame that changes nothing lengthens the one before.
    Only the previous frame is kept, so memory does not grow with the number of
    frames (Pillow's ``save_all`` keeps every frame until the end). Written with
    Pillow's documented GIF helpers ``getheader`` and ``getdata``."""

    def __init__(self, f, loop: int = 0) -> None:
        self._f = f
        self._loop = loop
        self._prev = None  # the previous frame, RGB
        self._pending = None  # (P image, offset, milliseconds): written when the next frame differs
        self.frames = 0

    @staticmethod
    def _palette_image(rgb):
        from PIL import Image

        return rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)

    def add(self, rgb, ms: int) -> None:
        """Append ``rgb`` (a PIL image, mode RGB, the size of the first) shown for ``ms`` milliseconds."""
        from PIL import GifImagePlugin, ImageChops

        if self._prev is None:
            first = self._palette_image(rgb)
            header, _ = GifImagePlugin.getheader(first, info={"loop": self._loop, "duration": ms})
            for chunk in header:
                self._f.write(chunk)
            self._pending = (first, (0, 0), ms)
        else:
            if rgb.size != self._prev.size:
                raise ValueError("every frame of a GIF has the size of the first")
            box = ImageChops.difference(self._prev, rgb).getbbox()
            if box is None:
                image, offset, before = self._pending
                self._pending = (image, offset, before + ms)
            else:
                self._flush()
                self._pending = (self._palette_image(rgb.crop(box)), box[:2], ms)
        self._prev = rgb
        self.frames += 1

    def _flush(self) -> None:
        from PIL import GifImagePlugin

        if self._pending is not None:
            image, offset, ms = self._pending
            for chunk in GifImagePlugin.getdata(image, offset, duration=ms, include_color_table=True):
                self._f.write(chunk)
            self._pending = None

    def close(self) -> None:
        """Write the last frame and the trailer. Raises ValueError for no frames."""
        if self._prev is None:
            raise ValueError("a run with no steps has nothing to animate")
        self._flush()
        self._f.write(b";")


def qimage_to_rgb(image: QImage):
    """A PIL RGB image with the pixels of ``image`` (any format; fully opaque)."""
    from PIL import Image

    rgb = image.convertToFormat(QImage.Format.Format_RGB32)
    # RGB32 is 0xffRRGGBB per pixel: bytes B, G, R, 255 on a little-endian machine; decoding
    # them to RGB copies the pixels, so the QImage's own buffer is read, not copied first
    raw = "BGRX" if sys.byteorder == "little" else "XRGB"
    return Image.frombuffer("RGB", (rgb.width(), rgb.height()), rgb.constBits(), "raw", raw,
                            rgb.bytesPerLine(), 1)


def write_gif(frames, path: str | os.PathLike, ms_per_frame: int = 125, hold_last_ms: int = 1500,
              cancelled=None) -> Path:
    """An animated GIF that loops, one frame per item of ``frames`` (an iterable of QImages
    or PIL images, consumed one at a time); the last stays ``hold_last_ms``. ``cancelled``
    (a callable) is asked before each frame: True stops the export, leaving no file
    (ExportCancelled is raised).

    Raises ValueError for no frames and OSError when the file cannot be written."""
    path = Path(path)
    _atomic_write(path, lambda f: stream_gif(frames, f, ms_per_frame, hold_last_ms, cancelled))
    return path


def stream_gif(frames, f, ms_per_frame: int = 125, hold_last_ms: int = 1500, cancelled=None) -> None:
    """write_gif's work into ``f``, an open binary file (the caller commits or discards it).
    Raises ExportCancelled and ValueError as write_gif does."""
    gif = GifStream(f)
    held = None
    for frame in frames:
        if cancelled is not None and cancelled():
            raise ExportCancelled(getattr(f, "name", "GIF"))
        if held is not None:
            gif.add(held, ms_per_frame)
        held = qimage_to_rgb(frame) if isinstance(frame, QImage) else frame.convert("RGB")
    if held is None:
        raise ValueError("a run with no steps has nothing to animate")
    gif.add(held, max(ms_per_frame, hold_last_ms))
    gif.close()


class ExportCancelled(Exception):
    """The user stopped an export; nothing was written."""
