"""Regenerate tests/reference/dream_small.safetensors: upstream Dream logits on seeded weights.

Needs a scratch venv with the transformers version upstream pins (4.46.2) and
upstream's modelling files (modeling_dream.py, configuration_dream.py,
generation_utils.py as vendored in ZHZisZZ/dllm dllm/pipelines/dream/models/,
plus an empty __init__.py) in a package folder named ``dream_upstream``
OUTSIDE this repository, never committed:

    python -m venv --system-site-packages /work/scratch/dream/venv
    /work/scratch/dream/venv/bin/pip install transformers==4.46.2
    PYTHONPATH=$PWD /work/scratch/dream/venv/bin/python \
        tests/reference/make_dream_reference.py /path/to/folder/holding/dream_upstream

The reference stores the config, the seed, the inputs and upstream's float32
logits (unshifted, as upstream returns them); tests/engine/models/test_reference.py
rebuilds DreamNetwork from the seed and compares. The script also prints
Lacuna's max |diff| directly.
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

from lacuna.engine.models.dream import DreamConfig, DreamNetwork  # noqa: E402
from tests.reference.recipe import seeded_state_dict  # noqa: E402

OUT = HERE / "dream_small.safetensors"
SEED = 4321
# Small, but on every path of the 7B model: grouped-query attention (2 query
# heads per key/value head), q/k/v biases, rope theta 1e6, eps 1e-6, untied head.
CONFIG = dict(
    hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=128, max_position_embeddings=256, rope_theta=1000000.0,
    rms_norm_eps=1e-6, mask_token_id=126, pad_token_id=0, bos_token_id=1, eos_token_id=0,
)


def inputs() -> torch.Tensor:
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, CONFIG["vocab_size"], (2, 32), generator=gen)
    ids[0, 6:14] = CONFIG["mask_token_id"]  # a masked span, as in infilling
    ids[1, 20:] = CONFIG["mask_token_id"]
    return ids


def shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        net = DreamNetwork(DreamConfig.from_config(CONFIG))
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def main(upstream_parent: str) -> None:
    sys.path.insert(0, upstream_parent)
    modeling = importlib.import_module("dream_upstream.modeling_dream")
    configuration = importlib.import_module("dream_upstream.configuration_dream")
    state = seeded_state_dict(shapes(), SEED)
    full = DreamConfig.from_config(CONFIG).to_config()
    full["use_cache"] = False
    ref = modeling.DreamModel(configuration.DreamConfig(**full)).float().eval()
    ref.load_state_dict(state, strict=True)
    ids = inputs()
    with torch.no_grad():
        logits = ref(ids).logits.float().contiguous()
        ours = DreamNetwork(DreamConfig.from_config(CONFIG)).float().eval()
        ours.load_state_dict(state, strict=True)
        mine = ours(ids)
    import transformers

    meta = {
        "config": json.dumps(CONFIG, sort_keys=True),
        "seed": str(SEED),
        "upstream": "ZHZisZZ/dllm@ca17675 dllm/pipelines/dream/models/modeling_dream.py (DreamModel, SDPA)",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    save_file({"input_ids": ids, "logits": logits}, str(OUT), metadata=meta)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); logits {tuple(logits.shape)}, max |logit| {logits.abs().max():.3f}")
    print(f"max |ours - upstream| = {(mine - logits).abs().max().item():.3e} (float32)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
