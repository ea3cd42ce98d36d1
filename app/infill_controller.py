"""Masks, runs and their results: start, live view, stop, candidates, timeline, accept or reject."""
from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QMetaMethod, QObject, QPoint, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QListWidget, QListWidgetItem, QMessageBox, QProgressDialog, \
    QVBoxLayout, QWidget

from . import positions
from .editor import MaskPopup, document_text
from .seeds import VARIETY_TEMPERATURE, SeedRecord, device_kind, seed_matters
from .settings import RunSettings, recent_instructions, remember_instruction
from .workers.messages import Failed, Finished, Steps

if TYPE_CHECKING:
    from .window import MainWindow

FRAME_MS = 66  # the live view redraws at most 15 times a second
CHART_MS = 200  # the chart and figures, a summary, at most 5 times a second
INSTRUCT_TIP = "Say what to write in the selection; an instruction-tuned model fills it in place"


@dataclass
class Candidate:
    number: int
    request: object  # InfillRequest
    settings: RunSettings  # as run: the temperature is the one the request used
    key: tuple  # (document revision, mask ranges) it was made from
    record: SeedRecord | None = None
    events: list = field(default_factory=list)
    result: object | None = None  # InfillResult
    same_as: int | None = None  # the number of an earlier candidate with the same fill
    shown: object | None = None  # the fill of another length tried (LengthTried.result) shown instead

    @property
    def fill(self):
        """The InfillResult the preview shows and Accept applies: the run's, or the
        fill of another length tried that the user picked."""
        return self.shown if self.shown is not None else self.result

    @property
    def seed(self) -> int:
        return self.request.seed

    def label(self) -> str:
        """Three lines: who made it and the run's figures (the steps it took, not the steps
        allowed), its settings, its fills; a fourth, the instruction asked for (issue 24),
        stands above the fills. A figure is held together by no-break spaces, so
        a narrow list wraps between figures, never inside one ("0.6 s" never alone on a line)."""
        r = self.result
        fills = [r.span_text(i) for i in range(len(r.spans))] if r is not None else []
        seed = self.record.label() if self.record is not None else f"seed {self.seed}"
        figures = []
        if r is not None:
            taken, allowed = len(self.events) or r.nfe, self.settings.steps
            unit = "step" if allowed == 1 else "steps"
            figures.append(f"{taken} {unit}" if taken == allowed else f"{taken} of {allowed} {unit}")
            figures += [f"{r.nfe} NFE", f"{r.seconds:.1f} s"]
        line = " · ".join([f"#{self.number}", seed] + [f.replace(" ", "\u00a0") for f in figures])
        if self.same_as is not None:
            line += f" · same fill as #{self.same_as}"
        n = self.settings.steps
        planned = (f"{n} steps", f"{n} step")  # as settings.describe() words it
        setup = " · ".join(part for part in self.settings.describe().split(" · ") if part not in planned)
        instruction = self.request.instruction
        if instruction:  # the fills read as the answer to it
            return f"{line}\n{setup}\n{instruction_label(instruction)}\n{fills_label(fills)}"
        return f"{line}\n{setup}\n{fills_label(fills)}"


def length_label(tried, fill: str, width: int = 40) -> str:
    """One length tried (engine.types.LengthTried) on one line: its tokens, its score
    (the model's length-normalised likelihood bound, engine.length) and its fill."""
    text = " ".join(fill.split())
    text = text if len(text) <= width else text[: width - 1] + "…"
    unit = "token" if tried.length == 1 else "tokens"
    return f"{tried.length}\u00a0{unit} · score\u00a0{tried.score:.2f} · “{text}”"


def instruction_label(instruction: str, width: int = 60) -> str:
    """The instruction a candidate was asked for, quoted on one line of about ``width`` characters."""
    text = " ".join(instruction.split())
    return f"Asked: “{text if len(text) <= width else text[: width - 1] + '…'}”"


