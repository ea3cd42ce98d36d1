"""The export worker: a finished run as JSON lines and an animated GIF, off the GUI thread.

The GIF of a 1,000-step run used to be made on the GUI thread from a grab of
the whole preview per step, every frame held twice until Pillow wrote them
all: the window froze for a minute or two and took gigabytes (issue 20). Here
a thread of its own draws each step into a QImage (QTextDocument and QPainter
work on any thread; widgets do not) with the live view's own fragments and
calm-layout cells, cropped to the masked spans and a few lines around them,
and hands it to GifStream, which writes it and keeps only that frame. Only
plain data crosses threads: the job (text, spans, StepEvents, the result, a
font description) and the progress, paths and messages sent back.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRectF, Qt, QThread, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QTextDocument

log = logging.getLogger(__name__)

CONTEXT_LINES = 2  # lines of text kept above and below the spans
CONTEXT_REACH = 240  # characters at most of that context, either side of a span
MAX_WIDTH = 760  # pixels: lines wrap there, as in a narrow window
MAX_HEIGHT = 1400  # pixels: a taller view loses context lines, then is drawn smaller
MARGIN = 8
GAP = "\n\u22ef\n"  # between the pieces of text around spans far apart


@dataclass(frozen=True)
class ExportJob:
    """What an export needs, as immutable plain data (built on the GUI thread)."""

    text: str  # the document the run was made from
    spans: tuple[tuple[int, int], ...]  # code points of the masked spans in it
    events: tuple  # the run's StepEvents
    result: object  # its InfillResult
    gif: Path
    lines: Path
    request: object  # the InfillRequest (a frozen dataclass), for the JSON header
    record: str  # how the run can be made again, in words
    font: str  # QFont.toString() of the view's font
    width: int  # pixels the view's lines wrap at
    ms_per_frame: int = 125
    hold_last_ms: int = 1500


def crop(text: str, spans, lines: int = CONTEXT_LINES, reach: int = CONTEXT_REACH):
    """The part of ``text`` a frame shows: each span with up to ``lines`` lines (and at most
    ``reach`` characters) of context either side; pieces that do not touch are joined by a
    ⋯ line, a piece cut inside a line is marked with …. Returns (text, spans in it)."""
    pieces: list[list[int]] = []
    for s, e in sorted(spans):
        a, b = _context_start(text, s, lines, reach), _context_end(text, e, lines, reach)
        if pieces and a <= pieces[-1][1] + 1:
            pieces[-1][1] = max(pieces[-1][1], b)
        else:
            pieces.append([a, b])
    out, where, length = [], [], 0
    for k, (a, b) in enumerate(pieces):
        head = "\u2026" if a > 0 and text[a - 1] != "\n" else ""
        tail = "\u2026" if b < len(text) and text[b] != "\n" else ""
        part = (GAP if k else "") + head
        where.append((a, length + len(part)))
        out.append(part + text[a:b] + tail)
        length += len(out[-1])
    cropped = "".join(out)
    mapped = []
    for s, e in spans:
        for a, at in reversed(where):
            if a <= s:
                mapped.append((at + s - a, at + e - a))
                break
    return cropped, mapped


def _context_start(text: str, s: int, lines: int, reach: int) -> int:
    floor, k = max(0, s - reach), s
    for _ in range(lines + 1):
        i = text.rfind("\n", floor, k)
        if i < 0:
            return floor
        k = i
    return k + 1


def _context_end(text: str, e: int, lines: int, reach: int) -> int:
    ceiling, k = min(len(text), e + reach), e
    for _ in range(lines + 1):
        i = text.find("\n", k, ceiling)
        if i < 0:
            return ceiling
        k = i + 1
    return k - 1


class FrameRenderer:
    """Draws the steps of a run into QImages of one size, on whatever thread made it."""

    def __init__(self, job: ExportJob) -> None:
        from ..editor.preview import SpanWriter

        font = QFont()
        font.fromString(job.font)
        self.doc = QTextDocument()
        self.doc.setDefaultFont(font)
        self.doc.setDocumentMargin(MARGIN)
        option = self.doc.defaultTextOption()
        option.setTabStopDistance(4 * _space_width(font))
        self.doc.setDefaultTextOption(option)
        self.doc.setTextWidth(max(120, min(job.width, MAX_WIDTH)))
        self.writer = SpanWriter(self.doc)
        # every span is shown: spans far apart get fewer lines of context, and when even
        # none fit in MAX_HEIGHT the frame is drawn smaller (self.scale < 1)
        for lines in range(CONTEXT_LINES, -1, -1):
            text, spans = crop(job.text, job.spans, lines)
            width, height = self._measure(job, text, spans)
            if height <= MAX_HEIGHT:
                break
        self.context_lines = lines
        self.scale = min(1.0, MAX_HEIGHT / height)
        self.width = max(1, int(math.ceil(width * self.scale)))
        self.height = max(1, int(math.ceil(height * self.scale)))

    def _measure(self, job: ExportJob, text: str, spans) -> tuple[float, float]:
        # the frame's size: the calm layout is as tall during the whole run as at its first
        # step; the finished fill is at its own width (shorter mostly, longer when cells cut tokens)
        self.writer.start(text, spans)
        sizes = []
        for draw in (lambda: self.writer.write_event(job.events[0]), lambda: self.writer.write_result(job.result)):
            draw()
            sizes.append((self.doc.idealWidth(), self.doc.size().height()))
        self.writer.start(text, spans)
        return min(self.doc.textWidth(), max(w for w, _ in sizes) + MARGIN), max(h for _, h in sizes)

    def frame(self, ev=None, result=None) -> QImage:
        """The view at StepEvent ``ev``, or of the finished ``result``."""
        if result is not None:
            self.writer.write_result(result)
        else:
            self.writer.write_event(ev)
        image = QImage(self.width, self.height, QImage.Format.Format_RGB32)
        image.fill(QColor(Qt.GlobalColor.white))
        p = QPainter(image)
        p.scale(self.scale, self.scale)
        self.doc.drawContents(p, QRectF(0, 0, self.width / self.scale, self.height / self.scale))
        p.end()
        return image


def _space_width(font: QFont) -> float:
    from PySide6.QtGui import QFontMetricsF

    return QFontMetricsF(font).horizontalAdvance(" ")


def frames(job: ExportJob, renderer: FrameRenderer | None = None):
    """The frames of ``job``, one per step, made one at a time: the last shows the result."""
    renderer = renderer or FrameRenderer(job)
    last = len(job.events) - 1
    for k, ev in enumerate(job.events):
        yield renderer.frame(result=job.result) if k == last and job.result is not None else renderer.frame(ev)


class _Thread(QThread):
    # a QThread, not a threading.Thread: Qt gives it an event dispatcher, which
    # QTextDocument's layout of a long text starts a timer on (a warning without one)
    def __init__(self, target) -> None:
        super().__init__()
        self._target = target

    def run(self) -> None:
        self._target()


class ExportWorker(QObject):
    """Runs one export at a time on a thread of its own.

    ``start`` returns the job's number, the first argument of every signal, so a
    signal of a job that ended while it waited in the GUI thread's queue is not
    taken for one of the job started after it. ``progress(job, done, total)``
    comes as frames are written (at most every 1%), then exactly one of
    ``finished(job, (gif, lines))``, ``failed(job, message)`` or ``cancelled(job)``.
    Both files are written to temporaries and put in place only when both were
    written: a cancel or a failure leaves nothing on disk."""

    progress = Signal(int, int, int)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: _Thread | None = None
        self._cancel = threading.Event()
        self._running = False  # cleared by the worker before it sends its last signal
        self._jobs = 0

    def busy(self) -> bool:
        return self._running

    def start(self, job: ExportJob) -> int:
        """Start ``job``; returns its number. Raises RuntimeError while one runs."""
        if self.busy():
            raise RuntimeError("an export is already running")
        if self._thread is not None:
            self._thread.wait()  # the last one had sent its last signal: it is returning
        self._jobs += 1
        self._cancel = threading.Event()
        self._running = True
        number, cancel = self._jobs, self._cancel
        self._thread = _Thread(lambda: self._run(number, job, cancel))
        self._thread.start()
        return self._jobs

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running export to end; True if none is running."""
        if self._thread is not None:
            if timeout is None:
                self._thread.wait()
            else:
                self._thread.wait(max(0, int(timeout * 1000)))
        return not self.busy()

    def _run(self, number: int, job: ExportJob, cancel: threading.Event) -> None:
        signal, args = self._export(number, job, cancel)
        self._running = False
        signal.emit(number, *args)

    def _export(self, number: int, job: ExportJob, cancel: threading.Event) -> tuple:
        from lacuna.engine.safe_write import AtomicFile, WriteRefused, display

        from ..viz.export import ExportCancelled, events_jsonl, stream_gif

        total = len(job.events)
        done = [0, -1]

        def cancelled() -> bool:
            step = done[0] * 100 // max(1, total)
            if step != done[1]:
                done[1] = step
                self.progress.emit(number, done[0], total)
            done[0] += 1
            return cancel.is_set()

        files: list = []
        now = job.gif  # the file being written, for the message if it fails
        committed: list[Path] = []
        try:
            # both are checked before any frame is drawn (a FIFO or a folder is refused at once)
            files = [AtomicFile(job.gif), AtomicFile(job.lines)]
            stream_gif(frames(job), files[0].open(), job.ms_per_frame, job.hold_last_ms, cancelled=cancelled)
            now = job.lines
            header = {"request": dataclasses.asdict(job.request), "record": job.record}
            files[1].open().write(events_jsonl(job.events, header))
            if cancel.is_set():
                raise ExportCancelled(job.gif)
            for f, path in zip(files, (job.gif, job.lines)):  # only now: all or nothing
                now = path
                f.commit()
                committed.append(path)
        except ExportCancelled:
            return self.cancelled, ()
        except WriteRefused as exc:
            return self.failed, (f"The run could not be exported: {exc}{_written(committed)}",)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            return self.failed, (f"The run could not be exported: could not write {display(now)}: "
                                 f"{why}{_written(committed)}",)
        except Exception as exc:  # noqa: BLE001 - a thread must report, not die silently
            log.exception("export failed")
            return self.failed, (f"The run could not be exported to {display(now)}: {exc}{_written(committed)}",)
        finally:
            for f in files:
                f.discard()  # a no-op after a commit
        self.progress.emit(number, total, total)
        return self.finished, ((job.gif, job.lines),)


def _written(committed: list[Path]) -> str:
    # the rare failure between the two commits: say which file is there
    return "".join(f" ({p.name} was written.)" for p in committed)
