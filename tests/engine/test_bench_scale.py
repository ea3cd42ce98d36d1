"""`lacuna-cli bench --scale FAMILY` for every native transformer family, with its logit shift.

The reference shapes are checked on the meta device (no memory): each family's
network has exactly the parameter count the catalog gives its reference model.
The run itself is checked on the same code path at toy widths (the reference
config's classmethod is narrowed), so a 1-layer real-width run is left to the
benchmark itself."""
from __future__ import annotations

import json

import pytest
import torch

from lacuna.engine.bench.native import BENCH_FAMILIES, bench_network
from lacuna.engine.cli import main
from lacuna.engine.hub.catalog import catalog_entry

REFERENCE_ENTRY = {"llada": "llada-8b-instruct", "dream": "dream-7b-instruct", "llada_moe": "llada-moe-7b-a1b-instruct"}
TOY = {
    "llada": {"d_model": 32, "n_heads": 4, "n_kv_heads": 4, "mlp_hidden_size": 64, "vocab_size": 96,
              "embedding_size": 96, "mask_token_id": 95},
    "dream": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "vocab_size": 96, "mask_token_id": 95, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0},
    "llada_moe": {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 4, "dense_intermediate_size": 64,
                  "expert_intermediate_size": 16, "num_experts": 4, "num_experts_per_tok": 2, "vocab_size": 96,
                  "mask_token_id": 95},
}


@pytest.mark.parametrize("family", sorted(BENCH_FAMILIES))
def test_reference_shapes_have_the_catalogs_parameter_count(family):
    net, shift = bench_network(family, None, torch.device("meta"), torch.bfloat16)
    assert sum(p.numel() for p in net.parameters()) == catalog_entry(REFERENCE_ENTRY[family])["parameters"]
    assert shift == (1 if family == "dream" else 0)


@pytest.mark.parametrize("family", sorted(BENCH_FAMILIES))
def test_bench_scale_runs_every_family_through_its_logit_shift(family, monkeypatch, capsys):
    import importlib

    module_name, config_class, reference = BENCH_FAMILIES[family][:3]
    cls = getattr(importlib.import_module(module_name), config_class)
    real = getattr(cls, reference)
    monkeypatch.setattr(cls, reference, classmethod(lambda c, **kw: real(**{**TOY[family], **kw})))
    from lacuna.engine.models import native

    shifts = []
    original = native.NativeAdapter.__init__

    def spy(self, *args, **kwargs):
        shifts.append(kwargs.get("logit_shift"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(native.NativeAdapter, "__init__", spy)
    code = main(["bench", "--scale", family, "--layers", "1", "--precisions", "fp32", "--scale-steps", "4",
                 "--measure-steps", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out[out.index("{"):])
    assert report["family"] == family and report["logit_shift"] == shifts[0] == BENCH_FAMILIES[family][5]
    assert report["rows"] and report["rows"][0]["tokens_per_s"] > 0


def test_a_family_without_reference_shapes_is_one_line(capsys):
    code = main(["bench", "--scale", "mdlm"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "llada" in err and "dream" in err


def test_bench_fit_runs_the_fit_bench(monkeypatch):
    from lacuna.engine.bench import fit as bench_fit

    seen = []
    monkeypatch.setattr(bench_fit, "main", lambda argv: seen.append(argv) or 0)
    assert main(["bench", "fit", "--json"]) == 0 and seen == [["--json"]]
