"""A tiny random LLaDA fills spans through the public API and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lacuna.engine import InfillRequest, Span, infill, load_model

ROOT = Path(__file__).resolve().parents[2]


def test_api_fills_spans_and_keeps_the_rest(tiny_llada_dir):
    model = load_model(str(tiny_llada_dir), device="cpu", dtype="float32")
    text = "The quick brown fox jumps over the lazy dog."
    request = InfillRequest(text=text, spans=(Span(4, 9), Span(44, 44, length=5)), steps=6, seed=1)
    result = infill(model, request)
    assert result.nfe >= 1 and len(result.spans) == 2
    assert result.text.startswith("The ") and result.text[result.spans[0].end :].startswith(" brown fox")
    again = infill(model, request)
    assert again.text == result.text  # seeded: the same fill


@pytest.mark.parametrize("quant", [None, "nf4"])
def test_cli_infill_with_a_native_model(tiny_llada_dir, quant):
    if quant:
        pytest.importorskip("bitsandbytes")
    args = [sys.executable, "-m", "lacuna.engine.cli", "infill", "--model", str(tiny_llada_dir), "--json",
            "--device", "cpu", "The quick [[4]] fox jumps over the [[lazy]] dog."]
    if quant:
        args[4:4] = ["--quant", quant]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    data = json.loads(out.stdout)
    assert data["text"].startswith("The quick ") and data["text"].endswith(" dog.")
    assert len(data["spans"]) == 2 and data["nfe"] >= 1


def test_cli_refuses_an_unknown_quantization():
    out = subprocess.run([sys.executable, "-m", "lacuna.engine.cli", "infill", "--quant", "int3", "a [[2]] b"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "invalid choice: 'int3'" in out.stderr
