"""The model families Lacuna runs with its own forward pass, one record each.

Torch-free: the fit check, the catalog and the app read this at start-up
without importing torch. What a family is lives here once: how its
config.json is recognised, its config class and network module (import
paths, imported only when used), its logit shift, which Linear layers 8/4-bit
loading quantises, and the capabilities its adapter declares. The loader
(engine.models.loader), the fit check (engine.hub.fit), the catalog
(engine.hub.catalog) and the app (app.workers.model) all read it.

Adding a family: write engine/models/<name>.py (the network with its official
tensor names and ``load(name, path, config, device, dtype, quantization)``),
its config class on engine.models.configs.ModelConfig when the fit check is to
count it exactly, and one ``Family`` entry in ``FAMILIES`` below, in the
order detection should try it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# transformers' masked LMs, which run through engine.models.masked_lm: model_type -> family
TRANSFORMERS_FAMILIES = {
    "modernbert": "modernbert",
    **{t: "bert" for t in ("bert", "roberta", "distilbert", "xlm-roberta", "electra", "deberta", "deberta-v2")},
}


def _model_type(config: dict[str, Any]) -> str:
    return str(config.get("model_type", "")).lower()


def _architectures(config: dict[str, Any]) -> list[str]:
    archs = config.get("architectures")
    return [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []


_MOE_KEYS = ("num_experts", "expert_intermediate_size", "moe_layer_freq")


def _is_llada_moe(config: dict[str, Any]) -> bool:
    # Released with model_type "llada" (as dense LLaDA): the architecture or the experts' keys tell them apart.
    model_type = _model_type(config)
    if any(a.startswith("LLaDAMoE") for a in _architectures(config)):
        return True
    if model_type in ("lladamoe", "llada_moe", "llada-moe"):
        return True
    # a key present but null (a dense config written by a tool that lists every field) is no expert
    return model_type == "llada" and any(config.get(key) is not None for key in _MOE_KEYS)


def _is_named(model_type: str, architecture: str) -> Callable[[dict[str, Any]], bool]:
    def detect(config: dict[str, Any]) -> bool:
        mt = _model_type(config)
        return mt == model_type or (not mt and architecture in _architectures(config))
    return detect


_is_dream = _is_named("dream", "DreamModel")


def _is_dreamon(config: dict[str, Any]) -> bool:
    # DreamOn is Dream's config plus expand_token_id (engine.dreamon.is_dreamon, which imports
    # torch; tests/engine/test_dreamon_api.py holds the two to the same answer).
    return _is_dream(config) and config.get("expand_token_id") is not None


def _is_sedd(config: dict[str, Any]) -> bool:
    # SEDD ships its hydra training config: "model", "graph" and "noise" sections, no model_type.
    model = config.get("model")
    return isinstance(model, dict) and isinstance(config.get("graph"), dict) and "hidden_size" in model


@dataclass(frozen=True)
class Family:
    """One native family.

    ``detect(config) -> bool`` on a config.json dict; ``module``: the
    engine.models module with the network and ``load``; ``config_class``:
    "module:Class" of its ModelConfig (None: the fit check sizes it from the
    DiT's shape instead); ``quantized``: the last names of the Linear layers
    8/4-bit loading quantises, inside ``scope`` (".blocks." / ".layers.");
    every other parameter stays 16-bit. ``context``: the most tokens the
    engine feeds it when its config allows more (None: the config's).
    The capabilities are the adapter's (engine.models.base.ModelAdapter).
    """

    name: str
    detect: Callable[[dict[str, Any]], bool]
    module: str
    config_class: str | None = None
    logit_shift: int = 0
    quantized: tuple[str, ...] = ()
    scope: str = ""
    context: int | None = None
    batches: bool = True
    cache_modes: tuple[str, ...] = ("dual",)
    default_cache: str = "dual"
    scores: bool = False
    grows_canvas: bool = False

    def quantizes(self, name: str) -> bool:
        """True for a parameter-holding module (dotted name) that 8/4-bit loading quantises."""
        return bool(self.quantized) and self.scope in f".{name}." and name.rsplit(".", 1)[-1] in self.quantized

    def load_module(self):
        """The family's module (imports torch)."""
        return importlib.import_module(f"{__package__}.{self.module}")

    def config_type(self):
        """The family's ModelConfig class, or None."""
        if self.config_class is None:
            return None
        module, _, cls = self.config_class.partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_SWIGLU = ("gate_proj", "up_proj", "down_proj")

# Tried in this order: LLaDA-MoE before LLaDA, whose model_type it shares, and DreamOn
# before Dream (a Dream config with expand_token_id).
FAMILIES: tuple[Family, ...] = (
    Family("llada_moe", _is_llada_moe, "llada_moe", "llada_moe_config:LLaDAMoEConfig",
           quantized=_ATTENTION + _SWIGLU, scope=".layers."),
    Family("llada", _is_named("llada", "LLaDAModelLM"), "llada", "llada_config:LLaDAConfig",
           quantized=("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"), scope=".blocks."),
    # DreamOn (engine.dreamon): Dream's network and loader; its canvas changes length every
    # step, so no batch of candidates shares a layout and no dual cache stays valid.
    Family("dreamon", _is_dreamon, "dream", "dream_config:DreamConfig",
           logit_shift=1, quantized=_ATTENTION + _SWIGLU, scope=".layers.", context=2048,
           batches=False, cache_modes=(), default_cache="none", grows_canvas=True),
    Family("dream", _is_dream, "dream", "dream_config:DreamConfig",
           logit_shift=1, quantized=_ATTENTION + _SWIGLU, scope=".layers.", context=2048),
    Family("mdlm", lambda c: _model_type(c) == "mdlm", "mdlm"),
    Family("sedd", _is_sedd, "sedd", scores=True),
)
BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}


def detect(config: Any) -> Family | None:
    """The native family whose detector accepts this config.json dict, or None."""
    if not isinstance(config, dict):
        return None
    return next((f for f in FAMILIES if f.detect(config)), None)


def family_name(config: Any) -> str:
    """A family name for a config.json dict: a native family, a transformers masked LM's
    ("bert", "modernbert"), else the config's own model_type, else "unknown" (also for a
    model_type that names a native family whose detector refuses the config: e.g. "sedd"
    without SEDD's sections, which no loader could read)."""
    native = detect(config)
    if native is not None:
        return native.name
    if not isinstance(config, dict):
        return "unknown"
    model_type = _model_type(config)
    if model_type in BY_NAME:
        return "unknown"
    return TRANSFORMERS_FAMILIES.get(model_type, model_type or "unknown")


def quantizing() -> tuple[str, ...]:
    """The families 8/4-bit loading can quantise."""
    return tuple(f.name for f in FAMILIES if f.quantized)
