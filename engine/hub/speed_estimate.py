"""Expected seconds per fill on this machine, before a model is downloaded.

One fill of the editor's default kind (a ``hole``-token span in a ``context``-token
document, ``steps`` denoising steps, one block) costs, in matmul FLOPs
(the C ~ 2N FLOPs per token of Kaplan et al. 2020, "Scaling Laws for Neural
Language Models", section 2.1, plus attention's 4 L^2 d per layer and the
vocabulary head at the positions the sampler decides):

    plain loop       steps x forward(context tokens, heads at the hole)
    dual cache       forward(context) once per block + steps x forward(hole tokens
                     attending to the context), as Fast-dLLM's dual cache runs

A machine's speed is one number, measured once: the bundled starter's default
fill is timed and its FLOPs by the same formula give the machine's effective
FLOP/s (recorded per machine in the user data folder, ``speed.json``). Any
model's estimate is its FLOPs divided by that rate: the starter's own estimate
is its measurement, and larger models are assumed compute-bound at the same
efficiency (on a CPU their larger matrices run at least as efficiently; memory
bandwidth is not modelled). The figure is an estimate and is labelled so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..models import families
from . import store

SPEED_FILE = "speed.json"
# The families whose adapter runs the dual context cache by default, read from their records
# (engine.models.families, which the adapters take their defaults from): LLaDA, Dream,
# LLaDA-MoE, MDLM and SEDD (docs/benchmarks.md, "A real pretrained model on a laptop CPU",
# gives the cache's agreement with the plain loop for the last two). The others run the plain loop.
DUAL_CACHE_FAMILIES = frozenset(f.name for f in families.FAMILIES if f.default_cache == "dual")
DEFAULT_CONTEXT = 512   # tokens of document the model sees in a typical fill
DEFAULT_HOLE = 32       # tokens masked: a sentence
DEFAULT_STEPS = 16      # the editor's default steps


@dataclass(frozen=True)
class Cost:
    """What one fill asks of a network: parameters that run per token (the active ones, for a
    mixture of experts), its width, depth and vocabulary."""

    active_parameters: int   # parameters each token passes through, embeddings excluded
    hidden: int
    layers: int
    vocab: int

    def forward_flops(self, tokens: int, attended: int, heads: int) -> float:
        """FLOPs of one forward pass of ``tokens`` positions attending to ``attended`` ones,
        with the vocabulary head at ``heads`` positions."""
        return (2.0 * self.active_parameters * tokens + 4.0 * self.layers * tokens * attended * self.hidden
                + 2.0 * self.hidden * self.vocab * heads)

    def fill_flops(self, context: int = DEFAULT_CONTEXT, hole: int = DEFAULT_HOLE, steps: int = DEFAULT_STEPS,
                   cached: bool = True) -> float:
        """FLOPs of one fill (one block; ``cached``: the dual context cache)."""
        if cached:
            return self.forward_flops(context, context, hole) + steps * self.forward_flops(hole, context, hole)
        return steps * self.forward_flops(context, context, hole)


def cost_from_shape(shape: dict[str, Any], parameters: int) -> Cost | None:
    """The Cost of a model from its config or catalog shape (official key names of LLaDA,
    Dream, LLaDA-MoE, MDLM/SEDD, BERT) and its parameter count; None when the shape
    lacks a width, depth or vocabulary."""
    hidden = shape.get("d_model") or shape.get("hidden_size") or shape.get("hidden_dim") or shape.get("n_embd")
    layers = (shape.get("n_layers") or shape.get("num_hidden_layers") or shape.get("n_blocks")
              or shape.get("n_layer"))
    vocab = shape.get("embedding_size") or shape.get("vocab_size")
    if isinstance(shape.get("model"), dict) and isinstance(shape.get("tokens"), int):  # SEDD's hydra config
        model = shape["model"]
        hidden, layers, vocab = model.get("hidden_size"), model.get("n_blocks"), shape["tokens"] + 1
    if not (hidden and layers and vocab and parameters):
        return None
    hidden, layers, vocab = int(hidden), int(layers), int(vocab)
    tied = bool(shape.get("weight_tying") or shape.get("tie_word_embeddings"))
    active = int(parameters) - vocab * hidden * (1 if tied else 2)
    experts, per_token = shape.get("num_experts"), shape.get("num_experts_per_tok")
    if experts and per_token and shape.get("expert_intermediate_size"):
        freq = shape.get("moe_layer_freq") or [1] * layers
        idle = (int(experts) - int(per_token)) * 3 * hidden * int(shape["expert_intermediate_size"])
        active -= idle * sum(1 for f in freq if f)
    return Cost(max(active, 1), hidden, layers, vocab)


def machine_key() -> str:
    """The machine a speed was measured on: processor, cores, torch and Python (engine.bench's
    description) and torch's threads."""
    import torch

    from lacuna.engine.bench.overhead import machine

    return f"{machine()}, {torch.get_num_threads()} threads"


