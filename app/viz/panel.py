"""Denoising panel: step x of y, NFE, tokens/s, chart, timeline slider, legend."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QSlider, QSpinBox, QToolButton, QToolTip,
    QVBoxLayout, QWidget,
)

from ..editor import colors

BAR = QColor(124, 58, 237, 170)
LINE = QColor(22, 163, 74)
CURSOR = QColor(37, 99, 235)


class StepChart(QWidget):
    """Bars: tokens committed at each step; line: their mean confidence (0..1)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stepChart")
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.counts: list[int] = []
        self.means: list[float | None] = []
        self.total_steps = 0
        self.cursor: int | None = None  # step shown by the timeline (1-based)
        self.tokens: list[list[str]] = []  # per step: the text of the tokens it committed
        self.finished = False  # the run ended: steps past the last one were saved, not pending
        self._plot = QRectF()
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, 130)

    def set_data(self, counts: list[int], means: list[float | None], total_steps: int,
                 tokens: list[list[str]] | None = None, finished: bool = False) -> None:
        self.counts, self.means, self.total_steps, self.finished = counts, means, total_steps, finished
        if tokens is not None:
            self.tokens = tokens
        self.update()

    def step_at(self, x: float) -> int | None:
        """The 1-based step whose bar is under x (widget pixels), or None."""
        n = max(self.total_steps, len(self.counts), 1)
        plot = self._plot
        if not self.counts or plot.width() <= 0 or not plot.left() <= x < plot.right():
            return None
        step = int((x - plot.left()) / (plot.width() / n)) + 1
        return step if step <= len(self.counts) else None

    def tooltip_for(self, step: int) -> str:
        words = self.tokens[step - 1] if step - 1 < len(self.tokens) else []
        mean = self.means[step - 1] if step - 1 < len(self.means) else None
        head = f"Step {step}: {self.counts[step - 1]} committed"
        if mean is not None:
            head += f", mean confidence {mean:.0%}"
        if not words:
            return head
        shown = ", ".join(repr(w.strip() or w) for w in words[:24])
        return f"{head}\n{shown}{' …' if len(words) > 24 else ''}"

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        step = self.step_at(event.position().x())
        if step is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(event.globalPosition().toPoint(), self.tooltip_for(step), self)

    def set_cursor(self, step: int | None) -> None:
        self.cursor = step
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.base())
        fm = self.fontMetrics()
        left, right, top, bottom = fm.horizontalAdvance("000") + 6, fm.horizontalAdvance("100%") + 6, 6, fm.height() + 4
        plot = QRectF(left, top, max(10, self.width() - left - right), max(10, self.height() - top - bottom))
        self._plot = plot
        p.setPen(QPen(pal.mid().color(), 1))
        p.drawRect(plot)
        n = max(self.total_steps, len(self.counts), 1)
        peak = max(self.counts + [1])
        # axes labels
        p.setPen(pal.text().color())
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, self.font().pointSizeF() * 0.8))
        p.setFont(small)
        p.drawText(QRectF(0, plot.top() - 2, left - 3, fm.height()), Qt.AlignmentFlag.AlignRight, str(peak))
        p.drawText(QRectF(0, plot.bottom() - fm.height() + 2, left - 3, fm.height()), Qt.AlignmentFlag.AlignRight, "0")
        p.setPen(LINE)
        p.drawText(QRectF(plot.right() + 3, plot.top() - 2, right, fm.height()), Qt.AlignmentFlag.AlignLeft, "100%")
        p.drawText(QRectF(plot.right() + 3, plot.bottom() - fm.height() + 2, right, fm.height()), Qt.AlignmentFlag.AlignLeft, "0%")
        p.setPen(pal.text().color())
        p.drawText(QRectF(plot.left(), plot.bottom() + 1, plot.width(), fm.height()), Qt.AlignmentFlag.AlignHCenter,
                   f"step (1–{n})" if self.counts else "no run yet")
        if not self.counts:
            p.end()
            return
        # few Qt calls per paint: every call hands the GIL to the engine thread and back
        w = plot.width() / n
        p.setPen(Qt.PenStyle.NoPen)
        shown = len(self.counts) if self.cursor is None else min(self.cursor, len(self.counts))
        left, bottom, height, bw = plot.left(), plot.bottom(), plot.height(), max(1.0, w * 0.8)
        rects = [QRectF(left + i * w + w * 0.1, bottom - height * c / peak, bw, height * c / peak)
                 for i, c in enumerate(self.counts) if c]
        if self.cursor is not None:
            faded = QColor(BAR)
            faded.setAlpha(50)
            p.setBrush(faded)
            p.drawRects([r for r in rects if r.left() > left + shown * w])
            rects = [r for r in rects if r.left() <= left + shown * w]
        p.setBrush(BAR)
        p.drawRects(rects)
        points = [QPointF(left + (i + 0.5) * w, bottom - height * m) for i, m in enumerate(self.means) if m is not None]
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(LINE, 2))
        if len(points) > 1:
            p.drawPolyline(points)
        saved = self.total_steps - len(self.counts) if self.finished else 0
        if saved > 0:
            # steps the plan had room for that parallel (threshold) decoding did not need
            region = QRectF(left + len(self.counts) * w, plot.top(), saved * w, height)
            p.fillRect(region, QColor(22, 163, 74, 28))
            p.setPen(LINE)
            p.drawText(region, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, f"{saved} steps\nnot needed")
        if self.cursor is not None:
            x = plot.left() + (self.cursor - 0.5) * w
            p.setPen(QPen(CURSOR, 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
        p.end()


class Legend(QWidget):
    """Explains the colours of the live view."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("legend")
        self.setMinimumHeight(self.fontMetrics().height() * 4 + 8)
        self.setToolTip("Committed tokens are tinted by the model's confidence in them")

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, self.fontMetrics().height() * 4 + 10)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        fm = self.fontMetrics()
        lh = fm.height() + 2
        x, y = 2, 2
        # confidence ramp
        ramp_w = max(60, self.width() - 2 * fm.horizontalAdvance("unsure ") - 8)
        p.setPen(self.palette().text().color())
        p.drawText(x, y + fm.ascent(), "unsure")
        rx = x + fm.horizontalAdvance("unsure ")
        steps = 24
        for i in range(steps):
            p.fillRect(QRectF(rx + ramp_w * i / steps, y + 1, ramp_w / steps + 1, lh - 4), colors.confidence_color(i / (steps - 1), 220))
        p.drawText(int(rx + ramp_w + 4), y + fm.ascent(), "sure")
        y += lh + 2
        # new this step
        sample = "word"
        sw = fm.horizontalAdvance(sample) + 6
        p.fillRect(QRectF(x, y, sw, lh - 2), colors.confidence_color(0.8, 220))
        bold = QFont(self.font())
        bold.setBold(True)
        bold.setUnderline(True)
        p.setFont(bold)
        p.setPen(QColor(30, 58, 138))
        p.drawText(x + 3, y + fm.ascent(), sample)
        p.setFont(self.font())
        p.setPen(self.palette().text().color())
        p.drawText(x + sw + 6, y + fm.ascent(), "decided in the latest step")
        y += lh
        pw = fm.horizontalAdvance(colors.PLACEHOLDER * 3) + 6
        p.fillRect(QRectF(x, y, pw, lh - 2), colors.PLACEHOLDER_BG)
        p.setPen(colors.PLACEHOLDER_FG)
        p.drawText(x + 3, y + fm.ascent(), colors.PLACEHOLDER * 3)
        p.setPen(self.palette().text().color())
        p.drawText(x + pw + 6, y + fm.ascent(), "still masked (one per token)")
        y += lh
        mw = fm.horizontalAdvance("mask") + 6
        p.fillRect(QRectF(x, y, mw, lh - 2), colors.MASK_BG)
        p.drawText(x + 3, y + fm.ascent(), "mask")
        p.drawText(x + mw + 6, y + fm.ascent(), "masked span in the editor")
        p.end()


class DenoisePanel(QWidget):
    """Figures of the current run, the chart and the timeline (enabled when it ends).

    Play animates a finished run step by step at ``speed`` steps per second
    through the same path as dragging the slider, so the preview, its
    confidence tint and the chart cursor follow.
    """

    stepRequested = Signal(int)  # timeline moved to this step (1-based)
    exportRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("denoisePanel")
        lay = QVBoxLayout(self)
        grid = QGridLayout()
        self.step_label = QLabel("Step – / –", objectName="stepLabel")
        f = self.step_label.font()
        f.setPointSizeF(f.pointSizeF() * 1.25)
        f.setBold(True)
        self.step_label.setFont(f)
        self.nfe_label = QLabel("NFE –", objectName="nfeLabel")
        self.speed_label = QLabel("– tok/s", objectName="speedLabel")
        self.masked_label = QLabel("– masked", objectName="maskedLabel")
        self.time_label = QLabel("– s", objectName="timeLabel")
        self.nfe_label.setToolTip("Network function evaluations: forward passes of the model so far")
        self.saved_label = QLabel("", objectName="nfeSavedLabel")
        self.saved_label.setToolTip("Forward passes the step plan allowed that parallel (threshold) decoding "
                                    "did not need")
        grid.addWidget(self.step_label, 0, 0, 1, 2)
        grid.addWidget(self.nfe_label, 1, 0)
        grid.addWidget(self.speed_label, 1, 1)
        grid.addWidget(self.masked_label, 2, 0)
        grid.addWidget(self.time_label, 2, 1)
        grid.addWidget(self.saved_label, 3, 0, 1, 2)
        lay.addLayout(grid)
        cap = QLabel("<small>Tokens committed per step (bars) and their mean confidence (line)</small>")
        cap.setWordWrap(True)
        lay.addWidget(cap)
        self.chart = StepChart(self)
        lay.addWidget(self.chart, 1)
        row = QHBoxLayout()
        self.play_button = QToolButton(objectName="timelinePlay")
        self.play_button.setCheckable(True)
        self.play_button.setEnabled(False)
        self.play_button.setText("▶")
        self.play_button.setToolTip("Play the finished run step by step")
        self.play_button.toggled.connect(self._play_toggled)
        row.addWidget(self.play_button)
        self.slider = QSlider(Qt.Orientation.Horizontal, objectName="timelineSlider")
        self.slider.setEnabled(False)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Replay any step of the finished run in the editor")
        self.slider.valueChanged.connect(self._slider_moved)
        row.addWidget(self.slider, 1)
        self.speed = QSpinBox(objectName="timelineSpeed")
        self.speed.setRange(2, 30)
        self.speed.setValue(8)
        self.speed.setSuffix(" steps/s")
        self.speed.setToolTip("Replay speed")
        self.speed.valueChanged.connect(self._speed_changed)
        row.addWidget(self.speed)
        self.watch = QSpinBox(objectName="watchPace")
        self.watch.setRange(0, 2000)
        self.watch.setSingleStep(50)
        self.watch.setSpecialValueText("live: full speed")
        self.watch.setPrefix("live: ")
        self.watch.setSuffix(" ms/step")
        self.watch.setToolTip("Watch mode: show each step of a live run for at least this long, so a fast "
                              "fill can be seen resolving (the model still runs at full speed)")
        row2 = QHBoxLayout()
        row2.addStretch(1)
        row2.addWidget(self.watch)
        self.export_button = QToolButton(objectName="exportRunButton")
        self.export_button.setText("Export…")
        self.export_button.setEnabled(False)
        self.export_button.setToolTip("Save this run's steps as JSON lines and an animated GIF of the view")
        self.export_button.clicked.connect(self.exportRequested)
        row2.addWidget(self.export_button)
        lay.addLayout(row)
        lay.addLayout(row2)
        self.play_timer = QTimer(self, objectName="timelinePlayTimer")
        self.play_timer.timeout.connect(self._advance)
        self._speed_changed(self.speed.value())
        self.legend = Legend(self)
        lay.addWidget(self.legend)
        self._counts: list[int] = []
        self._means: list[float | None] = []
        self._tokens: list[list[str]] = []
        self._committed = 0
        self._quiet = False
        self._grows = False  # the run's canvas changed length (DreamOn): the label gives its size

    # ---- live ------------------------------------------------------------
    def reset(self, label: str = "") -> None:
        """Forget the shown run (a new run, another file, a rejected fill)."""
        self._counts, self._means, self._tokens, self._committed = [], [], [], 0
        self._grows = False
        self.saved_label.setText("")
        self.step_label.setText("Step – / –" + (f"  ·  {label}" if label else ""))
        self.nfe_label.setText("NFE –")
        self.speed_label.setText("– tok/s")
        self.masked_label.setText("– masked")
        self.time_label.setText("– s")
        self.set_timeline(0)
        self.chart.set_cursor(None)
        self.chart.set_data([], [], 0)

    def record(self, ev) -> None:
        """Account one event (every event, not only the drawn ones)."""
        self._counts.append(len(ev.committed))
        confs = [c.confidence for c in ev.committed if c.confidence is not None]
        self._means.append(sum(confs) / len(confs) if confs else None)
        self._tokens.append([c.text for c in ev.committed])
        self._committed += len(ev.committed)
        self._grows = self._grows or bool(ev.expanded or ev.deleted)

    def show_event(self, ev, total_committed: int | None = None, chart: bool = True) -> None:
        """Show an event. ``chart=False`` (between the slower chart updates of a live run)
        updates the counters only, not the rate, time and chart: fewer repaints per frame."""
        self.step_label.setText(f"Step {ev.step} / {ev.steps}")
        self.nfe_label.setText(f"NFE {ev.nfe}")
        grows = self._grows or bool(ev.expanded or ev.deleted)
        self.masked_label.setText(f"{ev.masked} masked of {len(ev.tokens)}" if grows else f"{ev.masked} masked")
        if not chart:
            return
        done = total_committed if total_committed is not None else self._committed
        rate = done / ev.elapsed if ev.elapsed > 0 else 0.0
        self.speed_label.setText(f"{rate:.1f} tok/s")
        self.time_label.setText(f"{ev.elapsed:.2f} s")
        saved = ev.steps - ev.nfe if ev.done else 0
        self.saved_label.setText(f"{saved} of {ev.steps} planned NFE saved" if saved > 0 else "")
        self.chart.set_data(self._counts, self._means, ev.steps, self._tokens,
                            finished=ev.done)

    def load_history(self, events: list) -> None:
        """Rebuild the figures from a finished candidate's events."""
        self._counts, self._means, self._tokens, self._committed = [], [], [], 0
        self._grows = False
        for ev in events:
            self.record(ev)
        if events:
            self.show_event(events[-1])

    # ---- timeline ----------------------------------------------------------
    def set_timeline(self, n_events: int) -> None:
        self.play_button.setChecked(False)
        self.play_button.setEnabled(n_events > 1)
        self.export_button.setEnabled(n_events > 0)
        self._quiet = True
        self.slider.setEnabled(n_events > 0)
        self.slider.setRange(1 if n_events else 0, n_events)
        self.slider.setValue(n_events)
        self._quiet = False
        self.chart.set_cursor(None)

    def _slider_moved(self, value: int) -> None:
        if self._quiet or value < 1:
            return
        self.chart.set_cursor(value if value < self.slider.maximum() else None)
        self.stepRequested.emit(value)

    def watch_ms(self) -> int:
        """Minimum milliseconds each live step stays on screen (0: as fast as it comes)."""
        return self.watch.value()

    # ---- playback ----------------------------------------------------------
    def _speed_changed(self, steps_per_second: int) -> None:
        self.play_timer.setInterval(max(1, round(1000 / steps_per_second)))

    def _play_toggled(self, on: bool) -> None:
        self.play_button.setText("⏸" if on else "▶")
        self.play_button.setToolTip("Pause" if on else "Play the finished run step by step")
        if not on:
            self.play_timer.stop()
            return
        if self.slider.value() >= self.slider.maximum():
            self.slider.setValue(self.slider.minimum())  # from the start, as a player does
        self.play_timer.start()

    def _advance(self) -> None:
        if not self.slider.isEnabled() or self.slider.value() >= self.slider.maximum():
            self.play_button.setChecked(False)
            return
        self.slider.setValue(self.slider.value() + 1)
        if self.slider.value() >= self.slider.maximum():
            self.play_button.setChecked(False)
