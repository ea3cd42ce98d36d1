"""``lacuna --self-test``: prove an installation works without a display.

Loads the bundled starter, runs one infill headlessly and prints the result
with the versions a bug report needs. Used by packaging/build.py on the
frozen bundle and by the wheel test; no Qt widget is created.
"""
from __future__ import annotations

import platform
import sys
import time

TEXT = "In the beginning God created the heaven and the earth."
WORD = "heaven"


def versions() -> dict[str, str]:
    """The versions of Lacuna and of what it runs on (imports torch and transformers)."""
    import PySide6
    import torch
    import transformers
    from PySide6.QtCore import qVersion

    from lacuna import engine

    return {
        "lacuna": engine.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "qt": f"{qVersion()} (PySide6 {PySide6.__version__})",
        "platform": platform.platform(terse=True),
    }


def run(out=sys.stdout) -> int:
    """Exit status 0 when the starter loads and fills a span, 1 otherwise (one line on stderr)."""
    from lacuna.engine import InfillRequest, LacunaError, Span, infill, load_model

    t0 = time.perf_counter()
    try:
        info = versions()
        model = load_model("starter")
        loaded = time.perf_counter() - t0
        start = TEXT.index(WORD)
        result = infill(model, InfillRequest(TEXT, (Span(start, start + len(WORD)),), steps=4))
    except (LacunaError, ImportError, OSError) as exc:
        print(f"lacuna: self-test failed: {exc}", file=sys.stderr)
        return 1
    for key, value in info.items():
        print(f"{key}: {value}", file=out)
    print(f"device: {model.device.type} ({str(model.dtype).removeprefix('torch.')})", file=out)
    print(f"model: {model.name} ({model.family}) loaded in {loaded:.2f} s", file=out)
    print(f"input:  {TEXT[:start]}[[{WORD}]]{TEXT[start + len(WORD):]}", file=out)
    print(f"output: {result.text}", file=out)
    print(f"self-test passed: {result.nfe} NFE in {result.seconds:.3f} s", file=out)
    return 0
