"""The colours of the live view, shared by the editor, preview and legend."""
from __future__ import annotations

from PySide6.QtGui import QColor

MASK_BG = QColor(196, 181, 253, 190)  # violet: a masked span in the editor
MASK_EDGE = QColor(124, 58, 237)
PLACEHOLDER_FG = QColor(139, 92, 246)
PLACEHOLDER_BG = QColor(237, 233, 254)
NEW_TOKEN_EDGE = QColor(37, 99, 235)  # blue underline: committed in the latest step
PLACEHOLDER = "\u2591"  # ░, one per token still masked


def confidence_color(conf: float | None, alpha: int = 150) -> QColor:
    """Red (unsure) -> amber -> green (sure), as a light background tint."""
    if conf is None:
        return QColor(0, 0, 0, 0)
    c = max(0.0, min(1.0, float(conf)))
    color = QColor.fromHsvF(c * 0.33, 0.55, 1.0)
    color.setAlpha(alpha)
    return color


LEGEND_STOPS = (0.0, 0.25, 0.5, 0.75, 1.0)
