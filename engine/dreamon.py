"""DreamOn's variable-length infilling loop, run natively on Lacuna's Dream network.

DreamOn (Wu et al. 2026, "DreamOn: Diffusion Language Models For Code
Infilling Beyond Fixed-size Canvas", arXiv:2602.01326; Dream-org/DreamOn-v0-7B)
is Dream-v0 fine-tuned with two length tokens a masked position may be
decided as:

* ``<|expand|>`` (id 151667 in the 7B model, the first id after Dream's
  151667-token vocabulary; ``expand_token_id`` in its config.json): the
  position becomes two masks, so the canvas grows by one;
* ``<|delete|>``, which the released code spells as the end-of-text token
  (``<|endoftext|>``, the config's ``eos_token_id``, 151643): the position is
  removed, so the canvas shrinks by one. DreamOn's training pads the middle
  with EOS tokens and its generation config reads ``delete_token_id`` from
  ``eos_token_id`` (DreamOnGenerationConfig.__init__).

The loop follows ``DreamOnGenerationMixin._sample`` in the checkpoint's
generation_utils.py (the version DreamLM/DreamOn's README drives through
``model.diffusion_generate``); per step:

1. the canvas is the prompt's window (prefix, current masks, suffix); the
   network sees exactly that window (upstream pads to ``max_length`` and masks
   the rest out of attention, which gives the same rows);
2. logits at each mask are read with Dream's shift (row i - 1 predicts i),
   in float32 (upstream samples in the model's dtype, bfloat16 for the 7B
   model; in float32 the two agree token for token);
   ``<|expand|>`` is blocked (-1e9) once the canvas is ``max_length`` long or
   the expansion budget is spent;
3. every mask proposes a token (``sample_tokens``: greedy or tempered with
   top-p/top-k) and a confidence (``maskgit_plus``: its probability,
   ``topk_margin``: top-1 minus top-2, ``entropy``: negative entropy); the
   ``number_transfer_tokens`` most confident (or, with ``alg_temp``, a draw
   from their softmax) are committed;
4. with ``pad_delete_to_right``, every mask from the first delete token on
   becomes a delete too; each position that was a mask at the start of the
   step and now holds a delete is removed;
5. each ``<|expand|>`` becomes two masks (right to left), spending one unit
   of the expansion budget.

The run stops when no mask is left, or after ``2 * max_gen_len + 2 *
expand_budget`` steps (upstream's loop bound), where ``max_length =
max_new_tokens + len(prompt) - masks``, ``max_gen_len = max_length -
prefix_len`` and the budget defaults to ``2 * max_gen_len``.

This departs from upstream only on inputs upstream mishandles. With
``number_transfer_tokens > 1`` (DreamOn tested 1) several expansions in one step could
overshoot the budget (upstream then stops checking it, as it tests ``== 0``)
or ``max_length`` (upstream then cuts the suffix); here an expansion past
either cap leaves its position a single mask. ``pad_delete_to_right`` looks
for the first delete from the span on (upstream scans the whole canvas, so an
end-of-text token in the prefix, such as Dream's usual start token 151643,
would turn the whole span into deletes; DreamOn's README starts its prompt
with ``<|beginoftext|>`` instead). A prompt holding the expand id outside its
masks is refused (upstream would expand it).

Randomness comes only from ``generator`` (upstream draws from torch's global
generator; seeding both alike gives the same draws). Nothing here imports Qt;
the per-step records are plain tuples, safe to hand to another thread.
"""
from __future__ import annotations

import math
import numbers
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from .errors import Cancelled, InputError, OutOfMemory

ALGORITHMS = ("maskgit_plus", "topk_margin", "entropy")
# DreamOn-v0-7B's ids (its added_tokens.json / config.json); a checkpoint's own
# config overrides them through DreamOnTokens.from_config.
EXPAND_TOKEN_ID = 151667
_BLOCK = 1e9  # what upstream subtracts from a blocked logit


@dataclass(frozen=True)
class DreamOnTokens:
    """The ids the loop acts on: ``mask_id`` (``<|mask|>``), ``expand_id``
    (``<|expand|>``) and ``delete_id`` (the end-of-text token)."""

    mask_id: int
    expand_id: int
    delete_id: int

    def __post_init__(self) -> None:
        ids = (self.mask_id, self.expand_id, self.delete_id)
        if len(set(ids)) != 3 or any(not _is_int(i) or i < 0 for i in ids):
            raise InputError(
                f"DreamOn needs three distinct non-negative token ids for mask, expand and delete, got {ids}")

    @classmethod
    def from_config(cls, config: dict) -> "DreamOnTokens":
        """From a DreamOn config.json dict: ``mask_token_id``, ``expand_token_id``
        (default 151667) and ``eos_token_id`` as the delete token, as upstream's
        generation config reads them. InputError when one is missing."""
        try:
            return cls(int(config["mask_token_id"]), int(config.get("expand_token_id", EXPAND_TOKEN_ID)),
                       int(config["eos_token_id"]))
        except (KeyError, TypeError, ValueError):
            raise InputError(
                "this DreamOn config.json lacks mask_token_id or eos_token_id: "
                "use the config.json shipped with the checkpoint") from None


