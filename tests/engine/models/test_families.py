"""One record per native family: the loader, the fit check, the catalog and the app agree on every config."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.hub import catalog, fit
from lacuna.engine.models import families, loader
from lacuna.engine.models.configs import ModelConfig

# Configs on which the three detectors of before the registry disagreed:
# the catalog looked for "num_experts", the loader for any of the experts' keys,
# the fit check took every model_type "llada" for dense LLaDA and ignored the
# architecture; the catalog never recognised SEDD's hydra config.
MOE_WITHOUT_NUM_EXPERTS = {
    "model_type": "llada", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "expert_intermediate_size": 16, "moe_layer_freq": [1, 1], "vocab_size": 64,
}
LLADA_BY_ARCHITECTURE = {
    "architectures": ["LLaDAModelLM"], "d_model": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 128,
    "mlp_hidden_size": 96, "mask_token_id": 127,
}
# A dense LLaDA config written by a tool that lists every field, the experts' ones null (review of issue 22)
DENSE_WITH_NULL_EXPERT_KEYS = {**LLADA_BY_ARCHITECTURE, "model_type": "llada", "num_experts": None,
                               "moe_layer_freq": None}
SEDD = {"tokens": 50257, "model": {"hidden_size": 64, "n_heads": 4, "n_blocks": 2, "cond_dim": 16},
        "graph": {"type": "absorb"}, "noise": {"type": "loglinear"}}


@pytest.mark.parametrize("config, family", [
    (MOE_WITHOUT_NUM_EXPERTS, "llada_moe"),
    (LLADA_BY_ARCHITECTURE, "llada"),
    (DENSE_WITH_NULL_EXPERT_KEYS, "llada"),
    (SEDD, "sedd"),
])
def test_configs_the_old_detectors_disagreed_on_get_one_family_everywhere(config, family):
    assert families.detect(config).name == family
    assert catalog.family_from_config(config) == family
    assert loader.native_family(config).__name__ == f"lacuna.engine.models.{family}"
    split = fit.family_split(config)
    assert split is None or split[0] == family
    # with the one key the fit check lacked, it counts the same family exactly
    complete = {**config, "num_experts": 8} if family == "llada_moe" else config
    if families.BY_NAME[family].config_class is not None:
        assert fit.family_split(complete)[0] == family
        assert fit.shape_from_config(complete).family == family
    else:
        assert split is None  # the DiT families are sized from their DiTShape, not a ModelConfig


def test_llada_moe_is_tried_before_llada_and_every_record_loads():
    names = [f.name for f in families.FAMILIES]
    assert names.index("llada_moe") < names.index("llada")
    for family in families.FAMILIES:
        assert callable(family.load_module().load)
        config_type = family.config_type()
        assert config_type is None or issubclass(config_type, ModelConfig)


def test_the_masked_lm_families_and_other_configs():
    assert families.family_name({"model_type": "RoBERTa"}) == "bert"
    assert families.family_name({"model_type": "modernbert"}) == "modernbert"
    assert families.family_name({"model_type": "gpt2"}) == "gpt2"
    assert families.family_name({}) == "unknown" and families.family_name([1]) == "unknown"
    assert families.family_name({"model_type": "sedd"}) == "unknown"  # no sections: nothing could load it
    assert families.detect({"model_type": "llada_v"}) is None  # a name that merely contains a family's
    assert catalog.LOADABLE_FAMILIES == {"bert", "modernbert", *families.BY_NAME}


def test_quantised_layers_are_the_blocks_linears_only():
    llada, dream, moe = (families.BY_NAME[n] for n in ("llada", "dream", "llada_moe"))
    assert llada.quantizes("model.transformer.blocks.3.ff_out")
    assert not llada.quantizes("model.transformer.ff_out")  # the head stays 16-bit
    assert dream.quantizes("model.layers.0.self_attn.q_proj") and not dream.quantizes("lm_head")
    assert moe.quantizes("model.layers.2.mlp.experts.7.down_proj") and not moe.quantizes("model.layers.2.mlp.gate")
    assert fit.QUANT_FAMILIES == ("llada_moe", "llada", "dreamon", "dream")
    assert fit.FAMILY_CONTEXT == {"dreamon": 2048, "dream": 2048}


_KEYS = st.dictionaries(
    st.sampled_from(["model_type", "architectures", "num_experts", "moe_layer_freq", "expert_intermediate_size",
                     "d_model", "hidden_size", "model", "graph"]),
    st.one_of(st.sampled_from(["llada", "LLaDA", "lladamoe", "Dream", "mdlm", "sedd", "bert", "", "qwen2"]),
              st.lists(st.sampled_from(["LLaDAModelLM", "LLaDAMoEModelLM", "DreamModel", "BertForMaskedLM"]),
                       max_size=2),
              st.integers(1, 8), st.fixed_dictionaries({"hidden_size": st.integers(1, 8)})),
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(_KEYS)
def test_every_reader_of_a_config_names_the_registry_family(config):
    native = families.detect(config)
    name = catalog.family_from_config(config)
    module = loader.native_family(config)
    if native is None:
        assert module is None and name not in families.BY_NAME
    else:
        assert name == native.name and module.__name__ == f"lacuna.engine.models.{native.module}"
    split = fit.family_split(config)
    assert split is None or split[0] == name


def test_the_app_reads_the_registry(tmp_path):
    pytest.importorskip("PySide6")
    from lacuna.app.workers.model import refusal_reason

    folder = tmp_path / "moe"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(MOE_WITHOUT_NUM_EXPERTS))
    (folder / "tokenizer.json").write_text("{}")
    assert refusal_reason(str(folder)) is None
    (folder / "config.json").write_text(json.dumps({"model_type": "llada_v"}))
    assert "cannot run" in refusal_reason(str(folder))
    (folder / "config.json").write_text("[1, 2]")
    assert refusal_reason(str(folder)) == "its config.json is not a JSON object"
