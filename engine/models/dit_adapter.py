"""What MDLM and SEDD share around their DiT network: the GPT-2 tokenizer
(a companion download, since neither repository ships one), the weights by
name, and the ModelAdapter that the sampler drives.

Both were trained on OpenWebText packed into fixed 1024-token rows with
GPT-2's <|endoftext|> between documents, so a canvas is framed by that token
on both sides: the text looks like one document among others.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError
from .base import ModelAdapter
from .families import Family
from .kvcache import CacheStep, DualCache, run_positions

log = logging.getLogger(__name__)

GPT2_TOKENIZER_REPO = "openai-community/gpt2"
LOGLINEAR_EPS = 1e-3  # the log-linear noise's eps in both references
TOKENIZER_FILE = "tokenizer.json"


def loglinear_sigma(masked_fraction: float, eps: float = LOGLINEAR_EPS) -> float:
    """Total noise sigma at which the log-linear schedule (MDLM's and SEDD's
    ``LogLinearNoise``: sigma(t) = -log(1 - (1 - eps) t)) masks this fraction
    of tokens: 1 - e^-sigma = f, with f clamped to [0, 1 - eps] (t <= 1)."""
    f = min(max(float(masked_fraction), 0.0), 1.0 - eps)
    return -math.log1p(-f)


def tokenizer_repo_for(name: str, default: str = GPT2_TOKENIZER_REPO) -> str:
    """The Hub repo whose tokenizer a model uses: the catalog's ``tokenizer_repo``
    for this model, else ``default`` (GPT-2's for both DiT families)."""
    from ..hub import catalog_entry

    entry = catalog_entry(name)
    if entry is not None and entry.get("tokenizer_repo"):
        return str(entry["tokenizer_repo"])
    return default


def _has_tokenizer(folder: Path) -> bool:
    """tokenizer.json, or GPT-2's byte-level BPE files it is built from."""
    return (folder / TOKENIZER_FILE).is_file() or (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file())


def _byte_level_bpe(folder: Path):
    """GPT-2's tokenizer from its vocab.json and merges.txt: byte-level BPE with
    <|endoftext|> as its one special token, as GPT-2's own tokenizer.json has it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if tok.token_to_id("<|endoftext|>") is not None:
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    return tok


def load_gpt2_tokenizer(name: str, path: Path, tokenizer_repo: str):
    """A fast tokenizer from ``path``'s own tokenizer.json if it has one, else
    from the companion repo's snapshot in the local HF cache. Never remote code;
    never the network. Raises ModelLoadError saying how to get it."""
    from transformers import PreTrainedTokenizerFast

    from ..hub import local_snapshot

    source = path / TOKENIZER_FILE
    if not _has_tokenizer(path):
        companion = local_snapshot(tokenizer_repo)
        source = companion / TOKENIZER_FILE if companion is not None else None
        if companion is None or not _has_tokenizer(companion):
            if Path(name).expanduser().is_dir():  # a folder of the user's: pulling it by name cannot work
                raise ModelLoadError(
                    f"{name} has no tokenizer.json and uses the tokenizer of {tokenizer_repo}, which is not "
                    f"downloaded: run `lacuna-cli models pull {tokenizer_repo}` or copy its tokenizer.json into the folder"
                )
            raise ModelLoadError(
                f"{name} uses the tokenizer of {tokenizer_repo}, which is not downloaded: "
                f"run `lacuna-cli models pull {name}` (it fetches the tokenizer too)"
            )
    try:
        if source.is_file():
            tok = PreTrainedTokenizerFast(tokenizer_file=str(source))
        else:  # vocab.json + merges.txt only (a snapshot fetched with narrower patterns)
            tok = PreTrainedTokenizerFast(tokenizer_object=_byte_level_bpe(source.parent))
    except Exception as exc:  # tokenizers raises its own exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelLoadError(f"{name}: cannot read the tokenizer in {source.parent} ({first})") from None
    vocab = tok.get_vocab()
    # GPT-2's tokenizer.json declares <|endoftext|> as its only special token;
    # its tokenizer_config (GPT2TokenizerFast's defaults) names it bos/eos/unk.
    if tok.eos_token is None and "<|endoftext|>" in vocab:
        tok.eos_token = "<|endoftext|>"
        tok.bos_token = "<|endoftext|>"
    return tok


def check_vocabulary(name: str, tokenizer, mask_id: int) -> None:
    """The tokenizer must cover exactly the ids below the mask (GPT-2: 50257 + mask).

    A folder saved after adding the mask token to the tokenizer (``[MASK]`` at the
    mask id, as MDLM's and SEDD's training code do) is the same vocabulary plus the
    mask itself, and is accepted."""
    size = len(tokenizer)
    if size == mask_id:
        return
    if size == mask_id + 1 and mask_id in _added_ids(tokenizer):
        return
    raise ModelLoadError(
        f"{name}: the tokenizer has {size} tokens, but the model expects {mask_id} "
        f"(plus its mask at id {mask_id}); is this the right tokenizer?"
    )


def _added_ids(tokenizer) -> set[int]:
    try:
        return {int(i) for i in tokenizer.added_tokens_decoder}
    except (AttributeError, TypeError, ValueError):
        return set()


class DiTAdapter(ModelAdapter):
    """ModelAdapter over a DiT network (MDLM, SEDD); subclasses name their
    family's record (``FAMILY``, engine.models.families) and turn the
    network's output at the masked positions into sampling logits.

    ``network(input_ids [B, L], sigma [B], positions [P], at=None, cache=None) -> [B, P, V]``.
    Candidates of one request share each forward pass (``batches``); each row
    is conditioned on its own canvas's sigma. The dual context cache
    (engine.models.kvcache) runs through ``prefill`` and ``logits_cached``.
    One adapter serves one thread at a time.
    """

    FAMILY: Family
    mask_text = ""  # the live view shows a still-masked slot as nothing

    def __init__(self, name: str, network: torch.nn.Module, tokenizer: Any, mask_id: int,
                 context_length: int, path: str | None = None):
        param = next(network.parameters())
        eos = tokenizer.eos_token_id
        frame = ((int(eos),), (int(eos),)) if eos is not None else ((), ())
        specials = {int(i) for i in tokenizer.all_special_ids if i is not None} | {int(mask_id)}
        super().__init__(name, tokenizer, mask_id=mask_id, vocab_size=network_vocab(network),
                         context_length=context_length, device=param.device, dtype=param.dtype, path=path,
                         special_ids=frozenset(specials), frame=frame, family=self.FAMILY)
        self.network = network.eval()

    def sigma(self, ids: torch.Tensor) -> torch.Tensor:
        """The noise level each canvas is conditioned on: ids [L] -> float32 [1],
        ids [B, L] -> float32 [B]."""
        raise NotImplementedError

    def _fractions(self, ids: torch.Tensor) -> list[float]:
        """The masked fraction of each canvas of ids [L] or [B, L]."""
        rows = ids if ids.dim() == 2 else ids.unsqueeze(0)
        return ((rows == self.mask_id).sum(dim=1).double() / max(1, rows.shape[1])).tolist()

    def _sampling_logits(self, out: torch.Tensor, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """out: this adapter's own float32 [B, P, V] (may be changed in place);
        ids [B, L]; positions [P]."""
        raise NotImplementedError

    @torch.inference_mode()
    def logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ids: LongTensor [L] or [B, L] (canvases of one layout); positions:
        LongTensor [P] -> float32 [P, V] (or [B, P, V])."""
        batch = ids if ids.dim() == 2 else ids.unsqueeze(0)
        out = self.network(batch, self.sigma(batch).to(self.device), positions)
        out = self._sampling_logits(out.float(), batch, positions)
        return out if ids.dim() == 2 else out[0]

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, positions: torch.Tensor):
        """The refresh of the dual cache: the plain forward pass over ids [B, L]
        that also keeps every layer's keys and values. Returns (float32
        [B, P, V] at positions [P], the kvcache.DualCache)."""
        step = CacheStep(DualCache(), record=True)
        out = self.network(ids, self.sigma(ids).to(self.device), positions, cache=step)
        return self._sampling_logits(out.float(), ids, positions), step.cache

    @torch.inference_mode()
    def logits_cached(self, ids: torch.Tensor, block: torch.Tensor, positions: torch.Tensor, cache) -> torch.Tensor:
        """A cached step: only the canvas positions ``block`` [K] run, at their
        rotary positions, conditioned on the canvas's sigma now, attending to
        ``cache`` (their own entries are overwritten). ids [B, L]; positions [P]
        within block. Returns float32 [B, P, V]."""
        run = run_positions(block, positions, 0, ids.shape[1])
        rows = torch.searchsorted(run, positions)
        out = self.network(ids[:, run], self.sigma(ids).to(self.device), rows, at=run,
                           cache=CacheStep(cache, run=run))
        return self._sampling_logits(out.float(), ids, positions)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device} {self.dtype}>"


def network_vocab(network: torch.nn.Module) -> int:
    dit = getattr(network, "backbone", network)
    return dit.shape.vocab_size


def build_dit(name: str, factory, folder: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Build a DiT family's network on the meta device and stream the
    safetensors checkpoint in ``folder`` into it (engine.models.native.build_network:
    names and shapes checked, no second copy). The stored rotary frequencies
    are then re-read in float32: cast to bf16 they would misplace far positions."""
    from .native import build_network
    from .weights import checkpoint_tensors, iter_tensors

    try:
        network = build_network(factory, folder, device, dtype)
        stored = {k: v for k, v in checkpoint_tensors(folder).items() if k.endswith("rotary_emb.inv_freq")}
        for key, value in iter_tensors(stored):
            owner = network.get_submodule(key.rpartition(".")[0])
            owner._buffers["inv_freq"] = value.float().to(device)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{name}: {exc}") from None
    return network
