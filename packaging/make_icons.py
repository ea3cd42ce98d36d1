"""Render the application icon from its one source, resources/icons/lacuna.svg.

Writes PNGs at the freedesktop hicolor sizes, a Windows .ico and a macOS .icns
into OUT (default packaging/build/icons). Qt's SVG renderer draws the PNGs (it
is what draws the icon in the running app, so they match); Pillow packs the
.ico and .icns, whose multi-size containers Qt does not write.

    python packaging/make_icons.py [OUT]
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "resources" / "icons" / "lacuna.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render_pngs(out: Path, sizes=SIZES) -> dict[int, Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - QPainter needs one
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {SOURCE} is not a valid SVG")
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = out / f"lacuna-{size}.png"
        if not image.save(str(path)):
            raise SystemExit(f"make_icons: cannot write {path}")
        written[size] = path
    return written


def pack_containers(pngs: dict[int, Path], out: Path) -> tuple[Path, Path]:
    from PIL import Image

    largest = Image.open(pngs[max(pngs)]).convert("RGBA")
    ico = out / "lacuna.ico"
    largest.save(ico, sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256) if s in pngs])
    icns = out / "lacuna.icns"
    largest.save(icns)
    return ico, icns


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else ROOT / "packaging" / "build" / "icons"
    pngs = render_pngs(out)
    ico, icns = pack_containers(pngs, out)
    print(f"icons: {len(pngs)} PNGs, {ico.name}, {icns.name} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
