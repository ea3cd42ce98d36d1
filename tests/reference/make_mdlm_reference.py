"""Regenerate tests/reference/mdlm_small.safetensors: upstream MDLM outputs on seeded weights.

Upstream is kuleshov-group/mdlm (``models/dit.py`` for the network,
``diffusion.py`` for ``_process_sigma`` and ``_subs_parameterization``), in a
folder OUTSIDE this repository, never committed. It needs einops and
omegaconf (a scratch venv) and flash-attn, for which dit_upstream.py writes a
small torch stand-in:

    python -m venv --system-site-packages /work/scratch/dit/venv
    /work/scratch/dit/venv/bin/pip install einops omegaconf
    PYTHONPATH=$PWD /work/scratch/dit/venv/bin/python \
        tests/reference/make_mdlm_reference.py /path/to/kuleshov-group/mdlm

Only the two methods of ``Diffusion`` are taken from diffusion.py (by their
source, through ast), since importing it pulls Lightning, Hydra and datasets.
The reference stores the config, seed, inputs and upstream's float32 outputs
with and without time conditioning; tests/engine/models/test_reference.py
rebuilds the network from the seed and compares. Prints our max |diff| too.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from lacuna.engine.models.mdlm import MDLMNetwork, subs  # noqa: E402
from tests.reference.dit_upstream import inputs, install_flash_attn_stand_in  # noqa: E402
from tests.support.dit_tiny import dit_state, mdlm_config, mdlm_shape  # noqa: E402

OUT = HERE / "mdlm_small.safetensors"
SEED = 4321


def _diffusion_methods(path: Path) -> dict:
    """Diffusion._process_sigma and _subs_parameterization, compiled from their source."""
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Diffusion")
    wanted = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name in ("_process_sigma", "_subs_parameterization")]
    module = ast.Module(body=wanted, type_ignores=[])
    namespace = {"torch": torch}
    exec(compile(module, str(path), "exec"), namespace)
    return namespace


def main(upstream: str) -> None:
    root = Path(upstream)
    install_flash_attn_stand_in()
    spec = importlib.util.spec_from_file_location("mdlm_upstream_dit", root / "models" / "dit.py")
    dit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dit)
    methods = _diffusion_methods(root / "diffusion.py")

    config = mdlm_config()
    shape = mdlm_shape(config)
    mask_id = shape.vocab_size - 1
    state = dit_state(shape, SEED, prefix="backbone.")
    upstream_cfg = {"model": {"hidden_size": shape.hidden_size, "cond_dim": shape.cond_dim,
                              "n_heads": shape.n_heads, "n_blocks": shape.n_blocks,
                              "dropout": 0.1, "scale_by_sigma": False}}
    ref = dit.DIT(upstream_cfg, vocab_size=shape.vocab_size).float().eval()
    ref.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items()}, strict=True)
    ids, sigma = inputs(SEED, shape.vocab_size, mask_id)
    out = {"input_ids": ids, "sigma": sigma}
    figures = {}
    with torch.no_grad():
        for conditioned in (False, True):
            fake = types.SimpleNamespace(time_conditioning=conditioned, parameterization="subs",
                                         mask_index=mask_id, neg_infinity=-1000000.0)
            logits = ref(ids, methods["_process_sigma"](fake, sigma)).float()
            log_p = methods["_subs_parameterization"](fake, logits.clone(), ids)
            ours = MDLMNetwork(shape, time_conditioning=conditioned).float().eval()
            ours.load_state_dict(state, strict=True)
            mine = ours(ids, sigma)
            mine_p = subs(mine, ids, mask_id)
            tag = "conditioned" if conditioned else "unconditioned"
            out[f"logits_{tag}"] = logits.contiguous()
            out[f"log_p_{tag}"] = log_p.float().contiguous()
            figures[f"logits_{tag}"] = (mine - logits).abs().max().item()
            # Upstream writes -1e6 where SUBS forbids a token, we write -inf: compare probabilities.
            figures[f"subs_prob_{tag}"] = (mine_p.exp() - log_p.exp()).abs().max().item()
            finite = torch.isfinite(mine_p)
            figures[f"subs_logp_{tag}"] = (mine_p[finite] - log_p[finite]).abs().max().item()
            assert torch.equal(finite, log_p > -1e5), "forbidden entries differ"
    meta = {"config": json.dumps(config, sort_keys=True), "seed": str(SEED),
            "upstream": "kuleshov-group/mdlm models/dit.py + diffusion.py (SUBS)",
            "torch": torch.__version__, "figures": json.dumps(figures)}
    save_file(out, str(OUT), metadata=meta)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    for key, value in figures.items():
        print(f"max |ours - upstream| {key}: {value:.3e} (float32)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
