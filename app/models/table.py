"""ModelTableModel: the Model manager's rows, read from a ModelManager (GUI thread only)."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

COLUMNS = ("Name", "Family", "Size", "bf16", "8-bit", "4-bit", "Status", "Note")
NAME, FAMILY, SIZE, BF16, INT8, INT4, STATUS, NOTE = range(len(COLUMNS))
CANNOT_LOAD = "the engine cannot load this family yet"
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
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
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
            if col == NAME:
                return f"{info.repo or info.path or info.id}" + (f"\ncommit {info.commit}" if info.commit else "")
            if col in (BF16, INT8, INT4):
                fit = self._fit(name, col)
                if fit is not None:
                    return _fit_tip(fit)
            if col == STATUS:
                live = self._manager.live(name)
                return live.message if live is not None and live.message else None
        if role == Qt.ItemDataRole.TextAlignmentRole and col == SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # helpers ---------------------------------------------------------------
    def id_at(self, row: int) -> str | None:
        return self._ids[row] if 0 <= row < len(self._ids) else None

    def row_of(self, name: str) -> int:
        try:
            return self._ids.index(name)
        except ValueError:
            return -1

    def _fit(self, name: str, col: int):
        wanted = {BF16: ("bf16", "fp16", "fp32"), INT8: ("int8",), INT4: ("int4",)}[col]
        return next((f for f in self._manager.fits(name) if f.precision in wanted), None)

    def _text(self, info: Any, col: int) -> str:
        from engine.hub.fmt import human_bytes, human_count

        if col == NAME:
            return info.name
        if col == FAMILY:
            return info.family + (f" · {human_count(info.parameters)}" if info.parameters else "")
        if col == SIZE:
            if info.size:
                return human_bytes(info.size)
            live = self._manager.live(info.id)
            total = getattr(getattr(live, "progress", None), "total", 0)
            return human_bytes(total) if total else "?"
        if col in (BF16, INT8, INT4):
            fit = self._fit(info.id, col)
            if fit is None:
                return "…"
            if fit.verdict == "n/a":
                return "—"
            return _fit_text(fit)
        if col == STATUS:
            return self._manager.status_text(info.id)
        if col == NOTE:
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

    def _all_changed(self) -> None:
        if self._ids:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._ids) - 1, len(COLUMNS) - 1))


def _gb(n: int) -> str:
    from engine.hub.fmt import human_bytes

    return human_bytes(n)


def _fit_text(fit: Any) -> str:
    """The verdict, and the longest document that fits when it is shorter than the model's context."""
    if fit.longest and fit.max_context and fit.longest < fit.max_context:
        return f"{fit.verdict} · up to {fit.longest:,}"
    return fit.verdict


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
