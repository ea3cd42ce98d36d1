"""ModelTableModel: the Model manager's rows, read from a ModelManager (GUI thread only)."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

COLUMNS = ("Name", "Family", "Download", "Per fill", "bf16", "8-bit", "4-bit", "bf16", "8-bit", "4-bit",
           "Status", "Note")
NAME, FAMILY, SIZE, SPEED, BF16, INT8, INT4, CARD_BF16, CARD_INT8, CARD_INT4, STATUS, NOTE = range(len(COLUMNS))
CARD_COLUMNS = (CARD_BF16, CARD_INT8, CARD_INT4)
PRECISION_OF = {BF16: ("bf16", "fp16", "fp32"), INT8: ("int8",), INT4: ("int4",),
                CARD_BF16: ("bf16", "fp16", "fp32"), CARD_INT8: ("int8",), CARD_INT4: ("int4",)}
CANNOT_LOAD = "the engine cannot load this family yet"
DEMO_NOTE = "a demonstration: its fills are rarely sensible text"
BEST_MARK = "★ "  # before the name of the best model for this machine (engine.hub.advice.recommend)
ID_ROLE = Qt.ItemDataRole.UserRole + 1


class ModelTableModel(QAbstractTableModel):
    def __init__(self, manager: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self._manager = manager
        self._ids: list[str] = [m.id for m in manager.models()]
        manager.modelsChanged.connect(self._reset)
        manager.rowChanged.connect(self._row_changed)
        manager.fitsReady.connect(self._fits_changed)

    # Qt model API ------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        card = self._manager.card_gb()
        if role == Qt.ItemDataRole.DisplayRole:
            if section in CARD_COLUMNS:
                return f"{card:g} GB: {COLUMNS[section]}" if card else COLUMNS[section]
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            if section == SIZE:
                return "The download: the Hub's listed size, or ≈ an estimate from parameters x bytes per parameter"
            if section == SPEED:
                return ("Expected seconds per fill on this machine's CPU, in its own precision: the bundled "
                        "starter's fill is timed once and each model's cost per token scales it (an estimate)")
            if section in (BF16, INT8, INT4):
                return "Will it fit this machine (the first device listed above)?"
            if section in CARD_COLUMNS and card:
                return f"Would it fit a GPU with {card:g} GB, all of it free?"
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._ids):
            return None
        name = self._ids[index.row()]
        if role == ID_ROLE:
            return name
        info = self._manager.model(name)
        if info is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(info, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tip(info, col)
        if role == Qt.ItemDataRole.FontRole and col == NAME and self._is_best(name):
            from PySide6.QtGui import QFont

            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (SIZE, SPEED):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _tip(self, info: Any, col: int) -> str | None:
        name = info.id
        facts = self._manager.facts(name)
        if col == NAME:
            where = f"{info.repo or info.path or info.id}" + (f"\ncommit {info.commit}" if info.commit else "")
            lines = [facts.description, where] if facts.description else [where]
            if self._is_best(name):
                lines.append(self._manager.best().reason)
            return "\n".join(lines)
        if col in PRECISION_OF:
            fit = self._fit(name, col)
            if fit is None:
                return None
            tip = _fit_tip(fit)
            seconds = facts.seconds_for(fit.precision) if col not in CARD_COLUMNS else None
            if seconds is not None:
                tip += f"\nAbout {_plain_seconds(seconds)} per fill on this machine's CPU (estimated)."
            if fit.precision in ("int8", "int4") and fit.device == "cpu" and fit.verdict != "n/a":
                from lacuna.engine.hub.fit import QUANT_ON_CPU

                tip += f"\n{QUANT_ON_CPU}."
            return tip
        if col == SIZE and facts.size_estimated:
            return (f"Estimated from {info.parameters:,} parameters x bytes per parameter of "
                    f"{info.dtype or 'float32 (the dtype is not recorded)'}; the Hub's listing gives "
                    "the exact size when the download starts") if info.parameters else None
        if col == SPEED:
            sizing = self._manager.sizing()
            if not facts.seconds:
                return ("Not estimated: this machine's speed is being measured" if not sizing.timed
                        else "Not estimated: the model's size is unknown until it is downloaded")
            parts = [f"{p}: about {_plain_seconds(s)}" for p, s in facts.seconds]
            return ("Expected per fill on this machine's CPU (" + ", ".join(parts) + "); an estimate from the "
                    "starter's measured speed, scaled by this model's FLOPs per token")
        if col == STATUS:
            live = self._manager.live(name)
            return live.message if live is not None and live.message else None
        return None

    def _is_best(self, name: str) -> bool:
        return name == self._manager.marked()

    # helpers ---------------------------------------------------------------
    def id_at(self, row: int) -> str | None:
        return self._ids[row] if 0 <= row < len(self._ids) else None

    def row_of(self, name: str) -> int:
        try:
            return self._ids.index(name)
        except ValueError:
            return -1

    def _fit(self, name: str, col: int):
        fits = self._manager.card_fits(name) if col in CARD_COLUMNS else self._manager.fits(name)
        return next((f for f in fits if f.precision in PRECISION_OF[col]), None)

    def _text(self, info: Any, col: int) -> str:
        from lacuna.engine.hub.fmt import human_bytes, human_count

        if col == NAME:
            demo = " (demo)" if info.status == "bundled" and "demo" not in info.name.lower() else ""
            return (BEST_MARK if self._is_best(info.id) else "") + info.name + demo
        if col == FAMILY:
            return info.family + (f" · {human_count(info.parameters)}" if info.parameters else "")
        if col == SIZE:
            if info.size:
                return human_bytes(info.size)
            live = self._manager.live(info.id)
            total = getattr(getattr(live, "progress", None), "total", 0)
            if total:
                return human_bytes(total)
            from lacuna.engine.hub.advice import size_text

            facts = self._manager.facts(info.id)
            return size_text(facts.size, facts.size_estimated) if facts.size else "?"
        if col == SPEED:
            facts = self._manager.facts(info.id)
            if facts.seconds:
                return _seconds(facts.seconds[0][1])
            return "…" if not self._manager.sizing().timed else "—"
        if col in PRECISION_OF:
            fit = self._fit(info.id, col)
            if fit is None:
                return "…" if col not in CARD_COLUMNS or self._manager.card_gb() else ""
            if fit.verdict == "n/a":
                return "—"
            return _fit_text(fit)
        if col == STATUS:
            return self._manager.status_text(info.id)
        if col == NOTE:
            if info.status == "bundled":
                return DEMO_NOTE
            if info.family == "unknown":
                return "family known after download" if info.status == "available" else ""
            if not info.loadable and info.status not in ("bundled", "local"):
                return CANNOT_LOAD
            if info.remote_code:
                return "custom code accepted"
            return info.license or ""
        return ""

    # updates ---------------------------------------------------------------
    def _reset(self) -> None:
        ids = [m.id for m in self._manager.models()]
        if ids == self._ids:
            self._all_changed()
            return
        self.beginResetModel()
        self._ids = ids
        self.endResetModel()

    def _row_changed(self, name: str) -> None:
        row = self.row_of(name)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def _fits_changed(self) -> None:
        self._all_changed()
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, CARD_BF16, CARD_INT4)

    def _all_changed(self) -> None:
        if self._ids:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._ids) - 1, len(COLUMNS) - 1))


def _gb(n: int) -> str:
    from lacuna.engine.hub.fmt import human_bytes

    return human_bytes(n)


def _plain_seconds(seconds: float) -> str:
    from lacuna.engine.hub.advice import seconds_text

    return seconds_text(seconds)


def _seconds(seconds: float) -> str:
    """A cell's estimate: "≈12 s"."""
    return "≈" + _plain_seconds(seconds)