def measured_rate() -> float | None:
    """This machine's effective FLOP/s from an earlier calibration, or None."""
    data = store.read(SPEED_FILE, {})
    entry = data.get(machine_key()) if isinstance(data, dict) else None
    rate = entry.get("flops_per_s") if isinstance(entry, dict) else None
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def calibrate(repeats: int = 3) -> float:
    """Time the starter's default fill on the CPU (median of ``repeats``, after a warm-up) and
    record this machine's effective FLOP/s; returns it. Takes about a second."""
    import statistics
    import time

    from lacuna.engine import InfillRequest, Span, infill, load_model

    model = load_model("starter", device="cpu")
    words = " ".join(f"word{i % 97}" for i in range(400))
    request = InfillRequest(words, (Span(len(words) // 2, len(words) // 2, length=DEFAULT_HOLE),),
                            steps=DEFAULT_STEPS, seed=0)
    infill(model, request)  # warm-up: first-call allocations and kernels
    times, tokens = [], 0
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = infill(model, request)
        times.append(time.perf_counter() - start)
        tokens = len(model.tokenizer(result.text, add_special_tokens=False)["input_ids"])
    config = json.loads((model_path("starter") / "config.json").read_text(encoding="utf-8"))
    parameters = sum(p.numel() for p in model.network.parameters())
    cost = cost_from_shape(config, parameters)
    context = min(tokens, model.context_length)
    rate = cost.fill_flops(context, DEFAULT_HOLE, DEFAULT_STEPS, cached=True) / statistics.median(times)

    def change(data: Any) -> Any:
        data = data if isinstance(data, dict) else {}
        data[machine_key()] = {"flops_per_s": rate, "seconds": round(statistics.median(times), 4),
                               "context": context}
        return data

    store.update(SPEED_FILE, {}, change)
    return rate


def model_path(name: str):
    from lacuna.engine.models.loader import resolve_path

    return resolve_path(name)


def seconds_per_fill(cost: Cost, rate: float, context: int = DEFAULT_CONTEXT, hole: int = DEFAULT_HOLE,
                     steps: int = DEFAULT_STEPS, cached: bool = True) -> float:
    """Expected seconds of one fill at ``rate`` FLOP/s (see the module's docstring)."""
    return cost.fill_flops(context, hole, steps, cached) / rate


def entry_seconds(entry: dict[str, Any], rate: float, context: int = DEFAULT_CONTEXT) -> float | None:
    """Expected seconds per default fill of a catalog entry at ``rate`` FLOP/s (None: shape unknown).
    ``context`` is capped by the model's own context."""
    shape, parameters = entry.get("shape") or {}, entry.get("parameters") or 0
    if not shape or not parameters:
        shape, parameters = _local_shape(entry) or (shape, parameters)
    cost = cost_from_shape(shape, parameters)
    if cost is None:
        return None
    if entry.get("context_length"):
        context = min(context, int(entry["context_length"]))
    return seconds_per_fill(cost, rate, context, cached=entry.get("family") in DUAL_CACHE_FAMILIES)


def _local_shape(entry: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """(config, parameters counted from the safetensors headers) of a bundled or downloaded model."""
    from pathlib import Path

    from lacuna.engine import resources

    from . import local_snapshot
    from .fit import count_safetensors_parameters

    if entry.get("bundled"):
        folder = resources.path(entry["bundled"])
    else:
        folder = local_snapshot(entry.get("id", "")) if entry.get("id") else None
    if folder is None or not (Path(folder) / "config.json").is_file():
        return None
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    parameters = count_safetensors_parameters(Path(folder))
    return (config, parameters) if isinstance(config, dict) and parameters else None
