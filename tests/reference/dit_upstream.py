"""Helpers for make_mdlm_reference.py and make_sedd_reference.py: a small
torch stand-in for flash-attn (upstream imports it; it has no CPU build) and
the seeded inputs both references share. Never imported by the tests.

The stand-in implements the two functions upstream calls, by their documented
meaning: ``flash_attn_varlen_qkvpacked_func(qkv [N, 3, H, d], cu_seqlens,
max_seqlen, dropout_p, causal=False)`` is attention within each sequence of a
packed batch, and ``layers.rotary.apply_rotary_emb_qkv_(qkv [B, L, 3, H, d],
cos [L, d/2], sin [L, d/2])`` rotates q and k in place, non-interleaved
(first half with second half).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

_INTERFACE = '''
import torch
import torch.nn.functional as F


def flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p=0.0, causal=False, **_):
    out = torch.empty_like(qkv[:, 0])
    bounds = cu_seqlens.tolist()
    for start, end in zip(bounds, bounds[1:]):
        q, k, v = (qkv[start:end, i].transpose(0, 1) for i in range(3))
        out[start:end] = F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(0, 1)
    return out
'''

_ROTARY = '''
import torch


def apply_rotary_emb_qkv_(qkv, cos, sin, **_):
    half = cos.shape[-1]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    for i in (0, 1):
        x1 = qkv[:, :, i, :, :half].clone()
        x2 = qkv[:, :, i, :, half:2 * half].clone()
        qkv[:, :, i, :, :half] = x1 * c - x2 * s
        qkv[:, :, i, :, half:2 * half] = x2 * c + x1 * s
    return qkv
'''


def install_flash_attn_stand_in(rotary: bool = True) -> Path:
    """Write the stand-in package to a temporary folder and put it first on
    sys.path. Without ``rotary`` the package has no ``layers``, so SEDD's
    model/rotary.py falls back to its own torch implementation."""
    root = Path(tempfile.mkdtemp(prefix="flash_attn_stand_in_"))
    pkg = root / "flash_attn"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import flash_attn_interface\n")
    (pkg / "flash_attn_interface.py").write_text(_INTERFACE)
    if rotary:
        (pkg / "layers").mkdir()
        (pkg / "layers" / "__init__.py").write_text("from . import rotary\n")
        (pkg / "layers" / "rotary.py").write_text(_ROTARY)
    sys.path.insert(0, str(root))
    return root


def inputs(seed: int, vocab_size: int, mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [2, 24] with a masked span in each row, sigma [2] (one below 0.5, one above)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, mask_id, (2, 24), generator=gen)
    ids[0, 5:12] = mask_id
    ids[1, 15:22] = mask_id
    sigma = torch.tensor([0.3, 2.0])
    return ids, sigma
