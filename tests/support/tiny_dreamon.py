"""Tiny DreamOn models for tests: seeded networks and a checkpoint in the official layout.

DreamOn-v0-7B is Dream-v0's checkpoint layout (config.json model_type "Dream",
safetensors, vocab.json + merges.txt, tokenizer_config.json) with one more
added token, ``<|expand|>`` at the id right after ``<|mask|>`` (151667 after
151666), named by ``expand_token_id`` in config.json. Its delete token is the
end-of-text token (``eos_token_id``), so it adds no second token.

Random weights rarely pick a length token, so :func:`raise_length_logits`
gives the head a bias towards ``<|expand|>`` and the delete token: the
embeddings get a constant feature, which survives to the final norm, and the
two head rows read it. Dream's head has no bias of its own; this keeps the
network (and so upstream's network on the same state dict) unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.reference.recipe import seeded_state_dict

# Small, on every path of the 7B network (grouped-query attention, q/k/v biases,
# rope theta 1e6, untied head), with DreamOn's id layout: mask, then expand.
CONFIG = dict(
    hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=128, max_position_embeddings=256, rope_theta=1000000.0,
    rms_norm_eps=1e-6, mask_token_id=125, expand_token_id=126, pad_token_id=1, bos_token_id=1, eos_token_id=1,
)
BOS = 2  # the tokenizer's <|beginoftext|>, which DreamOn's README puts before the prefix
FEATURE = 0  # the hidden unit that carries the constant bias feature


def dream_config(config: dict):
    from lacuna.engine.models.dream import DreamConfig

    return DreamConfig.from_config({k: v for k, v in config.items() if k != "expand_token_id"})


def network_shapes(config: dict = CONFIG) -> dict[str, tuple[int, ...]]:
    from lacuna.engine.models.dream import DreamNetwork

    with torch.device("meta"):
        net = DreamNetwork(dream_config(config))
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def raise_length_logits(state: dict[str, torch.Tensor], config: dict, expand: float, delete: float,
                        feature_value: float = 0.15) -> dict[str, torch.Tensor]:
    """A copy of ``state`` whose head favours ``<|expand|>`` by about ``expand``
    and the delete token by about ``delete`` (in units of the normed feature, ~3
    logits each at the defaults)."""
    out = {k: v.clone() for k, v in state.items()}
    out["model.embed_tokens.weight"][:, FEATURE] = feature_value
    out["lm_head.weight"][config["expand_token_id"], FEATURE] += expand
    out["lm_head.weight"][config["eos_token_id"], FEATURE] += delete
    return out


def seeded_state(seed: int, expand: float, delete: float, config: dict = CONFIG) -> dict[str, torch.Tensor]:
    """The float32 state dict every equivalence case uses: tests.reference.recipe's seeded
    weights for ``seed`` with :func:`raise_length_logits` applied."""
    return raise_length_logits(seeded_state_dict(network_shapes(config), seed), config, expand, delete)


def seeded_network(seed: int, expand: float, delete: float, config: dict = CONFIG):
    """lacuna.engine.models.dream.DreamNetwork in float32, eval mode, holding :func:`seeded_state`."""
    from lacuna.engine.models.dream import DreamNetwork

    with torch.device("meta"):  # no random init: every weight comes from the state dict
        net = DreamNetwork(dream_config(config))
    net.load_state_dict(seeded_state(seed, expand, delete, config), strict=True, assign=True)
    return net.float().eval()


def build_tiny_dreamon(out: Path, seed: int = 0, dtype: str = "float32", expand: float = 0.0,
                       delete: float = 0.0) -> Path:
    """A random DreamOn in ``out``, laid out as Dream-org/DreamOn-v0-7B: tests.support.tiny_dream's
    Dream folder plus ``<|expand|>`` (added_tokens.json, tokenizer_config.json) and
    ``expand_token_id`` in config.json. ``expand``/``delete`` bias the head (raise_length_logits)."""
    from safetensors.torch import load_file, save_file

    from tests.support.tiny_dream import build_tiny_dream

    out = Path(out)
    build_tiny_dream(out, seed=seed, dtype=dtype)
    config = json.loads((out / "config.json").read_text())
    expand_id = config["mask_token_id"] + 1
    if expand_id >= config["vocab_size"]:
        raise AssertionError("the tiny Dream has no spare head row for <|expand|>")
    config["expand_token_id"] = expand_id
    (out / "config.json").write_text(json.dumps(config, indent=2))

    added = json.loads((out / "added_tokens.json").read_text())
    added["<|expand|>"] = expand_id
    (out / "added_tokens.json").write_text(json.dumps(added, indent=2))
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    tok_config["added_tokens_decoder"][str(expand_id)] = {
        "content": "<|expand|>", "lstrip": False, "normalized": False, "rstrip": False,
        "single_word": False, "special": True}
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))

    if expand or delete:
        weights = out / "model.safetensors"
        state = load_file(str(weights))
        kind = next(iter(state.values())).dtype
        state = raise_length_logits({k: v.float() for k, v in state.items()}, config, expand, delete)
        save_file({k: v.to(kind).contiguous() for k, v in state.items()}, str(weights), metadata={"format": "pt"})
    return out
