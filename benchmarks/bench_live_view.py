"""Benchmark: a run with the live view open vs the same run headless.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.bench_live_view [MODEL] [--repeats N] [--threads T]

MODEL: a catalog id, HF repo id or folder (default: the starter when present,
else a tiny random ModernBERT built on the spot). Prints the median time of the
engine alone (stream_infill consumed in a plain thread) and of the same request
run by the window (live preview, chart, coalesced frames), and their ratio.
Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.app.fakes import STARTER, StallProbe

TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep. And God said, Let there be light: and there was light. "
        "And God saw the light, that it was good: and God divided the light from the darkness. ") * 2


def _random_modernbert(out: Path, size: str) -> Path:
    from tests.support.tiny import build_tiny_modernbert

    if size == "tiny":
        return build_tiny_modernbert(out)
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    from tests.support import tiny

    tok = tiny._bpe_tokenizer()
    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=len(tok), hidden_size=384, intermediate_size=1152, num_hidden_layers=6,
        num_attention_heads=6, max_position_embeddings=512, global_attn_every_n_layers=3,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
        cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
    )
    ModernBertForMaskedLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--live-threads", type=int, default=0,
                    help="torch threads during the live runs (0: same as headless)")
    ap.add_argument("--probe", action="store_true",
                    help="also run a 5 ms QTimer probe for event-loop stalls (it costs GIL hand-overs)")
    ap.add_argument("--switch", type=float, default=0.0, help="sys.setswitchinterval for the live runs (0: keep)")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--size", choices=("tiny", "small"), default="small",
                    help="without MODEL and without the starter: a random ModernBERT, tiny (2x32) or "
                         "small (6 layers x 384, ~11M parameters, like the fast end of real models)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    h_threads = torch.get_num_threads()
    default_switch = sys.getswitchinterval()
    from lacuna.engine import InfillRequest, Span, load_model, stream_infill

    spec = args.model or ("starter" if STARTER.is_file() else str(_random_modernbert(Path(tempfile.mkdtemp()), args.size)))
    model = load_model(spec)
    i = TEXT.index("heaven")
    j = TEXT.index("darkness")
    spans = (Span(i, i + 6, 6), Span(j, j + 8, 6), Span(TEXT.index("light"), TEXT.index("light"), args.tokens))
    req = InfillRequest(TEXT, spans, steps=args.steps, seed=1)

    def headless() -> float:
        out = []

        def go():
            t = time.perf_counter()
            for ev in stream_infill(model, req, cancel=threading.Event()):
                pass
            out.append(time.perf_counter() - t)
            engine_h.append(ev.result.seconds)

        th = threading.Thread(target=go)
        th.start()
        th.join()
        return out[0]

    engine_h: list[float] = []
    headless()  # warm up
    engine_h.clear()
    h: list[float] = []

    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())  # leave the user's alone
    from lacuna.app.main import build_window

    w = build_window(stream=stream_infill, loader=lambda s: model, autoload=False)
    w.show()
    loop = QEventLoop()
    w.modelReady.connect(loop.quit)
    w.models.load_model(spec)
    loop.exec()
    w.editor.setPlainText(TEXT)
    for s in spans:
        w.editor.add_mask(s.start, s.end, length=s.length)
    w.settings_panel.random_seed.setChecked(False)
    w.settings_panel.seed.setValue(1)
    w.settings_panel.steps.setValue(args.steps)
    live, frames, engine_l, gui_cpu = [], [], [], []
    probe = StallProbe()
    gaps = probe.gaps
    w.runFinished.connect(loop.quit)
    for k in range(args.repeats + 1):
        if k:  # alternate with the headless runs so both see the same machine load
            h.append(headless())
        f0 = w.infill.frames
        t = time.perf_counter()
        if args.probe:
            probe.start()
        if args.live_threads:
            torch.set_num_threads(args.live_threads)
        if args.switch:
            sys.setswitchinterval(args.switch)
        w.infill.start()
        c0 = time.thread_time()
        loop.exec()
        gui_cpu.append(time.thread_time() - c0)
        probe.stop()
        torch.set_num_threads(args.threads or h_threads)
        sys.setswitchinterval(default_switch)
        if k:  # the first is a warm-up
            live.append(time.perf_counter() - t)
            frames.append(w.infill.frames - f0)
            engine_l.append(w.infill.current.result.seconds)
        w.infill.reject()
    w.editor.document().setModified(False)
    w.close()
    mh, ml = statistics.median(h), statistics.median(live)
    print(f"model {model.name} on {model.device}, torch threads {h_threads} headless, {args.live_threads or h_threads} live, "
          f"{sum(s.length for s in spans)} tokens, {args.steps} steps, {args.repeats} repeats")
    print(f"headless  median {mh * 1000:.0f} ms  (best {min(h) * 1000:.0f})")
    print(f"live view median {ml * 1000:.0f} ms  (best {min(live) * 1000:.0f}), "
          f"frames per run {statistics.median(frames):.0f}")
    print(f"GUI thread CPU per live run: median {statistics.median(gui_cpu[1:]) * 1000:.0f} ms")
    print(f"engine time (result.seconds): headless median {statistics.median(engine_h) * 1000:.0f} ms, "
          f"live median {statistics.median(engine_l) * 1000:.0f} ms, "
          f"ratio {statistics.median(engine_l) / statistics.median(engine_h):.3f}")
    print(f"wall ratio live/headless (includes GUI start/finish): median {ml / mh:.3f}, best-of {min(live) / min(h):.3f}; worst event-loop stall "
          f"{f'{max(gaps) * 1000:.1f} ms' if gaps else '(run with --probe)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
