"""``lacuna-cli models fit MODEL --context N --hole N [--card GB]``: the verdict for that work and
the longest document that fits, per precision and device (issue 19)."""
from __future__ import annotations

import argparse
import json

import pytest

from lacuna.engine.hub import cli, fit

GIB = 1 << 30


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="lacuna-cli")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    args = parser.parse_args(list(argv))
    return args.func(args)


def _row(out: str, precision: str) -> str:
    return next(line.strip() for line in out.splitlines() if line.strip().startswith(f"{precision}:"))


def test_an_8_gb_card_and_a_full_context_document(hub, capsys):
    """The issue's case: LLaDA-8B in 4-bit on an 8 GB card was "fits (6.2)" for 512 tokens."""
    assert run("models", "fit", "llada-8b-instruct", "--card", "8", "--hole", "32") == 0
    out = capsys.readouterr().out
    assert "cuda:0: a simulated 8 GiB card" in out
    assert "llada-8b-instruct: bf16: won't fit" in out and "int4: won't fit" in out
    assert "a 4,096-token document (the whole context) with 32 masked tokens, dual cache" in out
    int4 = _row(out, "int4")
    assert "cache 2.1 GB" in int4 and "fits with the context cache off" in int4
    longest = int(int4.split("longest document that fits: ")[1].split(" tokens")[0].replace(",", ""))
    assert 512 < longest < 4096

    assert run("models", "fit", "llada-8b-instruct", "--card", "8", "--hole", "32", "--context", str(longest)) == 0
    assert _row(capsys.readouterr().out, "int4").startswith("int4: fits")


def test_a_large_hole_on_dream(hub, capsys):
    assert run("models", "fit", "dream-7b-instruct", "--card", "16", "--hole", "1400") == 0
    out = capsys.readouterr().out
    assert "a 2,048-token document (the whole context) with 1,400 masked tokens" in out
    bf16 = _row(out, "bf16")
    assert bf16.startswith("bf16: won't fit") and "sampler 3.4 GB" in bf16 and "longest document that fits: none" in bf16
    assert run("models", "fit", "dream-7b-instruct", "--card", "24", "--hole", "1400", "--cache", "none") == 0
    out = capsys.readouterr().out
    assert "no cache" in out and _row(out, "bf16").startswith("bf16: fits")


def test_every_device_gets_its_longest_document(hub, capsys, monkeypatch):
    gpu = fit.Device("cuda", 0, "test GPU", 12 * GIB, 11 * GIB, True)
    cpu = fit.Device("cpu", 0, "test CPU", 64 * GIB, 60 * GIB, True)
    monkeypatch.setattr(fit, "detect_devices", lambda: [gpu, cpu])
    monkeypatch.setattr(fit, "bitsandbytes_available", lambda: True)
    assert run("models", "fit", "llada-8b-instruct", "--context", "2000", "--hole", "100", "--context-tokens",
               "1500") == 0
    out = capsys.readouterr().out
    assert out.count("a 1,500-token document (the whole context) with 100 masked tokens") == 2
    assert "on cuda:0" in out and "on cpu" in out
    assert run("models", "fit", "llada-8b-instruct", "--hole", "100", "--candidates", "2", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["work"]["candidates"] == 2 and set(data["per_device"]["llada-8b-instruct"]) == {"cuda:0", "cpu"}
    on_cpu = {f["precision"]: f for f in data["per_device"]["llada-8b-instruct"]["cpu"]}
    assert on_cpu["bf16"]["verdict"] == "fits" and on_cpu["bf16"]["longest"] == 4096
    assert on_cpu["bf16"]["estimate"]["sampler"] == 100 * 126464 * fit.sampler_bytes(True, 2)
    assert data["models"]["llada-8b-instruct"][0]["device"] == "cuda:0"


@pytest.mark.parametrize("args, says", [
    (("--hole", "0"), "--hole must be a positive number of tokens"),
    (("--context", "-5"), "--context must be a positive number of tokens"),
    (("--card", "0"), "--card must be a size in GB"),
    (("--candidates", "0"), "--candidates must be 1 or more"),
])
def test_bad_numbers_are_one_sentence(hub, capsys, args, says):
    assert run("models", "fit", "llada-8b-instruct", *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and "Traceback" not in err


def test_the_longest_document_keeps_the_requested_hole_when_it_exceeds_the_context():
    """A reviewer's case: --card 24 --hole 3000 --context 512 said the whole 4,096-token context
    fits, while the same hole at --context 4096 is tight with no document that fits."""
    from lacuna.engine.hub.fit import Device, fit_model

    card = [Device("cuda", 0, "a simulated 24 GiB card", 24 << 30, 24 << 30, True)]
    short = {f.precision: f for f in fit_model("llada-8b-instruct", card, context=512, hole=3000)}
    full = {f.precision: f for f in fit_model("llada-8b-instruct", card, context=4096, hole=3000)}
    assert short["bf16"].longest == full["bf16"].longest
