"""Official-style config.json dicts for the native families' config dataclasses."""
from __future__ import annotations

import dataclasses
from typing import Any


def official_config(config: Any, *defaults: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    """``defaults`` (in order), then the config's ``extra`` keys, then its fields, then
    ``fixed`` (e.g. architectures, model_type), as one key-sorted dict.

    ``auto_map`` is always dropped: Lacuna ships no modelling code beside the weights."""
    out: dict[str, Any] = {}
    for d in defaults:
        out.update(d)
    out.update({k: v for k, v in config.extra.items() if k != "auto_map"})
    for f in dataclasses.fields(config):
        if f.name != "extra":
            out[f.name] = getattr(config, f.name)
    out.update(fixed)
    return dict(sorted(out.items()))