def _fit_text(fit: Any) -> str:
    """The verdict, the longest document that fits when it is shorter than the model's context,
    and what must be installed first."""
    from lacuna.engine.hub.fit import QUANT_INSTALL

    text = fit.verdict
    if fit.longest and fit.max_context and fit.longest < fit.max_context:
        text += f" · up to {fit.longest:,}"
    if QUANT_INSTALL in (fit.note or ""):
        text += " · needs bitsandbytes"
    return text


def _fit_tip(fit: Any) -> str:
    head = f"{fit.precision} on {fit.device}: "
    est = fit.estimate
    if est is None:
        return head + (fit.note or "no estimate")
    parts = [f"weights {_gb(est.weights)}"]
    if est.cache:
        parts.append(f"context cache {_gb(est.cache)}")
    parts.append(f"sampler {_gb(est.sampler)}" if est.sampler >= est.activations
                 else f"activations {_gb(est.activations)}")
    parts.append(f"runtime {_gb(est.overhead)}")
    lines = [head + f"{est.context:,} tokens with {est.hole:,} masked need about {_gb(fit.need)} "
             f"({', '.join(parts)}); {_gb(fit.available)} available"]
    if fit.longest == 0:
        lines.append("No document fits with this many masked tokens.")
    elif fit.longest is not None:
        whole = " (the whole context)" if fit.max_context and fit.longest >= fit.max_context else ""
        lines.append(f"The longest document that fits: {fit.longest:,} tokens{whole}.")
    if fit.note:
        lines.append(fit.note)
    return "\n".join(lines)
