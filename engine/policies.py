"""Sampling policies: which still-masked tokens a denoising step commits.

One frozen record per policy, read everywhere a policy matters: the request
check (engine.types), the denoising loop (engine.sampler), the CLI, the
settings panel (app.settings) and the seed rule (app.seeds). A record holds
the policy's name and label, its commit rule, and the facts the loop and the
GUI need about it; nothing outside this module branches on a policy's name.

This module imports no torch (the GUI reads the registry at start-up); a rule
imports engine.select when it first runs, inside the sampler.

Adding a policy: write its rule (a function of a ``Step``) and add one
``Policy`` to POLICIES. Other axes of a run get their own ``Registry`` of
frozen records beside this one, read the same way: how long each mask is
(length policies, issue 23) and how the canvas is wrapped in a prompt
(instruction layouts, issue 24).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from . import schedules

if TYPE_CHECKING:
    import torch


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...


R = TypeVar("R", bound=_Named)


class Registry(Generic[R]):
    """Frozen records by name, in a fixed order; a record's ``aliases`` are
    older names that still find it (settings files, scripts)."""

    def __init__(self, records: Iterable[R]) -> None:
        self._records = tuple(records)
        self._by_name: dict[str, R] = {}
        for record in self._records:
            for name in (record.name, *record.aliases):
                if name in self._by_name:
                    raise ValueError(f"two records are called {name!r}")
                self._by_name[name] = record

    @property
    def names(self) -> tuple[str, ...]:
        """The current names, in order (aliases left out)."""
        return tuple(r.name for r in self._records)

    def find(self, name: object) -> R | None:
        """The record called ``name`` (its name or an alias), else None."""
        return self._by_name.get(name) if isinstance(name, str) else None

    def __getitem__(self, name: str) -> R:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return self.find(name) is not None

    def __iter__(self) -> Iterator[R]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


@dataclass(frozen=True)
class Step:
    """What a commit rule sees at one step of one candidate.

    Tensors are on the model's device, one row per slot of the current block
    that is still masked: ``probs`` [m, V] float32, the softmax of the
    constrained logits; ``confidence`` [m], p(x0) of the token drawn for each
    row; ``eligible`` BoolTensor [m], the rows the rule may commit. ``commit``
    is how many tokens the schedule commits now (schedules.commit_count);
    ``step`` counts from 0 within the block, of ``steps``; ``tau`` is the
    threshold (engine.sampler.resolve_threshold); ``generator`` is the
    candidate's seeded generator. ``reveal`` maps an expected number of
    reveals to per-row reveal chances [m] (SEDD's analytic step), or is None
    where the model gives no scores or the policy is not analytic.
    """

    probs: torch.Tensor
    confidence: torch.Tensor
    eligible: torch.Tensor
    commit: int
    step: int
    steps: int
    tau: float
    generator: torch.Generator
    reveal: Callable[[float], torch.Tensor] | None = None

    @property
    def rows(self) -> int:
        return int(self.confidence.numel())

    @property
    def steps_left(self) -> int:
        return self.steps - self.step


Rule = Callable[[Step], Any]  # -> LongTensor [c]: the rows to commit now


@dataclass(frozen=True)
class Policy:
    """A sampling policy.

    ``rule``: the rows to commit at a step (LongTensor [c] of row indices).
    ``caps_steps``: a block runs at most one step per masked token
    (schedules.steps_per_block's ``cap``); an uncapped policy runs every step
    asked for, some committing nothing. ``uses_seed``: the rule draws from the
    candidate's generator, so the seed changes the fill even at temperature 0.
    ``reuses_logits``: after a step that committed nothing the canvas is
    unchanged, so the next step reuses its logits instead of a forward pass
    (MDLM's ddpm_cache; exact because the models are not time-conditioned).
    ``analytic``: reveal chances come from the model's score mass where the
    model gives scores (``model.scores``, SEDD). ``uses_threshold``: the rule
    reads tau (``InfillRequest.threshold``). ``aliases``: older names.
    ``source``: where the rule comes from.
    """

    name: str
    label: str
    rule: Rule
    caps_steps: bool = True
    uses_seed: bool = False
    reuses_logits: bool = False
    analytic: bool = False
    uses_threshold: bool = False
    aliases: tuple[str, ...] = ()
    source: str = ""


def _select():
    # engine.select needs torch; the rules only run inside the sampler, where it is loaded.
    from . import select

    return select


def _most_confident(step: Step):
    return _select().pick_top(step.confidence, step.eligible, step.commit)


def _largest_margin(step: Step):
    sel = _select()
    return sel.pick_top(sel.margin(step.probs), step.eligible, step.commit)


def _lowest_entropy(step: Step):
    sel = _select()
    return sel.pick_top(sel.neg_entropy(step.probs), step.eligible, step.commit)


def _random_order(step: Step):
    sel = _select()
    scores = sel.random_scores(step.rows, step.generator, step.confidence.device)
    return sel.pick_top(scores, step.eligible, step.commit)


def _above_threshold(step: Step):
    return _select().pick_threshold(step.confidence, step.eligible, step.tau, at_least=step.commit)


def _ancestral(step: Step):
    p = schedules.unmask_probability(step.step, step.steps)
    if step.reveal is not None and step.steps_left > 1:
        p = step.reveal(step.rows * p)
    return _select().pick_bernoulli(step.eligible, p, step.generator)


_MDLM = "kuleshov-group/mdlm, diffusion.py: _ddpm_update and _ddpm_caching_update"

POLICIES: Registry[Policy] = Registry((
    Policy("low_confidence", "Confidence (most sure first)", _most_confident,
           source="LLaDA's generate.py, remasking='low_confidence'"),
    Policy("margin", "Margin (top-1 minus top-2)", _largest_margin,
           source="Dream's generation_utils.py, alg='topk_margin'"),
    Policy("entropy", "Entropy (least uncertain first)", _lowest_entropy,
           source="Dream's generation_utils.py, alg='entropy'"),
    Policy("random", "Random order", _random_order, uses_seed=True,
           source="LLaDA's generate.py, remasking='random'"),
    Policy("threshold", "Threshold (parallel above confidence)", _above_threshold, uses_threshold=True,
           source="Fast-dLLM's confidence-aware parallel decoding"),
    Policy("ancestral", "Ancestral (MDLM, unchanged steps reused)", _ancestral,
           caps_steps=False, uses_seed=True, reuses_logits=True, source=f"{_MDLM} (predictor ddpm_cache)"),
    Policy("ancestral_recompute", "Ancestral, every step recomputed (MDLM ddpm)", _ancestral,
           caps_steps=False, uses_seed=True, aliases=("ancestral_nocache",), source=f"{_MDLM} (predictor ddpm)"),
    Policy("ancestral_analytic", "Ancestral, analytic (SEDD Tweedie)", _ancestral,
           caps_steps=False, uses_seed=True, reuses_logits=True, analytic=True,
           source="louaaron/Score-Entropy-Discrete-Diffusion, sampling.AnalyticPredictor"),
))
