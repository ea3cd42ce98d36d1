"""SEDD (Lou, Meng & Ermon 2024, "Discrete Diffusion Modeling by Estimating
the Ratios of the Data Distribution"): louaaron/sedd-small and sedd-medium,
loaded natively from their Hub checkpoints (absorbing graph, log-linear noise).

Network: the DiT of engine.models.dit with no key prefix, always conditioned
on sigma. ``network(input_ids [B, L], sigma [B]) -> log score [B, L, V]``, as
louaaron/Score-Entropy-Discrete-Diffusion ``model/transformer.py``: with
``scale_by_sigma`` the output is shifted by -log(e^sigma - 1) (expm1 below
sigma 0.5) and -log(V - 1), then each position's own input token gets 0.

Adapter: at a masked position the absorbing graph's score for token y is
p0(y) e^-sigma / (1 - e^-sigma), so the denoising distribution is the
softmax of the log scores over the real tokens: ``logits()`` returns the log
scores with the mask column at -inf (their mass is kept for the analytic
sampler, see ``engine.select.tweedie_reveal``). Sigma comes from the canvas's
masked fraction f under the log-linear schedule, whose move chance
1 - e^-sigma equals f: sigma = -log(1 - f).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .dit import DiT, DiTShape
from .dit_adapter import (
    DiTAdapter, build_dit, check_vocabulary, load_gpt2_tokenizer, loglinear_sigma, tokenizer_repo_for,
)
from .families import BY_NAME
from .kvcache import CacheStep

log = logging.getLogger(__name__)

FAMILY = BY_NAME["sedd"]


def _section(config: dict, key: str) -> dict:
    value = config.get(key)
    if not isinstance(value, dict):
        raise ModelLoadError(f"SEDD config.json has no {key!r} section")
    return value


def shape_from_config(config: dict) -> tuple[DiTShape, bool, int]:
    """(shape, scale_by_sigma, canvas length); refuses graphs and noises the engine cannot sample."""
    model, graph, noise = _section(config, "model"), _section(config, "graph"), _section(config, "noise")
    if graph.get("type") != "absorb":
        raise ModelLoadError(
            f"SEDD with a {graph.get('type')!r} graph has no mask token to infill; only 'absorb' is supported")
    if noise.get("type") != "loglinear":
        raise ModelLoadError(f"SEDD with {noise.get('type')!r} noise is not supported; only 'loglinear' is")

    def positive(section: dict, key: str, where: str) -> int:
        value = section.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelLoadError(f"SEDD config.json: {where}{key} must be a positive integer, got {value!r}")
        return value

    tokens = positive(config, "tokens", "")
    try:
        shape = DiTShape(hidden_size=positive(model, "hidden_size", "model."), n_heads=positive(model, "n_heads", "model."),
                         n_blocks=positive(model, "n_blocks", "model."), cond_dim=positive(model, "cond_dim", "model."),
                         vocab_size=tokens + 1)
    except ValueError as exc:
        raise ModelLoadError(f"SEDD config.json: {exc}") from exc
    length = model.get("length", 1024)
    if not isinstance(length, int) or length < 4:
        raise ModelLoadError(f"SEDD config.json: model.length must be an integer >= 4, got {length!r}")
    return shape, bool(model.get("scale_by_sigma", True)), length


class SEDDNetwork(DiT):
    """forward(input_ids [B, L], sigma [B], positions=None, at=None, cache=None) -> log score
    [B, L or P, V] (``at``, ``cache``: see DiT)."""

    def __init__(self, shape: DiTShape, scale_by_sigma: bool = True):
        super().__init__(shape)
        self.scale_by_sigma = bool(scale_by_sigma)

    def forward(self, input_ids: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None = None,
                at: torch.Tensor | None = None, cache: CacheStep | None = None) -> torch.Tensor:
        x = super().forward(input_ids, sigma, positions, at, cache)
        if self.scale_by_sigma:
            sigma = sigma.float()
            esigm1 = torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1)
            x = x - esigm1.log().to(x.dtype)[:, None, None] - math.log(x.shape[-1] - 1)
        own = input_ids if positions is None else input_ids[:, positions]
        return torch.scatter(x, -1, own[..., None], torch.zeros_like(x[..., :1]))


class SEDDAdapter(DiTAdapter):
    """Log scores over the SEDD network. Its dual context cache approximates
    twice over: the context's keys and values go stale after commits, and they
    were computed at the sigma of the refresh while every layer of the block
    sees the sigma of the canvas now (docs/benchmarks.md gives the agreement)."""

    FAMILY = FAMILY

    def sigma_at(self, masked_fraction: float) -> float:
        return loglinear_sigma(masked_fraction)

    def sigma(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.sigma_at(f) for f in self._fractions(ids)], dtype=torch.float32)

    def _sampling_logits(self, out: torch.Tensor, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out[..., self.mask_id] = float("-inf")
        return out


def load(name: str, path: Path, config: dict, device: torch.device, dtype: torch.dtype,
         quantization: str | None = None) -> SEDDAdapter:
    """Build the network on the meta device and fill it from the checkpoint.

    A repository holding only a pickle is refused until it has been converted
    (engine.models.pickles.convert, after the user's consent)."""
    from . import pickles

    if quantization not in (None, "none", "bf16", "fp16", "fp32"):
        raise ModelLoadError(f"{name}: SEDD is small and runs unquantised; drop the {quantization} option")
    path = Path(path)
    shape, scale_by_sigma, length = shape_from_config(config)
    tokenizer = load_gpt2_tokenizer(name, path, tokenizer_repo_for(name))
    check_vocabulary(name, tokenizer, shape.vocab_size - 1)
    weights = path
    if not any(path.glob("*.safetensors")) and pickles.pickle_checkpoint(path) is not None:
        weights = pickles.converted_files(name, path)[0].parent
    network = build_dit(name, lambda: SEDDNetwork(shape, scale_by_sigma), weights, device, dtype)
    log.info("SEDD %s: %d blocks x %d, vocabulary %d", name, shape.n_blocks, shape.hidden_size, shape.vocab_size)
    return SEDDAdapter(name, network, tokenizer, shape.vocab_size - 1, length, path=str(path))
