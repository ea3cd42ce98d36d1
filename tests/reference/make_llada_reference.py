"""Regenerate tests/reference/llada_small.safetensors: upstream LLaDA logits on seeded weights.

Needs a scratch venv with the transformers version upstream pins (4.38.2) plus
einops, and upstream's modelling files (configuration_llada.py,
modeling_llada.py as vendored in NVlabs/Fast-dLLM llada/model/) in a folder
OUTSIDE this repository, never committed:

    python -m venv --system-site-packages /work/scratch/families/venv
    /work/scratch/families/venv/bin/pip install transformers==4.38.2 einops
    PYTHONPATH=$PWD /work/scratch/families/venv/bin/python \
        tests/reference/make_llada_reference.py /path/to/folder/holding/llada_model

The reference file stores the config, the seed, the inputs and upstream's
float32 logits; tests/engine/models/test_reference.py rebuilds LLaDANetwork from
the seed and compares. The script also prints Lacuna's max |diff| directly.
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

from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork  # noqa: E402
from tests.reference.recipe import seeded_state_dict  # noqa: E402

OUT = HERE / "llada_small.safetensors"
SEED = 1234
# Small, but exercising every path: grouped-query attention (4 query heads per
# 2 key/value heads), an embedding wider than the vocabulary, two blocks.
CONFIG = dict(
    d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden_size=96, vocab_size=120,
    embedding_size=128, max_sequence_length=256, rope_theta=500000.0, rms_norm_eps=1e-5,
    mask_token_id=119, eos_token_id=1, pad_token_id=1,
)


def inputs() -> torch.Tensor:
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, CONFIG["vocab_size"], (2, 24), generator=gen)
    ids[0, 5:12] = CONFIG["mask_token_id"]  # a masked span, as in infilling
    return ids


def shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        net = LLaDANetwork(LLaDAConfig.from_config(CONFIG))
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def main(upstream_parent: str) -> None:
    sys.path.insert(0, upstream_parent)
    upstream = importlib.import_module("llada_model")
    state = seeded_state_dict(shapes(), SEED)
    full = LLaDAConfig.from_config(CONFIG).to_config()
    full["flash_attention"] = False
    ref = upstream.LLaDAModelLM(upstream.LLaDAConfig(**full), init_params=False).float().eval()
    ref.load_state_dict(state, strict=True)
    ids = inputs()
    with torch.no_grad():
        logits = ref(ids).logits.float().contiguous()
        ours = LLaDANetwork(LLaDAConfig.from_config(CONFIG)).float().eval()
        ours.load_state_dict(state, strict=True)
        mine = ours(ids)
    import transformers

    meta = {
        "config": json.dumps(CONFIG, sort_keys=True),
        "seed": str(SEED),
        "upstream": "NVlabs/Fast-dLLM llada/model/modeling_llada.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    save_file({"input_ids": ids, "logits": logits}, str(OUT), metadata=meta)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); logits {tuple(logits.shape)}")
    print(f"max |ours - upstream| = {(mine - logits).abs().max().item():.3e} (float32)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
