"""Run DreamOn's upstream generation code on the cases of tests/engine/test_dreamon_reference.py.

Regenerates the digests pinned in tests/engine/test_dreamon_reference.py (no upstream code is
committed: this script imports it from a scratch folder). Needs /tmp/dreamon_ref/venv (transformers 4.46.2) and
/tmp/dreamon_ref/dreamon_upstream: upstream modeling_dream.py / configuration_dream.py /
generation_utils.py (ZHZisZZ/dllm@ca17675 dllm/pipelines/dream/models/) plus
dreamon_generation_utils.py (Dream-org/DreamOn-v0-7B generation_utils.py).

    cd /work/main && PYTHONPATH=$PWD /tmp/dreamon_ref/venv/bin/python /tmp/dreamon_ref/make_dreamon_reference.py
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import sys

import torch

sys.path.insert(0, "/tmp/dreamon_ref")

from tests.engine.test_dreamon_reference import CASES, canvases_digest, prompt, run_case  # noqa: E402
from lacuna.engine.dreamon import DreamOnSettings  # noqa: E402
from tests.support.tiny_dreamon import CONFIG, dream_config, seeded_state  # noqa: E402

modeling = importlib.import_module("dreamon_upstream.modeling_dream")
configuration = importlib.import_module("dreamon_upstream.configuration_dream")
generation = importlib.import_module("dreamon_upstream.dreamon_generation_utils")


class DreamOnModel(generation.DreamOnGenerationMixin, modeling.DreamModel):
    """Upstream DreamOn: Dream's network with DreamOn's generation mixin first in the MRO,
    as DreamOn-v0-7B's modeling_dream.py builds it."""


def upstream_model(seed, expand, delete):
    full = dream_config(CONFIG).to_config()
    full["use_cache"] = False
    full["expand_token_id"] = CONFIG["expand_token_id"]
    model = DreamOnModel(configuration.DreamConfig(**full)).float().eval()
    model.load_state_dict(seeded_state(seed, expand, delete), strict=True)
    seen = []
    real = model.forward

    def forward(x, attention_mask=None, position_ids=None, **kw):
        window = int(attention_mask[0, 0, 0].sum()) if attention_mask is not None else x.shape[1]
        seen.append(x[0, :window].tolist())
        out = real(x, attention_mask, position_ids, **kw)
        assert not torch.isnan(out.logits[0, :window]).any()
        return out

    model.forward = forward
    return model, seen


def main() -> None:
    import transformers

    expected, report = {}, []
    for name, (seed, expand, delete, shape, settings, rng) in sorted(CASES.items()):
        model, seen = upstream_model(seed, expand, delete)
        ids = torch.tensor([prompt(*shape)])
        torch.manual_seed(rng)
        given = settings if name == "upstream_defaults" else dataclasses.asdict(DreamOnSettings(**settings))
        out = model.diffusion_generate(ids, return_dict_in_generate=True, output_history=True, **given)
        final = out.history[-1].tolist()
        canvases = seen + [final]
        expected[name] = {"final": final, "lengths": [len(c) for c in canvases[1:]],
                          "digest": canvases_digest(canvases)}
        ours = run_case(name)
        same = (list(ours.ids) == final and [s.length for s in ours.steps] == expected[name]["lengths"]
                and canvases_digest([prompt(*shape)] + [s.ids for s in ours.steps]) == expected[name]["digest"])
        report.append(f"{name}: nfe {len(seen)}, lengths {min(len(c) for c in canvases)}..{max(len(c) for c in canvases)}, "
                      f"final {len(final)}, lacuna {'matches' if same else 'DIFFERS'}")
    print(f"# transformers {transformers.__version__}, torch {torch.__version__}")
    print("\n".join(report))
    print("EXPECTED = " + json.dumps(expected, indent=None, sort_keys=True))


if __name__ == "__main__":
    main()