def fills_label(fills: list[str], width: int = 90) -> str:
    """Every span's fill, quoted and shortened so that all of them fit in about ``width`` characters."""
    if not fills:
        return ""
    each = max(8, (width - 3 * (len(fills) - 1)) // len(fills))
    parts = []
    for text in fills:
        text = " ".join(text.split())
        parts.append(f"“{text if len(text) <= each else text[: each - 1] + '…'}”")
    return " · ".join(parts)


class InfillController(QObject):
    """Owns the runs of one window; the window owns the widgets and the idle/running/preview state."""

    _run_requested = Signal(int, object, object, object)
    exportProgress = Signal(int, int)  # frames written, frames in all
    exportFinished = Signal(object)  # (gif, jsonl) paths, or None: failed or cancelled

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
        self._can_batch = bool(getattr(worker, "can_batch", False))
        self._group: list[Candidate] = []  # the candidates the running pass computes together
        # Watch mode: events wait here and are shown one per pace tick; the finish waits for them.
        self.watch_queue: deque = deque()
        self.watch_timer = QTimer(self)
        self.watch_timer.timeout.connect(self._watch_tick)
        self._finish_waiting = None
        queued = Qt.ConnectionType.QueuedConnection
        self._run_requested.connect(worker.run, queued)
        worker.step.connect(self._on_step, queued)
        worker.finished.connect(self._on_finished, queued)
        worker.cancelled.connect(self._on_cancelled, queued)
        worker.failed.connect(self._on_failed, queued)
        from .workers.export import ExportWorker

        self.exporter = ExportWorker(self)
        self.exporter.progress.connect(self._export_progress, queued)
        self.exporter.finished.connect(self._export_finished, queued)
        self.exporter.failed.connect(self._export_failed, queued)
        self.exporter.cancelled.connect(self._export_cancelled, queued)
        self._export_dialog: QProgressDialog | None = None
        self._export_number = 0  # the export the dialog shows (ExportWorker.start's number)
        # why the loaded model cannot follow an instruction (None: it can); decided once per model
        self.refusal: str | None = refusal_for(None)
        window.modelReady.connect(self._on_model_ready)
        window.stateChanged.connect(self.update_actions)
        window.editor.masksChanged.connect(self.update_actions)
        window.editor.maskEditRequested.connect(self.edit_mask)
        window.candidates_list.itemClicked.connect(self.on_candidate_clicked)
        window.candidates_list.currentRowChanged.connect(self.update_actions)
        window.reuse_seed_button.clicked.connect(self.reuse_seed)
        self.lengths_box, self.lengths_list = self._lengths_widgets(window.candidates_list)
        self.lengths_list.itemClicked.connect(self.on_length_clicked)
        window.panel.stepRequested.connect(self.on_timeline)
        window.panel.exportRequested.connect(lambda: self.export_run())

    @staticmethod
    def _lengths_widgets(candidates: QListWidget) -> tuple[QWidget, QListWidget]:
        """The "Lengths tried" sub-list, under the candidates list: the lengths an auto
        mask was filled at, best first, for the candidate shown (hidden when it has none)."""
        box = QWidget(objectName="lengthsBox")
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Lengths tried, best first (click one to preview it):"))
        lst = QListWidget(objectName="lengthsList")
        lst.setToolTip("The model filled the auto mask at each of these lengths and ranked the fills by its "
                       "own score (higher is better); click one to preview that fill, Accept applies it")
        lay.addWidget(lst)
        parent = candidates.parentWidget()
        layout = parent.layout() if parent is not None else None
        if layout is not None:
            layout.insertWidget(layout.indexOf(candidates) + 1, box)
        box.hide()
        return box, lst

    def update_actions(self, *_: object) -> None:
        """The infill actions for the window's state, the masks and the candidate chosen."""
        w = self.w
        idle, running, preview = w.state == "idle", w.state == "running", w.state == "preview"
        has_masks = bool(w.editor.masks)
        current = self.current
        w.mask_action.setEnabled(idle)
        w.clear_masks_action.setEnabled(idle and has_masks)
        w.infill_action.setEnabled((idle or preview) and has_masks)
        w.stop_action.setEnabled(running)
        w.accept_action.setEnabled(preview and current is not None and current.result is not None)
        w.reject_action.setEnabled(preview)
        w.regenerate_action.setEnabled((idle or preview) and has_masks)
        w.instruct_action.setEnabled(idle and self.refusal is None)
        keys = w.instruct_action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        w.instruct_action.setToolTip(self.refusal or f"{INSTRUCT_TIP} ({keys})")
        w.instruct_action.setStatusTip(self.refusal or INSTRUCT_TIP)
        # a disabled action takes no shortcut: this one says why instead of doing nothing
        w.instruct_refusal_shortcut.setEnabled(idle and self.refusal is not None)
        w.reuse_seed_button.setEnabled(w.candidates_list.currentRow() >= 0)
        w.tint_action.setEnabled(not running)

    # ---------------------------------------------------------------- masks
    def mask_selection(self) -> None:
        if self.w.state != "idle":
            return
        rs = self.w.run_settings
        self.w.editor.mask_selection(rs.insertion_length, auto=rs.auto_length)

    def clear_masks(self) -> None:
        if self.w.state == "idle":
            self.w.editor.clear_masks()

    def token_count(self, start: int, end: int) -> int | None:
        model = self.w.models.model
        if model is None or start == end:
            return None
        try:
            from lacuna.engine import token_count

            return int(token_count(model, document_text(self.w.editor.document()), start, end))
        except Exception:  # noqa: BLE001 - a count is a hint only
            return None

    def edit_mask(self, mask, global_pos: QPoint | None = None) -> MaskPopup:
        w, editor = self.w, self.w.editor
        popup = MaskPopup(mask, self.token_count(mask.start, mask.end), w,
                          max_length=w.settings_panel.max_mask_length, refusal=self.refusal,
                          history=recent_instructions(w.s))
        popup.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        popup.changed.connect(lambda: editor.mask_changed(mask))  # masksChanged updates the actions
        popup.removeRequested.connect(editor.remove_mask)
        popup.instructionSubmitted.connect(lambda text: self._instruction_submitted(popup, text))
        if global_pos is None:
            c = positions.cursor_at(editor.document(), mask.start)
            global_pos = editor.viewport().mapToGlobal(editor.cursorRect(c).bottomLeft())
        popup.move(global_pos)
        popup.show()
        return popup

    # ---------------------------------------------------------- instructions
    def _on_model_ready(self, _info) -> None:
        self.refusal = refusal_for(self.w.models.model)
        self.w.refresh_actions()  # the actions and the hint follow the new model

    def fill_with_instruction(self) -> MaskPopup | None:
        """"Fill with instruction…": the popup of the mask under the selection (masking the
        selection first, or inserting a mask at the cursor, if there is none), its
        instruction line focused; Enter there runs the fill."""
        w, editor = self.w, self.w.editor
        if w.state != "idle":
            return None
        if self.refusal is not None:
            self.say_refusal()
            return None
        c = editor.textCursor()
        start, end = positions.selection(c) if c.hasSelection() else (positions.position(c),) * 2
        mask = next((m for m in editor.masks if m.contains(start) and m.contains(end)), None)
        if mask is None:
            rs = w.run_settings
            mask = editor.mask_selection(rs.insertion_length, auto=rs.auto_length)
        popup = self.edit_mask(mask)
        popup.instruction.setFocus(Qt.FocusReason.PopupFocusReason)
        return popup

    def say_refusal(self) -> None:
        """The one sentence a model that cannot follow instructions gives: in the status
        line and, whole (the status line cuts a long one), in the banner."""
        if self.refusal is not None:
            self.w.show_error(self.refusal)

    def _instruction_submitted(self, popup: MaskPopup, text: str) -> None:
        popup.close()
        remember_instruction(self.w.s, text)  # kept even if the run fails: nothing typed is lost
        self.start(instruction=text)

    # ----------------------------------------------------------------- runs
    def snapshot_key(self) -> tuple:
        editor = self.w.editor
        return (editor.document().revision(), tuple((m.start, m.end) for m in editor.masks))

    def _make_requests(self, n: int, regenerate: bool,
                       instruction: str | None = None) -> list[tuple[object, RunSettings]]:
        """The requests of one batch, each with the settings it runs at (and
        ``instruction``, for an Instruct model's chat; None: a plain fill).

        A greedy request (its seed changes nothing, see app.seeds) would give n
        identical candidates: the first candidate of an Infill stays greedy,
        the others, and every Regenerate, sample at VARIETY_TEMPERATURE."""
        from lacuna.engine.types import InfillRequest, Span  # plain dataclasses

        editor, rs = self.w.editor, self.w.run_settings
        text = document_text(editor.document())
        spans = []
        for m in sorted(editor.masks, key=lambda m: (m.start, m.end)):
            if m.insertion:
                spans.append(Span(m.start, m.end, m.span_length or rs.insertion_length))
            elif m.strength < 1:  # an edit keeps the covered text's own length
                spans.append(Span(m.start, m.end, None, m.strength))
            else:
                spans.append(Span(m.start, m.end, m.span_length))
        if regenerate or rs.random_seed:
            seeds = [RunSettings(random_seed=True).next_seed() for _ in range(n)]
        else:
            seeds = [(rs.seed + k) % (2**31 - 1) for k in range(n)]
        revision = editor.document().revision()
        out = []
        for k, seed in enumerate(seeds):
            req = InfillRequest(text=text, spans=tuple(spans), steps=rs.steps, sampler=rs.sampler,
                                temperature=rs.temperature, top_p=rs.top_p,
                                block_length=rs.block_length or None, threshold=rs.threshold or None,
                                seed=seed, revision=revision,
                                allow_newlines=True if rs.allow_newlines else None,
                                cache=self._cache_for(rs.cache), instruction=instruction)
            settings = rs
            if (regenerate or k > 0) and not seed_matters(req):
                req = replace(req, temperature=VARIETY_TEMPERATURE)
                settings = replace(rs, temperature=VARIETY_TEMPERATURE)
            out.append((req, settings))
        return out

    def _cache_for(self, setting: str) -> str | None:
        """The request's cache for the settings' choice: "auto" is the family's
        default, and a cache the loaded model does not have (BERT-family models
        recompute every step) falls back to that default too,
        as the setting's tooltip says, rather than refusing the fill."""
        if setting == "auto":
            return None
        modes = ("none", *self.w.models.model.cache_modes)
        return setting if setting in modes else None

    def _record(self, request) -> SeedRecord:
        info = self.w.models.model_info
        return SeedRecord(
            seed=request.seed, used=seed_matters(request), temperature=request.temperature,
            model=info.name if info else "", revision=(info.revision or "") if info else "",
            dtype=info.dtype if info else "", device=device_kind(info.device) if info else "")

    def start(self, regenerate: bool = False, instruction: str | None = None) -> bool:
        """Run a batch of candidates for the masks: ``regenerate`` adds to the
        candidates shown, under the instruction they were made with;
        ``instruction`` asks an Instruct model to fill the masks under it."""
        w, models = self.w, self.w.models
        if w.state == "running":
            return False
        if regenerate and instruction is None:
            shown = self.current or (self.candidates[-1] if self.candidates else None)
            instruction = shown.request.instruction if shown is not None else None
        if not w.editor.masks:
            w.show_error("Nothing to fill: select some text and press Ctrl+M to mask it first.")
            return False
        if models.model is None:
            if models.loading_spec and instruction is not None:
                # whether it follows instructions is known once it has loaded: never a plain fill instead
                w.show_error("The model is still loading; fill with the instruction once it is ready "
                             "(the status bar says when).")
                return False
            if models.loading_spec:
                models.pending_infill = True
                w.statusBar().showMessage("The model is still loading; the infill starts when it is ready.")
                return True
            w.show_error("No model is loaded. Choose one in the model picker on the toolbar.")
            return False
        if instruction is not None and self.refusal is not None:
            w.show_error(self.refusal)  # the masks and the text stay as they are
            return False
        if w.state == "preview":
            w.set_state("idle")
        try:
            requests = self._make_requests(w.run_settings.candidates, regenerate, instruction)
        except Exception as exc:  # noqa: BLE001 - InputError and friends
            from .workers import readable_error

            w.show_error(readable_error(exc))
            return False
        w.banner.hide()
        if not regenerate:
            self.clear_candidates()
        key = self.snapshot_key()
        first = len(self.candidates) + 1
        self.batch = [Candidate(first + k, r, rs, key, self._record(r)) for k, (r, rs) in enumerate(requests)]
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
        self._drop_watch_queue()
        self._show_lengths(None)  # the sub-list follows the candidate shown, none while running
        self._show_in_preview(cand)
        w.preview.verticalScrollBar().setValue(w.editor.verticalScrollBar().value())
        w.set_state("running")
        w.panel.reset(f"candidate {cand.number}" if len(self.batch) > 1 else "")
        self.run_id += 1
        self.cancel = threading.Event()
        # frameRendered is for tests and automation: skip the emit (a GIL round trip) when unused
        self._frame_listeners = w.isSignalConnected(QMetaMethod.fromSignal(w.frameRendered))
        # Candidates whose requests differ only in the seed share every forward
        # pass (engine.sampler.stream_candidates); the live view follows the first.
        self._group = self._batchable(cand)
        payload = tuple(c.request for c in self._group) if len(self._group) > 1 else cand.request
        self._run_requested.emit(self.run_id, w.models.model, payload, self.cancel)

    def _batchable(self, cand: Candidate) -> list[Candidate]:
        """``cand`` and the candidates after it in the batch that run the same request but for the seed."""
        group = [cand]
        if not self._can_batch:
            return group
        for other in self.batch[self.batch.index(cand) + 1:]:
            if replace(other.request, seed=cand.request.seed) != cand.request:
                break
            group.append(other)
        return group

    @Slot(object)
    def _on_step(self, message: Steps) -> None:
        events = message.events
        if message.run_id != self.run_id or self.current is None:
            return
        self.current.events.extend(events)
        pace = self.w.panel.watch_ms()
        if pace > 0 or self.watch_queue:
            self.watch_queue.extend(events)
            if not self.watch_timer.isActive():
                self.watch_timer.start(max(pace, 1))
                self._watch_tick()
            return
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

    def _watch_tick(self) -> None:
        if not self.watch_queue:
            self.watch_timer.stop()
            waiting, self._finish_waiting = self._finish_waiting, None
            if waiting is not None:
                self._on_finished(waiting)
            return
        ev = self.watch_queue.popleft()
        self.w.panel.record(ev)
        self.pending_event = ev
        self.render_frame()
        self.watch_timer.setInterval(max(self.w.panel.watch_ms(), 1))
        if not self.watch_queue and self._finish_waiting is not None:
            self.watch_timer.start()  # the last step also stays on screen for one pace

    def _drop_watch_queue(self) -> None:
        self.watch_queue.clear()
        self.watch_timer.stop()
        self._finish_waiting = None

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

    def _add_candidate(self, cand: Candidate, result) -> None:
        cand.result = result
        fill = tuple(result.span_text(i) for i in range(len(result.spans)))
        for other in self.candidates:
            if other.result is not None and other.key == cand.key and \
                    tuple(other.result.span_text(i) for i in range(len(other.result.spans))) == fill:
                cand.same_as = other.number
                break
        self.candidates.append(cand)
        item = QListWidgetItem(cand.label())
        item.setData(Qt.ItemDataRole.UserRole, len(self.candidates) - 1)
        reuse = ("Reuse seed fixes this seed and temperature in the settings" if cand.record.used
                 else "Reuse seed sets the greedy settings that give it")
        asked = f"\nAsked: “{cand.request.instruction}”" if cand.request.instruction else ""
        item.setToolTip(f"{cand.record.describe()}{asked}\nClick to preview; {reuse}.")
        self.w.candidates_list.addItem(item)

    @Slot(object)
    def _on_finished(self, message: Finished) -> None:
        result = message.result
        if message.run_id != self.run_id or self.current is None:
            return
        if self.watch_queue:
            self._finish_waiting = message  # watch mode: finish once the view has shown every step
            return
        self.watch_timer.stop()
        w, cand = self.w, self.current
        self.pending_event = None
        if cand.events:
            w.panel.show_event(cand.events[-1])
        self._add_candidate(cand, result)
        for other, run in zip(self._group[1:], message.others):
            other.events = list(run.events)
            self._add_candidate(other, run.result)
            cand, result = other, run.result
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
    def _on_failed(self, failure: Failed) -> None:
        message = failure.message
        if failure.run_id != self.run_id:
            return
        self.frame_timer.stop()
        self._drop_watch_queue()
        self.cancel = None
        self.current = None
        self.w.set_state("idle")
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
        self._drop_watch_queue()
        self.pending_event = None
        self.current = None
        self.cancel = None
        self.w.set_state("idle")
        self.w.statusBar().showMessage("Stopped; the text is as it was.", 4000)
        self.w.runStopped.emit()

    def shutdown(self) -> None:
        if self.cancel is not None:
            self.cancel.set()
        self.frame_timer.stop()
        self._drop_watch_queue()
        self.exporter.cancel()  # a cancelled export leaves no file
        self.exporter.wait()

    def leave_run(self) -> None:
        if self.w.state == "running":
            self.stop()
        elif self.w.state == "preview":
            self.reject()

    # -------------------------------------------------------- preview/result
    def clear_candidates(self) -> None:
        """Forget every candidate and the run shown in the Denoising panel."""
        self.candidates.clear()
        self.w.candidates_list.clear()
        self._show_lengths(None)
        self.w.panel.reset()

    def show_candidate(self, index: int) -> bool:
        w = self.w
        if w.state == "running" or not (0 <= index < len(self.candidates)):
            return False
        cand = self.candidates[index]
        if cand.key != self.snapshot_key():
            w.show_error("The text or the masks changed since this candidate was made; run Infill again.")
            return False
        self._show_in_preview(cand)
        w.preview.render_result(cand.fill)
        self.current = cand
        self._show_lengths(cand)
        w.panel.load_history(cand.events)
        w.panel.set_timeline(len(cand.events))
        if w.candidates_list.currentRow() != index:
            w.candidates_list.setCurrentRow(index)
        if w.state != "preview":
            w.preview.verticalScrollBar().setValue(w.editor.verticalScrollBar().value())
        w.set_state("preview")
        return True

    def on_candidate_clicked(self, item: QListWidgetItem) -> None:
        self.show_candidate(int(item.data(Qt.ItemDataRole.UserRole)))

    def _show_lengths(self, cand: Candidate | None) -> None:
        """Fill the "Lengths tried" sub-list with ``cand``'s (hidden for None or none)."""
        lst = self.lengths_list
        lst.clear()
        lengths = getattr(cand.result, "lengths", ()) if cand is not None and cand.result is not None else ()
        several = sum(1 for tried in lengths if tried) > 1
        for i, tried in enumerate(lengths):
            for k, t in enumerate(tried):
                label = length_label(t, t.result.span_text(i))
                item = QListWidgetItem(f"mask {i + 1}: {label}" if several else label)
                item.setData(Qt.ItemDataRole.UserRole, (i, k))
                item.setToolTip(f"{t.length} tokens, scored {t.score:.3f} by the model: its likelihood bound "
                                "of this fill in its context, length-normalised (engine.length; higher is better)"
                                + ("; the best, the run's own fill" if k == 0 else ""))
                lst.addItem(item)
                if (t.result is cand.shown) if cand.shown is not None else (k == 0 and lst.currentRow() < 0):
                    lst.setCurrentItem(item)
        self.lengths_box.setVisible(lst.count() > 0)

    def on_length_clicked(self, item: QListWidgetItem) -> None:
        i, k = item.data(Qt.ItemDataRole.UserRole)
        self.show_length(i, k)

    def show_length(self, span: int, rank: int) -> bool:
        """Preview the fill of the ``rank``-th length tried (0: the best) for auto span
        ``span`` of the candidate shown; already computed, so no run. Accept applies it."""
        w, cand = self.w, self.current
        if w.state != "preview" or cand is None or cand.result is None:
            return False
        lengths = cand.result.lengths
        if not (0 <= span < len(lengths) and 0 <= rank < len(lengths[span])):
            return False
        if cand.key != self.snapshot_key():
            w.show_error("The text or the masks changed since this candidate was made; run Infill again.")
            return False
        # the best of each span is the run's own fill (which also carries ``lengths``)
        cand.shown = None if rank == 0 else lengths[span][rank].result
        w.preview.render_result(cand.fill)
        w.panel.set_timeline(len(cand.events) if cand.shown is None else 0)  # the steps are the best one's
        if self.lengths_list.currentRow() != self._length_row(span, rank):
            self.lengths_list.setCurrentRow(self._length_row(span, rank))
        w.statusBar().showMessage(f"Showing the fill of {lengths[span][rank].length} tokens; "
                                  "Accept applies it.", 5000)
        return True

    def _length_row(self, span: int, rank: int) -> int:
        for row in range(self.lengths_list.count()):
            if self.lengths_list.item(row).data(Qt.ItemDataRole.UserRole) == (span, rank):
                return row
        return -1

    def on_timeline(self, step: int) -> None:
        cand = self.current
        if self.w.state != "preview" or cand is None or not cand.events:
            return
        step = max(1, min(step, len(cand.events)))
        ev = cand.events[step - 1]
        if step == len(cand.events) and cand.result is not None:
            self.w.preview.render_result(cand.fill)
        else:
            self.w.preview.render_event(ev)
        committed = sum(len(e.committed) for e in cand.events[:step])
        self.w.panel.show_event(ev, committed)

    def reuse_seed(self) -> None:
        """Fix the settings a candidate was made with, its seed and temperature included, so
        the next Infill on the same model and dtype gives its fill again."""
        w = self.w
        row = w.candidates_list.currentRow()
        if not 0 <= row < len(self.candidates):
            return
        cand = self.candidates[row]
        rec = cand.record
        w.settings_panel.use_seed(cand.seed, temperature=cand.request.temperature)
        if not rec.used:
            msg = "This fill is greedy: no seed involved; temperature 0 gives it again."
        else:
            msg = f"Seed fixed to {cand.seed} at temperature {cand.request.temperature:g}."
        if not rec.same_setup(w.models.model_info):
            msg += (f" It was made with {rec.model} ({rec.dtype}, {rec.device}); on another model, dtype "
                    "or device the fill may differ.")
        w.statusBar().showMessage(msg, 8000)

    def accept(self) -> bool:
        """Apply the previewed fill to the document as one undo step."""
        w, editor, cand = self.w, self.w.editor, self.current
        if w.state != "preview" or cand is None or cand.result is None:
            return False
        if cand.key != self.snapshot_key():
            w.show_error("The text changed since this fill was made; it was not applied.")
            return False
        result, req = cand.fill, cand.request
        doc = editor.document()
        editor.apply_fills(req.text, [(s.start, s.end) for s in req.spans],
                           [result.span_text(i) for i in range(len(req.spans))])
        editor.clear_masks()
        self.last_accept = [(p.start, p.end, p.confidence) for ps in result.pieces for p in ps
                            if p.confidence is not None]
        self.accept_revision = doc.revision()
        # the candidates go (they were made from the text before the fill); the chart and
        # figures of the run stay until the next run, Reject or another file (issue 21)
        self.candidates.clear()
        w.candidates_list.clear()
        self._show_lengths(None)
        w.panel.set_timeline(0)  # no preview left to replay into
        self.current = None
        w.set_state("idle")
        if result.spans:
            editor.setTextCursor(positions.cursor_at(doc, result.spans[-1].end))
        if w.tint_action.isChecked():
            editor.set_tint(self.last_accept)
        w.statusBar().showMessage("Applied. Ctrl+Z undoes the whole fill.", 5000)
        return True

    def reject(self) -> None:
        if self.w.state != "preview":
            return
        self.current = None
        self._show_lengths(None)
        self.w.set_state("idle")
        self.w.panel.reset()

    def export_run(self, base: str | None = None) -> bool:
        """Save the previewed run as ``NAME.jsonl`` (its steps) and ``NAME.gif`` (the view,
        one frame per step, cropped to the masked spans and some context). ``base`` None
        asks for the name. The files are made on a thread of their own
        (app.workers.export) with a progress dialog that can cancel; ``exportFinished``
        tells the end. Returns whether an export started."""
        from .viz.export import export_paths, replaced_unasked
        from .workers.export import ExportJob

        w, cand = self.w, self.current
        if w.state != "preview" or cand is None or not cand.events or cand.result is None:
            return False
        if self.exporter.busy():
            w.statusBar().showMessage("An export is already running: wait for it, or cancel it.", 6000)
            return False
        if base is None:
            base, _ = QFileDialog.getSaveFileName(w, "Export this run", "lacuna-run.gif",
                                                  "Animated GIF and JSON lines (*.gif)")
            if not base:
                return False
        gif, lines = export_paths(base)
        others = replaced_unasked(base, (gif, lines))
        if others and not self.ask_replace(others):
            return False
        req = cand.request
        job = ExportJob(
            text=req.text, spans=tuple((s.start, s.end) for s in req.spans), events=tuple(cand.events),
            result=cand.result, gif=gif, lines=lines, request=req,
            record=cand.record.describe() if cand.record is not None else "",
            font=w.preview.font().toString(), width=w.preview.viewport().width(),
            ms_per_frame=round(1000 / w.panel.speed.value()))
        self._end_export_dialog()  # a job that ended with its signal still queued has no dialog now
        self._export_number = self.exporter.start(job)
        self._export_dialog = dialog = QProgressDialog(
            f"Exporting {len(job.events)} step{'' if len(job.events) == 1 else 's'} to {gif.name}…", "Cancel", 0,
            len(job.events), w)
        dialog.setObjectName("exportProgress")
        dialog.setWindowTitle("Export")
        dialog.setWindowModality(Qt.WindowModality.NonModal)  # the window stays usable meanwhile
        dialog.setMinimumDuration(400)  # a short export shows no dialog at all
        dialog.setAutoReset(False)
        dialog.setAutoClose(False)
        dialog.canceled.connect(self.exporter.cancel)
        dialog.setValue(0)
        return True

    def ask_replace(self, paths: list[Path]) -> bool:
        """Whether to replace existing files the save dialog did not ask about (tests replace it)."""
        names = " and ".join(p.name for p in paths)
        them = "it" if len(paths) == 1 else "them"
        answer = QMessageBox.question(
            self.w, "Replace files?", f"This export also writes {names}, which already "
            f"exist{'s' if len(paths) == 1 else ''}. Replace {them}?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _end_export_dialog(self) -> None:
        dialog, self._export_dialog = self._export_dialog, None
        if dialog is not None:
            dialog.canceled.disconnect(self.exporter.cancel)
            dialog.close()
            dialog.deleteLater()

    def _export_ended(self, number: int) -> None:
        # the signal of a job that ended after the next one started closes nothing of that one
        if number == self._export_number:
            self._end_export_dialog()

    def _export_progress(self, number: int, done: int, total: int) -> None:
        if number != self._export_number:
            return
        if self._export_dialog is not None:
            self._export_dialog.setValue(min(done, total))
        self.exportProgress.emit(done, total)

    def _export_finished(self, number: int, paths) -> None:
        self._export_ended(number)
        gif, lines = paths
        self.w.statusBar().showMessage(f"Exported the run to {gif.name} and {lines.name}", 6000)
        self.exportFinished.emit(paths)

    def _export_failed(self, number: int, message: str) -> None:
        self._export_ended(number)
        self.w.show_error(message)
        self.exportFinished.emit(None)

    def _export_cancelled(self, number: int) -> None:
        self._export_ended(number)
        self.w.statusBar().showMessage("Export cancelled; no file was written.", 6000)
        self.exportFinished.emit(None)

    def toggle_tint(self, on: bool) -> None:
        w = self.w
        w.s.setValue("view/tint", on)
        if on and self.last_accept and w.editor.document().revision() == self.accept_revision:
            w.editor.set_tint(self.last_accept)
        elif not on:
            w.editor.clear_tint()


def refusal_for(model) -> str | None:
    """Why ``model`` cannot follow an instruction, as the one sentence to show, or None
    when its folder has a chat template (read once per folder by engine.instruct,
    from tokenizer_config.json: no torch, no model run)."""
    from lacuna.engine.instruct import InstructError, instruct_models, template_for

    if model is None:
        return ("No model is loaded; load an instruction-tuned model "
                f"({', '.join(instruct_models())}) to fill with an instruction.")
    try:
        template_for(model)
    except InstructError as exc:
        return str(exc)
    return None
