"""Regenerate tests/reference/sedd_small.safetensors: upstream SEDD log scores on seeded weights.

Upstream is louaaron/Score-Entropy-Discrete-Diffusion (``model/transformer.py``,
``model/rotary.py``), in a folder OUTSIDE this repository, never committed.
It needs einops, omegaconf and huggingface_hub (a scratch venv) and flash-attn,
for which dit_upstream.py writes a small torch stand-in of the attention only:
rotary falls back to upstream's own torch code (model/rotary.py).

    python -m venv --system-site-packages /work/scratch/dit/venv
    /work/scratch/dit/venv/bin/pip install einops omegaconf
    PYTHONPATH=$PWD /work/scratch/dit/venv/bin/python \
        tests/reference/make_sedd_reference.py /path/to/Score-Entropy-Discrete-Diffusion

The reference stores the config, seed, inputs (sigma below and above 0.5, so
both branches of the expm1 guard run) and upstream's float32 log scores with
and without scale_by_sigma; tests/engine/models/test_reference.py rebuilds the
network from the seed and compares. Prints our max |diff| too, and that of
the analytic (Tweedie) step against upstream's graph_lib.
"""
from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from lacuna.engine.models.sedd import SEDDNetwork  # noqa: E402
from tests.reference.dit_upstream import inputs, install_flash_attn_stand_in  # noqa: E402
from tests.support.dit_tiny import dit_state, sedd_config, sedd_shape  # noqa: E402

OUT = HERE / "sedd_small.safetensors"
SEED = 2468


def _tweedie_figures(graph_lib, rows: int = 200) -> dict:
    """lacuna.engine.select.tweedie_reveal and the softmax of the log scores against
    upstream's analytic step (graph_lib.Absorbing staggered_score x
    transp_transition, whose negative mask weight never wins the categorical
    draw, hence the clamp) on random score rows at a masked position."""
    from lacuna.engine.select import tweedie_reveal

    gen = torch.Generator().manual_seed(SEED)
    vocab = 51
    graph = graph_lib.Absorbing(vocab - 1)
    worst_reveal = worst_token = 0.0
    for _ in range(rows):
        sigma_now = 0.01 + 3 * float(torch.rand(1, generator=gen))
        sigma_next = sigma_now * float(torch.rand(1, generator=gen))
        log_score = 2 * torch.randn(1, 1, vocab, generator=gen) - math.log(math.expm1(sigma_now)) - math.log(vocab - 1)
        log_score[..., -1] = 0.0  # the position's own token, the mask
        step = torch.tensor([sigma_now - sigma_next])
        probs = graph.staggered_score(log_score.exp(), step) * graph.transp_transition(torch.full((1, 1), vocab - 1), step)
        probs = probs[0, 0].double().clamp_min(0)
        reveal = 1 - probs[-1] / probs.sum()
        mine = tweedie_reveal(torch.logsumexp(log_score[0, :, :-1], -1), sigma_now, sigma_next).double()
        worst_reveal = max(worst_reveal, abs(float(mine - reveal)))
        tokens = torch.softmax(log_score[0, 0, :-1].double(), -1) - probs[:-1] / probs[:-1].sum()
        worst_token = max(worst_token, float(tokens.abs().max()))
    return {"tweedie_reveal": worst_reveal, "tweedie_token_distribution": worst_token}


def main(upstream: str) -> None:
    install_flash_attn_stand_in(rotary=False)
    sys.path.insert(0, upstream)
    transformer = importlib.import_module("model.transformer")

    config = sedd_config()
    shape = sedd_shape(config)
    mask_id = shape.vocab_size - 1
    state = dit_state(shape, SEED)
    ids, sigma = inputs(SEED, shape.vocab_size, mask_id)
    out = {"input_ids": ids, "sigma": sigma}
    figures = {}
    with torch.no_grad():
        for scale in (True, False):
            cfg = json.loads(json.dumps(config))
            cfg["model"]["scale_by_sigma"] = scale
            ref = transformer.SEDD(cfg).float().eval()
            ref.load_state_dict(state, strict=True)
            expected = ref(ids, sigma).float()
            ours = SEDDNetwork(shape, scale_by_sigma=scale).float().eval()
            ours.load_state_dict(state, strict=True)
            tag = "scaled" if scale else "unscaled"
            out[f"log_score_{tag}"] = expected.contiguous()
            figures[f"log_score_{tag}"] = (ours(ids, sigma) - expected).abs().max().item()
    figures.update(_tweedie_figures(importlib.import_module("graph_lib")))
    meta = {"config": json.dumps(config, sort_keys=True), "seed": str(SEED),
            "upstream": "louaaron/Score-Entropy-Discrete-Diffusion model/transformer.py",
            "torch": torch.__version__, "figures": json.dumps(figures)}
    save_file(out, str(OUT), metadata=meta)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    for key, value in figures.items():
        print(f"max |ours - upstream| {key}: {value:.3e} (float32)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
