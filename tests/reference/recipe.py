"""Seed-defined random weights for the equivalence references (no weights are stored).

Each tensor is drawn from its own generator seeded with (seed, its name), so a
reference does not depend on module construction order or torch's global RNG.
Norm weights are 1 + noise so that a missing or misplaced norm shows up.
"""
from __future__ import annotations

import zlib

import torch


def seeded_state_dict(shapes: dict[str, tuple[int, ...]], seed: int, std: float = 0.05) -> dict[str, torch.Tensor]:
    """shapes: official tensor name -> shape. Returns float32 tensors, the same on every machine."""
    out = {}
    for name in sorted(shapes):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        t = torch.randn(shapes[name], generator=gen, dtype=torch.float32)
        if "norm" in name.rsplit(".", 2)[-2] or name.endswith("ln_f.weight"):
            t = 1.0 + 0.1 * t
        else:
            t = std * t
        out[name] = t
    return out


def seeded_network(network_cls, config_cls, config: dict, seed: int) -> torch.nn.Module:
    """``network_cls(config_cls.from_config(config))`` in float32, eval mode,
    holding the seeded weights of :func:`seeded_state_dict` (strict load)."""
    net = network_cls(config_cls.from_config(config)).float().eval()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict(seeded_state_dict(shapes, seed), strict=True)
    return net
