"""The ModelAdapter for Lacuna's own token-in/logits-out networks
(LLaDA, Dream, LLaDA-MoE), and the pieces every native family loads with:
the tokenizer from tokenizer.json, the network streamed onto its device,
optional 8-bit or 4-bit weights.

No repository code is imported and nothing passes trust_remote_code: the
tokenizer is built by ``FastTokenizer`` (engine.models.tokenizer: what Lacuna
uses of transformers' PreTrainedTokenizerFast, without importing
transformers) from tokenizer.json, its special tokens from the JSON configs
beside it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError
from .base import ModelAdapter
from .families import BY_NAME, Family
from .kvcache import CacheStep, DualCache, run_positions
from .quantize import quantize_hook
from .weights import load_into

log = logging.getLogger(__name__)

_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class NativeAdapter(ModelAdapter):
    """A native network behind ModelAdapter.

    The network (engine.models.blocks.MaskPredictor) maps ``input_ids [B, L]``
    to logits ``[B, L, V]`` through ``hidden`` and ``head``; the adapter runs
    the head only on the rows it needs (the head is most of a small model's
    cost). ``logit_shift`` 1 (Dream) reads position i from the output row
    i-1; position 0 reuses its own row, as Dream's generation code does.
    Logits are cut to the tokenizer's size: rows past it (padding of the
    embedding) are tokens nothing can decode. Capabilities and the logit
    shift come from the family's record (engine.models.families); a family
    name that has none gets a dual cache and no shift. One adapter serves one
    thread at a time.
    """

    # Candidates of one request share a forward pass (engine.sampler batches them).
    batches = True
    # The dual context cache (engine.models.kvcache), handed to every layer of the network.
    cache_modes = ("dual",)
    default_cache = "dual"

    def __init__(
        self,
        name: str,
        family: str | Family,
        network: nn.Module,
        tokenizer: Any,
        mask_id: int,
        context_length: int,
        logit_shift: int | None = None,
        path: str | None = None,
        extra_special_ids: tuple[int, ...] = (),
        quantization: str | None = None,
    ):
        record = family if isinstance(family, Family) else BY_NAME.get(str(family))
        width = network.config.logits_width
        tensor = next(iter(network.parameters()))
        super().__init__(name, tokenizer, mask_id=mask_id,
                         vocab_size=min(width, len(tokenizer)),
                         context_length=context_length, device=tensor.device,
                         dtype=_compute_dtype(network, tensor.dtype), path=path, family=record)
        if record is None:
            self.family = str(family)
        if logit_shift is not None:  # benches and tests try one family's network with another's shift
            self.logit_shift = int(logit_shift)
        if not 0 <= self.mask_id < self.vocab_size:
            raise ModelLoadError(f"{name}: mask id {self.mask_id} is outside the vocabulary of {self.vocab_size}")
        self.network = network.eval()
        self.quantization = quantization
        ids = set(self.special_ids) | {self.mask_id}
        ids |= {int(i) for i in extra_special_ids if i is not None and 0 <= int(i) < self.vocab_size}
        self.special_ids = frozenset(ids)

    def _rows(self, positions: torch.Tensor) -> torch.Tensor:
        """The output rows that predict ``positions`` (the logit shift applied)."""
        return (positions - self.logit_shift).clamp(min=0) if self.logit_shift else positions

    @torch.inference_mode()
    def logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ids: LongTensor [L] or [B, L] (B canvases of one layout); positions:
        LongTensor [P] -> float32 [P, vocab_size] (or [B, P, vocab_size])."""
        batch = ids if ids.dim() == 2 else ids.unsqueeze(0)
        out = self.network(batch, logits_at=self._rows(positions))
        out = out[..., : self.vocab_size].float()
        return out if ids.dim() == 2 else out[0]

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, positions: torch.Tensor):
        """The refresh of the dual cache: a full forward over ids [B, L] that
        keeps every layer's keys/values. Returns (float32 logits
        [B, P, vocab_size] at positions [P], the kvcache.DualCache)."""
        step = CacheStep(DualCache(), record=True)
        hidden = self.network.hidden(ids, cache=step)
        return self.network.head(hidden[:, self._rows(positions)])[..., : self.vocab_size].float(), step.cache

    @torch.inference_mode()
    def logits_cached(self, ids: torch.Tensor, block: torch.Tensor, positions: torch.Tensor, cache) -> torch.Tensor:
        """A cached step: run only the canvas positions ``block`` [K] (and, with
        a logit shift, the rows that predict ``positions``) at their true rotary
        positions, attending to ``cache`` (whose entries for them are
        overwritten). ids [B, L]; positions [P] within block. Returns float32
        logits [B, P, vocab_size]."""
        run = run_positions(block, positions, self.logit_shift, ids.shape[1])
        hidden = self.network.hidden(ids[:, run], positions=run, cache=CacheStep(cache, run=run))
        out = self.network.head(hidden[:, torch.searchsorted(run, self._rows(positions))])
        return out[..., : self.vocab_size].float()

    def __repr__(self) -> str:
        q = f" {self.quantization}" if self.quantization else ""
        return f"<NativeAdapter {self.family} {self.name} on {self.device} {self.dtype}{q}>"


