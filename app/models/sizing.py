"""What the Model manager shows beside each model, computed on a worker thread: the fit verdicts on
this machine and on a GPU card size the user picks, the download size, the expected seconds per fill
on this machine's CPU, and the best model for this machine (engine.hub.advice).

Two phases, each handed over as one frozen :class:`Sizing`: the verdicts first (offline, quick), then
the speeds, which need this machine's measured FLOP/s (the first time ever, the bundled starter is
timed: about a second, engine.hub.speed_estimate.calibrate).
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)

CARD_SIZES = (8, 12, 16, 24, 48, 80)  # GB: the common GPU memory sizes the window offers


@dataclass(frozen=True)
class RowFacts:
    """One model's facts beside its verdicts."""

    description: str = ""
    size: int | None = None          # bytes to download (0: bundled; None: unknown)
    size_estimated: bool = False     # parameters x bytes of the dtype, not the Hub's listing
    seconds: tuple[tuple[str, float], ...] = ()  # (precision, expected seconds per fill on this CPU)

    def seconds_for(self, precision: str) -> float | None:
        return dict(self.seconds).get(precision)


@dataclass(frozen=True)
class Sizing:
    """Everything one pass computed, for the GUI thread."""

    devices: tuple = ()                       # fit.Device, best first
    fits: tuple = ()                          # (id, tuple of Fit) on devices[0]
    card: Any = None                          # the simulated card's fit.Device, or None
    card_fits: tuple = ()                     # (id, tuple of Fit) on the card
    facts: tuple = ()                         # (id, RowFacts)
    rate: float | None = None                 # this machine's FLOP/s (None: not measured yet)
    best: Any = None                          # engine.hub.advice.Advice for this machine, or None
    card_best: Any = None                     # the same for the card
    work: Any = None                          # the engine.hub.advice.Work all of it is for
    timed: bool = False                       # the speeds phase has run


class FitWorker(QObject):
    """Runs one sizing pass: ``fitted`` with the verdicts, then ``done`` with the speeds as well."""

    fitted = Signal(object)  # Sizing without speeds
    done = Signal(object)    # Sizing, complete (or empty after a failure)

    def __init__(self, names: tuple[str, ...], devices: Any = None, work: Any = None, card_gb: float | None = None,
                 rate: float | None = None) -> None:
        super().__init__()
        self._names = names
        self._devices = devices
        self._work = work          # app.models.document.DocumentWork, or None: a typical fill
        self._card_gb = card_gb
        self._rate = rate          # injected (tests); None: this machine's, measured if need be

    @Slot()
    def run(self) -> None:
        try:
            sizing = self._verdicts()
        except Exception:  # noqa: BLE001 - a worker must always report back
            log.error("fit check failed:\n%s", traceback.format_exc())
            self.done.emit(Sizing())
            return
        self.fitted.emit(sizing)
        try:
            sizing = self._speeds(sizing)
        except Exception:  # noqa: BLE001
            log.error("speed estimate failed:\n%s", traceback.format_exc())
        self.done.emit(sizing)

    def _verdicts(self) -> Sizing:
        from lacuna.engine.hub import advice, catalog, fit

        devices = tuple(self._devices) if self._devices is not None else tuple(fit.detect_devices())
        work = self._work.advice_work() if self._work is not None else advice.TYPICAL
        kwargs = work.fit_kwargs()
        card = advice.card(self._card_gb) if self._card_gb else None
        fits, card_fits, facts = [], [], []
        for name in self._names:
            fits.append((name, tuple(fit.fit_model(name, [devices[0]], **kwargs))))
            if card is not None:
                card_fits.append((name, tuple(fit.fit_model(name, [card], **kwargs))))
            entry = catalog.catalog_entry(name)
            if entry is not None:
                size, estimated = advice.download_size(entry)
                facts.append((name, RowFacts(str(entry.get("description") or ""), size, estimated)))
        return Sizing(devices, tuple(fits), card, tuple(card_fits), tuple(facts), work=work)

    def _speeds(self, sizing: Sizing) -> Sizing:
        from lacuna.engine.hub import advice, catalog

        rate = self._rate if self._rate is not None else advice.machine_rate()
        cpu = next((d for d in sizing.devices if d.kind == "cpu"), None)
        facts = []
        for name, row in sizing.facts:
            entry = catalog.catalog_entry(name)
            seconds = []
            if entry is not None and cpu is not None:
                for precision in ("bf16" if cpu.bf16 else "fp32", "int8", "int4"):
                    value = advice.fill_seconds(entry, rate, sizing.work, precision, cpu)
                    if value is not None:
                        seconds.append((precision, value))
            facts.append((name, replace(row, seconds=tuple(seconds))))
        ids = set(self._names)
        entries = [e for e in catalog.entries() if e["id"] in ids]
        best = advice.recommend(list(sizing.devices), rate, work=sizing.work, entries=entries)
        card_best = (advice.recommend([sizing.card], rate, work=sizing.work, entries=entries)
                     if sizing.card is not None else None)
        return replace(sizing, facts=tuple(facts), rate=rate, best=best, card_best=card_best, timed=True)