def is_dreamon(config: dict) -> bool:
    """True for a Dream-architecture config that carries ``expand_token_id`` (DreamOn's marker)."""
    model_type = str(config.get("model_type", "")).lower()
    dream = model_type == "dream" or (not model_type and "DreamModel" in (config.get("architectures") or []))
    return dream and config.get("expand_token_id") is not None


@dataclass(frozen=True)
class DreamOnSettings:
    """Upstream's ``diffusion_generate`` arguments, same names.

    ``max_new_tokens``: the most tokens the middle may hold (the initial masks
    count; >= their number; DreamOn's README always sets it). ``expand_budget``:
    the most expansions (None: ``2 * max_gen_len``). ``top_p`` None or 1 and
    ``top_k`` None are off.

    The defaults are what upstream actually runs with when an argument is left
    out: its generation config is built from the model config
    (``DreamOnGenerationConfig.from_model_config``), and under transformers
    4.46.2 (DreamOn's pin) that config carries PretrainedConfig's generation
    defaults, temperature 1.0, top_k 50 and top_p 1.0, which override the
    mixin's own (temperature 0). DreamOn's README call passes temperature=0.2,
    top_p=0.9, alg="entropy", alg_temp=0, so top_k 50 applies there too.
    """

    max_new_tokens: int
    alg: str = "entropy"
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = 50
    alg_temp: float | None = None
    number_transfer_tokens: int = 1
    expand_budget: int | None = None
    pad_delete_to_right: bool = False

    def __post_init__(self) -> None:
        if self.alg not in ALGORITHMS:
            raise InputError(f"unknown DreamOn algorithm {self.alg!r}; choose one of: {', '.join(ALGORITHMS)}")
        _positive_int("max_new_tokens", self.max_new_tokens)
        _positive_int("number_transfer_tokens", self.number_transfer_tokens)
        if self.top_k is not None:
            _positive_int("top_k", self.top_k)
        if self.expand_budget is not None and (not _is_int(self.expand_budget) or self.expand_budget < 0):
            raise InputError(f"expand_budget must be an integer >= 0 or None, got {self.expand_budget!r}")
        if not (_is_real(self.temperature) and self.temperature >= 0):
            raise InputError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if self.top_p is not None and not (_is_real(self.top_p) and 0 < self.top_p <= 1):
            raise InputError(f"top_p must be in (0, 1] or None, got {self.top_p!r}")
        if self.alg_temp is not None and not (_is_real(self.alg_temp) and self.alg_temp >= 0):
            raise InputError(f"alg_temp must be a finite number >= 0 or None, got {self.alg_temp!r}")


@dataclass(frozen=True)
class CanvasStep:
    """The canvas after one denoising step (one network call).

    ``ids``: the whole window, prefix + middle + suffix, after this step's
    deletions and expansions (its length is the canvas length).
    ``committed``: (position, token id) pairs decided this step, positions as
    the canvas stood at the start of the step (a committed delete or expand is
    listed here too). ``probability``: the model's probability of each committed
    token (after temperature, top-p and top-k), in ``committed``'s order.
    ``deleted``: positions removed, in that same frame. ``expanded``: positions
    that became two masks, in the frame after the deletions. ``expand_budget``:
    expansions still allowed.
    """

    step: int
    ids: tuple[int, ...]
    committed: tuple[tuple[int, int], ...]
    probability: tuple[float, ...]
    deleted: tuple[int, ...]
    expanded: tuple[int, ...]
    expand_budget: int
    masked: int

    @property
    def length(self) -> int:
        return len(self.ids)

    def middle(self, prefix_len: int, suffix_len: int) -> tuple[int, ...]:
        """The span being filled in this canvas (the prompt's prefix and suffix never change)."""
        return self.ids[prefix_len : len(self.ids) - suffix_len]


@dataclass(frozen=True)
class DreamOnResult:
    """A finished (or step-capped) run. ``ids`` is the final canvas;
    ``middle`` the filled span (``ids[prefix_len : len(ids) - suffix_len]``);
    ``steps`` one record per network call; ``finished`` False when the step
    cap ended the run with masks left."""

    ids: tuple[int, ...]
    prefix_len: int
    suffix_len: int
    steps: tuple[CanvasStep, ...]
    finished: bool

    @property
    def middle(self) -> tuple[int, ...]:
        return self.ids[self.prefix_len : len(self.ids) - self.suffix_len]

    @property
    def nfe(self) -> int:
        return len(self.steps)


LogitsHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def stream_dreamon(network, input_ids: Sequence[int], tokens: DreamOnTokens, settings: DreamOnSettings,
                   generator: torch.Generator | None = None, cancel: threading.Event | None = None,
                   logits_hook: LogitsHook | None = None, context: int | None = None) -> Iterator[CanvasStep]:
    """Run DreamOn's loop on ``input_ids`` (prefix, one run of masks, suffix),
    yielding a CanvasStep after every network call.

    network: engine.models.dream.DreamNetwork (any module mapping LongTensor
    [1, L] and ``logits_at`` rows to unshifted logits [1, P, V]).
    logits_hook(logits [M, V] float32, canvas [L], mask positions [M]) -> logits:
    Lacuna's own constraints, applied before DreamOn's expand block (None:
    none, exactly upstream). context: the most positions the network may see
    (None: no limit). Raises InputError for a prompt DreamOn cannot run,
    Cancelled when ``cancel`` is set between steps.
    """
    ids = [int(t) for t in input_ids]
    positions = [i for i, t in enumerate(ids) if t == tokens.mask_id]
    if not positions:
        raise InputError("the DreamOn prompt has no mask token: mark the span to fill")
    prefix_len, masks = positions[0], len(positions)
    if positions[-1] - prefix_len + 1 != masks:
        raise InputError("DreamOn fills one span: its masks must be contiguous")
    if tokens.expand_id in ids:
        raise InputError("the DreamOn prompt contains the <|expand|> token outside the span: remove it from the text")
    if settings.max_new_tokens < masks:
        raise InputError(
            f"max_new_tokens ({settings.max_new_tokens}) is below the {masks} masks of the span: "
            "raise it to at least the number of masks")
    max_length = settings.max_new_tokens + len(ids) - masks
    if context is not None and max_length > context:
        raise InputError(
            f"the DreamOn canvas may grow to {max_length} tokens, past the model's context of {context}: "
            "lower max_new_tokens or shorten the text around the span")
    max_gen_len = max_length - prefix_len
    budget = 2 * max_gen_len if settings.expand_budget is None else settings.expand_budget
    step_cap = 2 * max_gen_len + 2 * budget
    device = _device_of(network)
    canvas = torch.tensor(ids, dtype=torch.long, device=device)

    for step in range(1, step_cap + 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("the DreamOn infill was stopped before it finished")
        masked = (canvas == tokens.mask_id).nonzero().squeeze(1)
        if masked.numel() == 0:
            return
        try:
            logits = _masked_logits(network, canvas, masked)
        except torch.OutOfMemoryError as exc:
            raise OutOfMemory(
                f"DreamOn ran out of memory on {device} with a canvas of {canvas.numel()} tokens; "
                "lower max_new_tokens, shorten the text around the span, or use a smaller dtype") from exc
        if max(tokens.expand_id, tokens.delete_id) >= logits.shape[-1]:
            raise InputError(
                f"the network's head has {logits.shape[-1]} rows, too few for DreamOn's expand id "
                f"{tokens.expand_id}: load a DreamOn checkpoint (its config.json names expand_token_id)")
        if logits_hook is not None:
            logits = logits_hook(logits, canvas, masked)
        if canvas.numel() >= max_length or budget <= 0:
            logits[:, tokens.expand_id] -= _BLOCK
        confidence, proposal, chance = _propose(logits, settings, generator)
        chosen = _choose(confidence, settings, generator)
        chosen = chosen[torch.argsort(masked[chosen])]  # document order for the records
        picked = masked[chosen]
        canvas[picked] = proposal[chosen]
        committed = tuple(zip(picked.tolist(), proposal[chosen].tolist()))

        if settings.pad_delete_to_right:
            deletes = (canvas[prefix_len:] == tokens.delete_id).nonzero()
            if deletes.numel():
                first = prefix_len + int(deletes[0, 0])
                canvas[masked[masked >= first]] = tokens.delete_id
        # Only positions that were masks when the step began are removed: a
        # delete token in the prompt (e.g. a final EOS) stays.
        gone = masked[canvas[masked] == tokens.delete_id]
        if gone.numel():
            keep = torch.ones_like(canvas, dtype=torch.bool)
            keep[gone] = False
            canvas = canvas[keep]
        canvas, expanded, budget = _expand(canvas, tokens, budget, max_length)
        yield CanvasStep(
            step=step, ids=tuple(canvas.tolist()), committed=committed,
            probability=tuple(chance[chosen].tolist()), deleted=tuple(gone.tolist()),
            expanded=expanded, expand_budget=budget, masked=int((canvas == tokens.mask_id).sum()),
        )


def dreamon_generate(network, input_ids: Sequence[int], tokens: DreamOnTokens, settings: DreamOnSettings,
                     generator: torch.Generator | None = None, cancel: threading.Event | None = None,
                     logits_hook: LogitsHook | None = None, context: int | None = None) -> DreamOnResult:
    """Run :func:`stream_dreamon` to its end and collect the records (same arguments and errors)."""
    ids = tuple(int(t) for t in input_ids)
    steps = tuple(stream_dreamon(network, ids, tokens, settings, generator, cancel, logits_hook, context))
    final = steps[-1].ids if steps else ids
    prefix_len = ids.index(tokens.mask_id)
    suffix_len = len(ids) - prefix_len - ids.count(tokens.mask_id)
    return DreamOnResult(ids=final, prefix_len=prefix_len, suffix_len=suffix_len, steps=steps,
                         finished=tokens.mask_id not in final)


@torch.no_grad()
def _masked_logits(network, canvas: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """float32 [M, V]: Dream's shifted logits at the masked positions. Upstream
    shifts with cat([logits[:, :1], logits[:, :-1]]), so position 0 reads row 0."""
    rows = (masked - 1).clamp(min=0)
    return network(canvas.unsqueeze(0), logits_at=rows)[0].float()


def _propose(logits: torch.Tensor, s: DreamOnSettings, gen: torch.Generator | None):
    """(confidence [M], token [M], its probability [M]) as upstream's ``sample_tokens``."""
    if s.temperature > 0:
        logits = logits / s.temperature
    if s.top_p is not None and s.top_p < 1:
        logits = _nucleus(logits, s.top_p)
    if s.top_k is not None:
        logits = _top_k(logits, s.top_k)
    probs = torch.softmax(logits, dim=-1)
    if s.temperature > 0:
        # torch.distributions.Categorical renormalises, then draws one multinomial sample per row.
        token = torch.multinomial(probs / probs.sum(-1, keepdim=True), 1, True, generator=gen).squeeze(-1)
        confidence = probs.gather(-1, token.unsqueeze(-1)).squeeze(-1)
    else:
        confidence, token = probs.max(dim=-1)
    chance = confidence
    if s.alg == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        confidence = top2[:, 0] - top2[:, 1]
    elif s.alg == "entropy":
        confidence = (probs * torch.log(probs + 1e-10)).sum(-1)
    return confidence, token, chance


def _choose(confidence: torch.Tensor, s: DreamOnSettings, gen: torch.Generator | None) -> torch.Tensor:
    """Indices into the masks of the positions committed this step."""
    k = min(s.number_transfer_tokens, confidence.numel())
    if not s.alg_temp:
        return torch.topk(confidence, k).indices
    weights = F.softmax(confidence / s.alg_temp, dim=-1)
    return torch.multinomial(weights, num_samples=k, generator=gen)


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of top tokens whose probability reaches ``top_p`` (the first always)."""
    ordered, order = torch.sort(logits, descending=True)
    beyond = torch.cumsum(F.softmax(ordered, dim=-1), dim=-1) > top_p
    beyond = torch.cat([torch.zeros_like(beyond[..., :1]), beyond[..., :-1]], dim=-1)
    drop = torch.zeros_like(beyond).scatter(-1, order, beyond)
    return logits.masked_fill(drop, torch.finfo(logits.dtype).min)


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    kth = torch.topk(logits, min(k, logits.shape[-1])).values[..., -1:]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def _expand(canvas: torch.Tensor, tokens: DreamOnTokens, budget: int, max_length: int):
    """Each expand token -> two masks, right to left, within the budget and ``max_length``."""
    at = (canvas == tokens.expand_id).nonzero().squeeze(1).tolist()
    if not at:
        return canvas, (), budget
    pieces, end, done = [], canvas.numel(), []
    length = canvas.numel()
    mask = canvas.new_tensor([tokens.mask_id])
    for i in reversed(at):
        pieces.append(canvas[i + 1 : end])
        if budget > 0 and length < max_length:
            pieces.append(torch.cat([mask, mask]))
            budget, length = budget - 1, length + 1
            done.append(i)
        else:
            pieces.append(mask)  # over a cap: the position stays one mask
        end = i
    pieces.append(canvas[:end])
    return torch.cat(pieces[::-1]), tuple(sorted(done)), budget


def _device_of(network) -> torch.device:
    for p in network.parameters():
        return p.device
    return torch.device("cpu")


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _positive_int(name: str, v: object) -> None:
    if not _is_int(v) or v < 1:
        raise InputError(f"{name} must be a positive integer, got {v!r}")