def _compute_dtype(network: nn.Module, fallback: torch.dtype) -> torch.dtype:
    for p in network.parameters():
        if p.is_floating_point():
            return p.dtype
    return fallback


# tokenizer -------------------------------------------------------------------
def _token_string(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_tokenizer(path: Path, config: dict, name: str, context_length: int, backend: Any = None):
    """A fast tokenizer from ``path/tokenizer.json``, no remote code.

    Special tokens come from tokenizer_config.json and special_tokens_map.json;
    the config's ``mask_token_id`` / ``eos_token_id`` / ``pad_token_id`` /
    ``bos_token_id`` win over them (the config is what the network was
    trained with). ``backend``: a ``tokenizers.Tokenizer`` the family built
    itself (Dream's vocab.json + merges.txt), used instead of tokenizer.json.
    Raises ModelLoadError when tokenizer.json is missing or unreadable."""
    from .tokenizer import FastTokenizer

    if backend is None:
        backend = _read_tokenizer_json(path, name)
    specials: dict[str, Any] = {}
    extra: list[str] = []
    for source in (_read_json(path / "tokenizer_config.json"), _read_json(path / "special_tokens_map.json")):
        for key in _SPECIAL_KEYS:
            token = _token_string(source.get(key))
            if token is not None and backend.token_to_id(token) is not None:
                specials[key] = token
        for item in source.get("additional_special_tokens") or []:
            token = _token_string(item)
            if token is not None and backend.token_to_id(token) is not None and token not in extra:
                extra.append(token)
    for key, id_key in (("mask_token", "mask_token_id"), ("eos_token", "eos_token_id"),
                        ("pad_token", "pad_token_id"), ("bos_token", "bos_token_id")):
        token_id = config.get(id_key)
        if isinstance(token_id, int):
            token = backend.id_to_token(token_id)
            if token is not None:
                specials[key] = token
    # transformers' PreTrainedTokenizerFast, minus the seconds its import costs at start-up.
    return FastTokenizer(backend, context_length, specials, extra)


def _read_tokenizer_json(path: Path, name: str):
    file = path / "tokenizer.json"
    if not file.is_file():
        raise ModelLoadError(f"{name}: no tokenizer.json in {path} (Lacuna needs a fast tokenizer file)")
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception
        raise ModelLoadError(f"{name}: tokenizer.json cannot be read ({str(exc).splitlines()[0][:160]})") from None


# loading ---------------------------------------------------------------------
@contextlib.contextmanager
def _no_init():
    """Skip weight initialisation while a network is built on the meta device:
    the checkpoint overwrites every weight, and torch's meta ``normal_``
    imports torch._dynamo, seconds of start-up (accelerate's
    init_empty_weights and transformers' no_init_weights skip it the same way).
    nn.init's functions are wrapped once for the process, but they skip only on
    a thread inside this block: a model built on another thread meanwhile (the
    app loads models on their own threads) is initialised as usual."""
    _wrap_init()
    depth = getattr(_NO_INIT, "depth", 0)
    _NO_INIT.depth = depth + 1
    try:
        yield
    finally:
        _NO_INIT.depth = depth


_INIT_NAMES = ("normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_", "xavier_uniform_",
               "xavier_normal_", "ones_", "zeros_", "constant_")
_NO_INIT = threading.local()


def _wrap_init() -> None:
    with _INIT_LOCK:
        for name in _INIT_NAMES:
            fn = getattr(nn.init, name)
            if getattr(fn, "_lacuna_no_init", False):
                continue

            def skipping(tensor, *args, _fn=fn, **kwargs):
                if getattr(_NO_INIT, "depth", 0):
                    return tensor
                return _fn(tensor, *args, **kwargs)

            skipping._lacuna_no_init = True
            setattr(nn.init, name, skipping)


_INIT_LOCK = threading.Lock()


def build_network(factory: Callable[[], nn.Module], path: Path, device: torch.device, dtype: torch.dtype,
                  quantization: str | None = None, keep: Callable[[str], bool] = lambda name: False,
                  rename: Callable[[str], str] | None = None) -> nn.Module:
    """Build a network on the meta device (no memory), then stream the checkpoint into it.

    Raises ModelLoadError for a checkpoint that does not match, and for an
    out-of-memory device with the sizes to try next."""
    with torch.device("meta"), _no_init():
        network = factory()
    hook = quantize_hook(quantization, dtype, keep)
    try:
        load_into(network, path, device, dtype, quantize=hook, rename=rename)
    except torch.OutOfMemoryError:
        raise ModelLoadError(
            f"out of memory loading {path.name} on {device} in {quantization or dtype}; "
            "try --quant nf4, a smaller model, or the CPU"
        ) from None
    return network.eval().requires_grad_(False)
