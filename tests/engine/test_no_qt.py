import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_never_imports_qt(tiny_model_dir):
    script = textwrap.dedent(f"""
        import sys
        from lacuna import engine
        from lacuna.engine import load_model, infill, InfillRequest, Span
        from lacuna.engine import cli, bench, markup, canvas, sampler, select, schedules
        model = load_model({str(tiny_model_dir)!r}, device="cpu")
        infill(model, InfillRequest(text="the heaven and the earth", spans=[Span(4, 10)], steps=2))
        try:
            import lacuna.engine.hub
            from lacuna import engine
        except ImportError:
            pass
        qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "shiboken6"))
        print(",".join(qt))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_importing_engine_does_not_import_torch():
    script = "import sys, engine; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
