"""The CPU's dtype: bf16 where the CPU has native bf16 units (AVX512-BF16 or
AMX), float32 elsewhere, for every family's load path (engine.models.loader
pick_dtype). The CPU's flag set is faked through /proc/cpuinfo."""
from __future__ import annotations

import pathlib

import pytest
import torch

from lacuna.engine import load_model
from lacuna.engine.models import loader
from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd

CPUINFO = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse sse2 avx avx2 fma {extra}\n\n"
FLAG_SETS = {
    "avx2 only": ("", torch.float32),
    "avx512 without bf16": ("avx512f avx512bw avx512vl avx512_vnni", torch.float32),
    "avx512_bf16 (Zen 4, Cooper Lake)": ("avx512f avx512_bf16", torch.bfloat16),
    "amx_bf16 (Sapphire Rapids)": ("avx512f amx_tile amx_bf16 amx_int8", torch.bfloat16),
}


def _fake(monkeypatch, name: str) -> torch.dtype:
    extra, expected = FLAG_SETS[name]
    real = pathlib.Path.read_text

    def read_text(self, *args, **kwargs):
        if str(self) == "/proc/cpuinfo":
            return CPUINFO.format(extra=extra)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    return expected


@pytest.fixture(params=list(FLAG_SETS))
def fake_cpu(request, monkeypatch):
    return _fake(monkeypatch, request.param)


@pytest.fixture(params=["avx512 without bf16", "avx512_bf16 (Zen 4, Cooper Lake)"])
def fake_cpu_pair(request, monkeypatch):
    return _fake(monkeypatch, request.param)


def test_the_cpu_dtype_follows_the_native_bf16_flags(fake_cpu):
    assert loader.pick_dtype(torch.device("cpu")) == fake_cpu
    assert loader.pick_dtype(torch.device("cpu"), "auto") == fake_cpu
    assert loader.pick_dtype(torch.device("cpu"), "float32") == torch.float32, "an explicit dtype wins"


def test_no_cpuinfo_means_float32(monkeypatch):
    def missing(self, *args, **kwargs):
        raise OSError("no such file")

    monkeypatch.setattr(pathlib.Path, "read_text", missing)
    assert loader.pick_dtype(torch.device("cpu")) == torch.float32


@pytest.fixture(scope="module")
def dit_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dit")
    return {"mdlm": build_tiny_mdlm(root / "mdlm", with_tokenizer=True, vocab_size=401),
            "sedd": build_tiny_sedd(root / "sedd", with_tokenizer=True, tokens=400)}


@pytest.mark.parametrize("family", ["llada", "dream", "llada_moe", "mdlm", "sedd", "bert"])
def test_every_family_loads_in_the_chosen_dtype(request, fake_cpu_pair, dit_dirs, family):
    folder = dit_dirs[family] if family in dit_dirs else request.getfixturevalue(f"tiny_{family}_dir")
    model = load_model(str(folder), device="cpu")
    assert model.family == family and model.dtype == fake_cpu_pair
    weights = [p for p in model.network.parameters() if p.is_floating_point()]
    assert {p.dtype for p in weights} == {fake_cpu_pair}
