"""The Model manager's sentences: this machine, the best model for it, and the selected model."""
from __future__ import annotations

from html import escape
from typing import Any


def devices_text(sizing: Any) -> str:
    """The devices, and this machine's measured speed once known."""
    from lacuna.engine.hub.fmt import human_bytes

    text = "   ".join(f"{d.label}: {d.name}, {human_bytes(d.available)} free of {human_bytes(d.total)}"
                      for d in sizing.devices)
    if sizing.rate:
        text += (f"   ·   speed: {sizing.rate / 1e9:.0f} GFLOP/s "
                 "(the bundled starter's fill, timed once on this machine)")
    elif not sizing.timed:
        text += "   ·   measuring this machine's speed…"
    return text


def best_text(sizing: Any) -> str:
    """★ the best model for this machine and why; the best for the picked card."""
    from lacuna.engine.hub.advice import TYPICAL

    if not sizing.timed:
        return "Finding the best model for this machine…"
    best = sizing.best
    if best is None:
        return "No model in the catalog fits this machine."
    if best.bundled and best.alternative is not None:
        lines = [f"★ {best.alternative.name} is the quickest model that writes here. {best.reason}"]
    else:
        lines = [f"★ Best for this machine: {best.reason}"]
    if sizing.card_best is not None:
        lines.append(f"On {sizing.card.name}: {sizing.card_best.reason}")
    elif sizing.card is not None:
        lines.append(f"On {sizing.card.name}: no model in the catalog fits.")
    if sizing.work is not None and sizing.work != TYPICAL:
        lines.append("(for the open document's fill; with no document open, for a sentence)")
    return "\n".join(lines)


def details_text(manager: Any, info: Any) -> str:
    """The selected model: what it is, its download, its verdicts and its speed (rich text)."""
    from lacuna.engine.hub.advice import PRECISION_LABEL, seconds_text, size_text

    facts = manager.facts(info.id)
    parts = [f"<b>{escape(info.name)}</b>"]
    if facts.description:
        parts.append(escape(facts.description))
    if info.size:
        from lacuna.engine.hub.fmt import human_bytes

        size = human_bytes(info.size) + (" on disk" if info.status in ("installed", "bundled", "local") else "")
    else:
        size = size_text(facts.size, facts.size_estimated)
        if facts.size_estimated:
            size += " (estimated from its parameters)"
    parts.append(f"Download: {escape(size)}.")
    verdicts = _verdicts(manager.fits(info.id), PRECISION_LABEL)
    if verdicts:
        where = manager.devices()[0].label if manager.devices() else "this machine"
        parts.append(f"On {escape(where)}: {escape(verdicts)}.")
    card = _verdicts(manager.card_fits(info.id), PRECISION_LABEL)
    if card and manager.sizing().card is not None:
        parts.append(f"On {escape(manager.sizing().card.name)}: {escape(card)}.")
    if facts.seconds:
        precision, seconds = facts.seconds[0]
        parts.append(f"About {escape(seconds_text(seconds))} per fill on this machine's CPU in "
                     f"{escape(PRECISION_LABEL.get(precision, precision))} (estimated).")
    return " ".join(parts)


def _verdicts(fits: tuple, labels: dict[str, str]) -> str:
    return " · ".join(f"{labels.get(f.precision, f.precision)} {f.verdict}" for f in fits if f.verdict != "n/a")
