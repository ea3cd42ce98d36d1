"""Regenerate tests/reference/llada_moe_small.safetensors: upstream LLaDA-MoE logits on seeded weights.

Needs a scratch venv with transformers 4.46.2 (the checkpoints' code imports
only APIs present there) and upstream's modelling files (modeling_lladamoe.py
and configuration_lladamoe.py as shipped with inclusionAI/LLaDA-MoE-7B-A1B;
public copies: InfiniTensor/InfiniLM@0a7e522 at the repository root, and
ZHZisZZ/dllm dllm/pipelines/llada/models/ with renamed classes) plus an empty
__init__.py, in a package folder named ``lladamoe_upstream`` OUTSIDE this
repository, never committed:

    python -m venv --system-site-packages /work/scratch/dream/venv
    /work/scratch/dream/venv/bin/pip install transformers==4.46.2
    PYTHONPATH=$PWD /work/scratch/dream/venv/bin/python \
        tests/reference/make_llada_moe_reference.py /path/to/folder/holding/lladamoe_upstream

Two configs: ``released`` has the 7B-A1B model's structure at a small size
(every layer a mixture, q/k norms, full rotary, no shared expert, no expert
bias); ``variants`` switches on every other path upstream's code has (a dense
layer, a shared expert, a router expert bias, partial rotary, grouped-query
attention, attention biases, q/k/v clipping). Upstream runs with SDPA (its
default) and eager attention; the stored logits are SDPA's.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from lacuna.engine.models.llada_moe import LLaDAMoEConfig, LLaDAMoENetwork  # noqa: E402
from tests.reference.recipe import seeded_state_dict  # noqa: E402

OUT = HERE / "llada_moe_small.safetensors"
SEED = 2718
CONFIGS = {
    "released": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        dense_intermediate_size=128, expert_intermediate_size=32, shared_expert_intermediate_size=None,
        num_experts=8, num_experts_per_tok=3, moe_layer_freq=[1, 1], vocab_size=128,
        max_position_embeddings=256, rope_theta=50000.0, partial_rotary_factor=1.0, rms_norm_eps=1e-5,
        qk_layernorm=True, attention_bias=False, clip_qkv=None, moe_router_enable_expert_bias=False,
        mask_token_id=126, pad_token_id=0, eos_token_id=1,
    ),
    "variants": dict(
        hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        dense_intermediate_size=96, expert_intermediate_size=32, shared_expert_intermediate_size=48,
        num_experts=8, num_experts_per_tok=2, moe_layer_freq=[0, 1, 1], vocab_size=128,
        max_position_embeddings=256, rope_theta=50000.0, partial_rotary_factor=0.5, rms_norm_eps=1e-5,
        qk_layernorm=True, attention_bias=True, clip_qkv=1.0, moe_router_enable_expert_bias=True,
        mask_token_id=126, pad_token_id=0, eos_token_id=1,
    ),
}


def inputs() -> torch.Tensor:
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, 128, (2, 32), generator=gen)
    ids[0, 6:14] = 126  # a masked span, as in infilling
    ids[1, 20:] = 126
    return ids


def shapes(config: dict) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        net = LLaDAMoENetwork(LLaDAMoEConfig.from_config(config))
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def upstream_logits(package, config: dict, state: dict, ids: torch.Tensor, attn: str) -> torch.Tensor:
    full = LLaDAMoEConfig.from_config(config).to_config()
    cfg = package.configuration_lladamoe.LLaDAConfig(**full)
    cfg._attn_implementation = attn
    ref = package.modeling_lladamoe.LLaDAMoEModelLM(cfg).float().eval()
    ref.load_state_dict(state, strict=True)
    with torch.no_grad():
        return ref(ids).logits.float().contiguous()


def main(upstream_parent: str) -> None:
    sys.path.insert(0, upstream_parent)
    package = importlib.import_module("lladamoe_upstream")
    importlib.import_module("lladamoe_upstream.configuration_lladamoe")
    importlib.import_module("lladamoe_upstream.modeling_lladamoe")
    ids = inputs()
    tensors = {"input_ids": ids}
    for name, config in CONFIGS.items():
        state = seeded_state_dict(shapes(config), SEED)
        sdpa = upstream_logits(package, config, state, ids, "sdpa")
        eager = upstream_logits(package, config, state, ids, "eager")
        ours = LLaDAMoENetwork(LLaDAMoEConfig.from_config(config)).float().eval()
        ours.load_state_dict(state, strict=True)
        with torch.no_grad():
            mine = ours(ids)
        tensors[f"logits_{name}"] = sdpa
        print(f"{name}: logits {tuple(sdpa.shape)}, max |logit| {sdpa.abs().max():.3f}; "
              f"max |ours - upstream sdpa| = {(mine - sdpa).abs().max().item():.3e}, "
              f"max |ours - upstream eager| = {(mine - eager).abs().max().item():.3e} (float32)")
    import transformers

    meta = {
        "configs": json.dumps(CONFIGS, sort_keys=True),
        "seed": str(SEED),
        "upstream": "modeling_lladamoe.py of inclusionAI/LLaDA-MoE-7B-A1B via InfiniTensor/InfiniLM@0a7e522 (SDPA)",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    save_file(tensors, str(OUT), metadata=meta)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
