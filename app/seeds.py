"""What a seed means: whether it changes a fill, what else the fill depends on,
and how candidates come to differ.

The engine draws from its seeded torch.Generator in exactly these places
(engine/sampler.py, engine/select.py, engine/canvas.py): Gumbel-max token
sampling when the temperature is above 0; the commit rule of every sampling
policy that says so (engine.policies: ``uses_seed``, such as the random commit
order and the Bernoulli unmasking of the ancestral policies); and which tokens
an edit (strength < 1) re-masks. Anything else is greedy: the
same request gives the same fill whatever the seed, so the window never shows
such a seed as if it mattered (tests/app/test_seeds.py checks this list
against the engine with a real model).

Several candidates of one greedy request would all be the same fill, so the
candidates after the first, and Regenerate, sample at VARIETY_TEMPERATURE
instead; the first candidate of an Infill stays the greedy fill.
"""
from __future__ import annotations

from dataclasses import dataclass

from lacuna.engine.policies import POLICIES

VARIETY_TEMPERATURE = 0.8  # softmax(logits / 0.8): varied fills that still read well


def seed_matters(request) -> bool:
    """True when the fill of ``request`` (an InfillRequest) depends on its seed."""
    return (request.temperature > 0 or POLICIES[request.sampler].uses_seed
            or any(s.strength < 1 for s in request.spans))


def device_kind(device: str) -> str:
    """"cuda:0" -> "cuda": the kind of device decides the kernels, hence the numbers."""
    return str(device).split(":", 1)[0] or "cpu"


@dataclass(frozen=True)
class SeedRecord:
    """Everything a fill depends on besides the text and the settings.

    Same model (and revision), dtype, device kind, request and seed: the same
    fill. bfloat16 and float32 round differently, and so may a GPU and a CPU,
    so a seed reproduces a fill only on the model, dtype and device kind it
    was made with.
    """

    seed: int
    used: bool  # False: a greedy fill, the seed changed nothing
    temperature: float
    model: str = ""
    revision: str = ""  # Hub commit, when known
    dtype: str = ""
    device: str = ""  # "cpu", "cuda", "mps"

    def label(self) -> str:
        if not self.used:
            return "greedy"
        return f"seed {self.seed}"

    def describe(self) -> str:
        """One line for a tooltip: what reproduces this fill."""
        where = " · ".join(x for x in (self.model, self.revision[:10], self.dtype, self.device) if x)
        if not self.used:
            return f"Greedy fill: the same on every run with {where}; no seed involved."
        return (f"Seed {self.seed} at temperature {self.temperature:g} on {where}: "
                "reusing it on this model and dtype gives this fill again.")

    def same_setup(self, info) -> bool:
        """Whether a ModelInfo is the setup this record was made on."""
        return (info is not None and info.name == self.model and (info.revision or "") == self.revision
                and info.dtype == self.dtype and device_kind(info.device) == self.device)
