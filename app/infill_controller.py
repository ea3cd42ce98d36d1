"""Masks, runs and their results: start, live view, stop, candidates, timeline, accept or reject."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import QMetaMethod, QObject, QPoint, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QListWidgetItem

from .editor import MaskPopup, document_text
from .settings import RunSettings

if TYPE_CHECKING:
    from .window import MainWindow

FRAME_MS = 66  # the live view redraws at most 15 times a second
CHART_MS = 200  # the chart and figures, a summary, at most 5 times a second


@dataclass
class Candidate:
    number: int
    request: object  # InfillRequest
    settings: RunSettings
    key: tuple  # (document revision, mask ranges) it was made from
    events: list = field(default_factory=list)
    result: object | None = None  # InfillResult

    @property
    def seed(self) -> int:
        return self.request.seed

    def label(self) -> str:
        r = self.result
        first = r.span_text(0).strip().replace("\n", " ") if r is not None and r.spans else ""
        if len(first) > 60:
            first = first[:57] + "…"
        extra = f"{r.nfe} NFE · {r.seconds:.1f} s" if r is not None else ""
        return f"#{self.number}  seed {self.seed}  ·  {self.settings.describe()}  ·  {extra}\n“{first}”"


class InfillController(QObject):
    """Owns the runs of one window; the window owns the widgets and the idle/running/preview state."""

    _run_requested = Signal(int, object, object, object)

    def __init__(self, window: MainWindow, worker) -> None:
        super().__init__(window)
        self.w = window
        self.run_id = 0
        self.cancel: threading.Event | None = None
        self.batch: list[Candidate] = []
        self.current: Candidate | None = None  # running, or shown in preview
        self.candidates: list[Candidate] = []
        self.pending_event = None
        self.last_accept: list[tuple[int, int, float]] = []
        self.accept_revision = -1
        self.frames = 0
        self.frame_timer = QTimer(self)
        self.frame_timer.setSingleShot(True)
        self.frame_timer.timeout.connect(self.render_frame)
        self._last_frame = 0.0
        self._last_chart = 0.0
        self._frame_listeners = False
        queued = Qt.ConnectionType.QueuedConnection
        self._run_requested.connect(worker.run, queued)
        worker.step.connect(self._on_step, queued)
        worker.finished.connect(self._on_finished, queued)
        worker.cancelled.connect(self._on_cancelled, queued)
        worker.failed.connect(self._on_failed, queued)

    # ---------------------------------------------------------------- masks
    def mask_selection(self) -> None:
        if self.w.state != "idle":
            return
        self.w.editor.mask_selection(self.w.run_settings.insertion_length)
        self.w._update_actions()

    def clear_masks(self) -> None:
        if self.w.state == "idle":
            self.w.editor.clear_masks()
            self.w._update_actions()

    def token_count(self, start: int, end: int) -> int | None:
        model = self.w.models.model
        if model is None or start == end:
            return None
        try:
            from engine import token_count

            return int(token_count(model, document_text(self.w.editor.document()), start, end))
        except Exception:  # noqa: BLE001 - a count is a hint only
            return None

    def edit_mask(self, mask, global_pos: QPoint | None = None) -> MaskPopup:
        w, editor = self.w, self.w.editor
        popup = MaskPopup(mask, self.token_count(mask.start, mask.end), w)
        popup.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        popup.changed.connect(lambda: (editor.refresh_selections(), w._update_actions()))
        popup.removeRequested.connect(lambda m: (editor.remove_mask(m), w._update_actions()))
        if global_pos is None:
            c = QTextCursor(editor.document())
            c.setPosition(mask.start)
            global_pos = editor.viewport().mapToGlobal(editor.cursorRect(c).bottomLeft())
        popup.move(global_pos)
        popup.show()
        return popup

    # ----------------------------------------------------------------- runs
    def snapshot_key(self) -> tuple:
        editor = self.w.editor
        return (editor.document().revision(), tuple((m.start, m.end) for m in editor.masks))

    def _make_requests(self, n: int, fresh_seeds: bool):
        from engine.types import InfillRequest, Span  # plain dataclasses

        editor, rs = self.w.editor, self.w.run_settings
        text = document_text(editor.document())
        spans = []
        for m in sorted(editor.masks, key=lambda m: (m.start, m.end)):
            if m.insertion:
                spans.append(Span(m.start, m.end, m.length or rs.insertion_length))
            else:
                spans.append(Span(m.start, m.end, m.length if m.strength >= 1 else None, m.strength))
        if fresh_seeds or rs.random_seed:
            seeds = [RunSettings(random_seed=True).next_seed() for _ in range(n)]
        else:
            seeds = [(rs.seed + k) % (2**31 - 1) for k in range(n)]
        revision = editor.document().revision()
        return [
            InfillRequest(text=text, spans=tuple(spans), steps=rs.steps, sampler=rs.sampler,
                          temperature=rs.temperature, top_p=rs.top_p,
                          block_length=rs.block_length or None, threshold=rs.threshold,
                          seed=seed, revision=revision, allow_newlines=True if rs.allow_newlines else None)
            for seed in seeds
        ]

    def start(self, regenerate: bool = False) -> bool:
        w, models = self.w, self.w.models
        if w.state == "running":
            return False
        if not w.editor.masks:
            w.show_error("Nothing to fill: select some text and press Ctrl+M to mask it first.")
            return False
        if models.model is None:
            if models.loading_spec:
                models.pending_infill = True
                w.statusBar().showMessage("The model is still loading; the infill starts when it is ready.")
                return True
            w.show_error("No model is loaded. Choose one in the model picker on the toolbar.")
            return False
        if w.state == "preview":
            w._set_state("idle")
        try:
            requests = self._make_requests(w.run_settings.candidates, fresh_seeds=regenerate)
        except Exception as exc:  # noqa: BLE001 - InputError and friends
            from .workers import readable_error

            w.show_error(readable_error(exc))
            return False
        w.banner.hide()
        if not regenerate:
            self.clear_candidates()
        key = self.snapshot_key()
        first = len(self.candidates) + 1
        self.batch = [Candidate(first + k, r, w.run_settings, key) for k, r in enumerate(requests)]
        self._launch(self.batch[0])
        w.runStarted.emit()
        return True

    def _show_in_preview(self, cand: Candidate) -> None:
        req = cand.request
        self.w.preview.start(req.text, [(s.start, s.end) for s in req.spans])

    def _launch(self, cand: Candidate) -> None:
        w = self.w
        self.current = cand
        self.pending_event = None
        self._show_in_preview(cand)
        w.preview.verticalScrollBar().setValue(w.editor.verticalScrollBar().value())
        w._set_state("running")
        w.panel.reset(f"candidate {cand.number}" if len(self.batch) > 1 else "")
        self.run_id += 1
        self.cancel = threading.Event()
        # frameRendered is for tests and automation: skip the emit (a GIL round trip) when unused
        self._frame_listeners = w.isSignalConnected(QMetaMethod.fromSignal(w.frameRendered))
        self._run_requested.emit(self.run_id, w.models.model, cand.request, self.cancel)

    @Slot(object)
    def _on_step(self, payload) -> None:
        run_id, events = payload
        if run_id != self.run_id or self.current is None:
            return
        self.current.events.extend(events)
        for ev in events:
            self.w.panel.record(ev)
        self.pending_event = events[-1]
        if self.frame_timer.isActive():
            return  # coalesce: a frame is already due, it will draw the newest event
        wait = FRAME_MS - (time.perf_counter() - self._last_frame) * 1000
        if wait <= 0:
            self.render_frame()  # draw now: no extra wake-up (each costs the engine a GIL hand-over)
        else:
            self.frame_timer.start(int(wait))

    def render_frame(self) -> None:
        ev, self.pending_event = self.pending_event, None
        if ev is None or self.w.state != "running":
            return
        self._last_frame = time.perf_counter()
        self.w.preview.render_event(ev)
        now = time.perf_counter()
        chart = now - self._last_chart >= CHART_MS / 1000 or ev.done
        if chart:
            self._last_chart = now
        self.w.panel.show_event(ev, chart=chart)
        self.frames += 1
        if self._frame_listeners:
            self.w.frameRendered.emit()

    @Slot(object)
    def _on_finished(self, payload) -> None:
        run_id, result = payload
        if run_id != self.run_id or self.current is None:
            return
        w, cand = self.w, self.current
        cand.result = result
        self.pending_event = None
        if cand.events:
            w.panel.show_event(cand.events[-1])
        self.candidates.append(cand)
        item = QListWidgetItem(cand.label())
        item.setData(Qt.ItemDataRole.UserRole, len(self.candidates) - 1)
        item.setToolTip(f"seed {cand.seed} — click to preview; Reuse seed fixes this seed in the settings")
        w.candidates_list.addItem(item)
        idx = self.batch.index(cand)
        if idx + 1 < len(self.batch):
            w.preview.render_result(result)
            self._launch(self.batch[idx + 1])
            return
        self.frame_timer.stop()
        self.cancel = None
        first_new = self.candidates.index(self.batch[0])
        w.state = "finished"
        self.show_candidate(first_new)
        w.runFinished.emit()

    @Slot(int)
    def _on_cancelled(self, run_id: int) -> None:
        # Stop already restored the view; this only reports that the worker is free
        self.w.workerCancelled.emit()

    @Slot(object)
    def _on_failed(self, payload) -> None:
        run_id, message = payload
        if run_id != self.run_id:
            return
        self.frame_timer.stop()
        self.cancel = None
        self.current = None
        self.w._set_state("idle")
        self.w.show_error(message)
        self.w.runFailed.emit(message)

    def stop(self) -> None:
        """End the run: the engine stops before its next forward pass; the text and masks are as before."""
        if self.w.state != "running":
            return
        if self.cancel is not None:
            self.cancel.set()
        self.run_id += 1  # late events of the stopped run are ignored
        self.frame_timer.stop()
        self.pending_event = None
        self.current = None
        self.cancel = None
        self.w._set_state("idle")
        self.w.statusBar().showMessage("Stopped; the text is as it was.", 4000)
        self.w.runStopped.emit()

    def shutdown(self) -> None:
        if self.cancel is not None:
            self.cancel.set()
        self.frame_timer.stop()

    def leave_run(self) -> None:
        if self.w.state == "running":
            self.stop()
        elif self.w.state == "preview":
            self.reject()

    # -------------------------------------------------------- preview/result
    def clear_candidates(self) -> None:
        self.candidates.clear()
        self.w.candidates_list.clear()

    def show_candidate(self, index: int) -> bool:
        w = self.w
        if w.state == "running" or not (0 <= index < len(self.candidates)):
            return False
        cand = self.candidates[index]
        if cand.key != self.snapshot_key():
            w.show_error("The text or the masks changed since this candidate was made; run Infill again.")
            return False
        self._show_in_preview(cand)
        w.preview.render_result(cand.result)
        self.current = cand
        w.panel.load_history(cand.events)
        w.panel.set_timeline(len(cand.events))
        if w.candidates_list.currentRow() != index:
            w.candidates_list.setCurrentRow(index)
        if w.state != "preview":
            w.preview.verticalScrollBar().setValue(w.editor.verticalScrollBar().value())
        w._set_state("preview")
        return True

    def on_candidate_clicked(self, item: QListWidgetItem) -> None:
        self.show_candidate(int(item.data(Qt.ItemDataRole.UserRole)))

    def on_timeline(self, step: int) -> None:
        cand = self.current
        if self.w.state != "preview" or cand is None or not cand.events:
            return
        step = max(1, min(step, len(cand.events)))
        ev = cand.events[step - 1]
        if step == len(cand.events) and cand.result is not None:
            self.w.preview.render_result(cand.result)
        else:
            self.w.preview.render_event(ev)
        committed = sum(len(e.committed) for e in cand.events[:step])
        self.w.panel.show_event(ev, committed)

    def reuse_seed(self) -> None:
        row = self.w.candidates_list.currentRow()
        if 0 <= row < len(self.candidates):
            seed = self.candidates[row].seed
            self.w.settings_panel.use_seed(seed)
            self.w.statusBar().showMessage(f"Seed fixed to {seed}", 4000)

    def accept(self) -> bool:
        """Apply the previewed fill to the document as one undo step."""
        w, editor, cand = self.w, self.w.editor, self.current
        if w.state != "preview" or cand is None or cand.result is None:
            return False
        if cand.key != self.snapshot_key():
            w.show_error("The text changed since this fill was made; it was not applied.")
            return False
        result, req = cand.result, cand.request
        doc = editor.document()
        c = QTextCursor(doc)
        editor._applying = True
        try:
            c.beginEditBlock()
            for i in range(len(req.spans) - 1, -1, -1):
                s = req.spans[i]
                c.setPosition(s.start)
                c.setPosition(s.end, QTextCursor.MoveMode.KeepAnchor)
                c.insertText(result.span_text(i))
            c.endEditBlock()
        finally:
            editor._applying = False
        editor.clear_masks()
        self.last_accept = [(p.start, p.end, p.confidence) for ps in result.pieces for p in ps
                            if p.confidence is not None]
        self.accept_revision = doc.revision()
        self.clear_candidates()
        self.current = None
        w._set_state("idle")
        if result.spans:
            c = editor.textCursor()
            c.setPosition(result.spans[-1].end)
            editor.setTextCursor(c)
        if w.tint_action.isChecked():
            editor.set_tint(self.last_accept)
        w.statusBar().showMessage("Applied. Ctrl+Z undoes the whole fill.", 5000)
        return True

    def reject(self) -> None:
        if self.w.state != "preview":
            return
        self.current = None
        self.w._set_state("idle")

    def toggle_tint(self, on: bool) -> None:
        w = self.w
        w.s.setValue("view/tint", on)
        if on and self.last_accept and w.editor.document().revision() == self.accept_revision:
            w.editor.set_tint(self.last_accept)
        elif not on:
            w.editor.clear_tint()
