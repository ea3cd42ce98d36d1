"""Tiny MDLM and SEDD checkpoints in their official Hub layouts, built from a seed.

The same seed gives the same state dict on every machine (each tensor is drawn
from its own generator in name order), so the equivalence references in
tests/reference/ can be rebuilt and compared in CI. Every tensor is random,
the adaLN ones included (the references zero-initialise them, which would
hide the modulation from a comparison).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

# Small shapes for the equivalence checks: 2 blocks, 4 heads of 16.
SMALL = {"hidden_size": 64, "n_heads": 4, "n_blocks": 2, "cond_dim": 32}
MDLM_VOCAB = 101  # 100 tokens + the mask
SEDD_TOKENS = 100
WEIGHT_STD = 0.15  # large enough that attention is far from uniform in 2 blocks


def random_state(names_shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """tests/reference/recipe.py's seeded tensors, with the stored rotary
    frequencies exact (they are a constant of the architecture, not a weight)."""
    from tests.reference.recipe import seeded_state_dict

    state = seeded_state_dict(names_shapes, seed, std=WEIGHT_STD)
    for name, shape in names_shapes.items():
        if name.endswith("inv_freq"):
            head_dim = 2 * shape[0]
            state[name] = 1.0 / (10_000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    return state


def dit_state(shape, seed: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a DiT of ``shape`` (engine.models.dit.DiTShape), keys prefixed."""
    from lacuna.engine.models.dit import DiT

    with torch.device("meta"):
        net = DiT(shape)
    names = {prefix + k: tuple(v.shape) for k, v in net.state_dict().items()}
    return random_state(names, seed)


def mdlm_config(vocab_size: int = MDLM_VOCAB, model_length: int = 128, time_conditioning: bool = False, **small) -> dict:
    dims = {**SMALL, **small}
    return {
        "architectures": ["MDLM"],
        "auto_map": {"AutoConfig": "configuration_mdlm.MDLMConfig",
                     "AutoModelForMaskedLM": "modeling_mdlm.MDLM"},
        "model_type": "mdlm", "vocab_size": vocab_size, "model_length": model_length,
        "hidden_dim": dims["hidden_size"], "cond_dim": dims["cond_dim"], "n_blocks": dims["n_blocks"],
        "n_heads": dims["n_heads"], "dropout": 0.1, "time_conditioning": time_conditioning,
        "return_dict": False, "torch_dtype": "float32", "transformers_version": "4.38.2",
    }


def sedd_config(tokens: int = SEDD_TOKENS, length: int = 128, scale_by_sigma: bool = True, **small) -> dict:
    dims = {**SMALL, **small}
    return {
        "ngpus": 8, "tokens": tokens,
        "training": {"batch_size": 512, "ema": 0.9999},
        "data": {"train": "openwebtext", "valid": "wikitext103"},
        "graph": {"type": "absorb", "file": "data", "report_all": False},
        "noise": {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20},
        "sampling": {"predictor": "euler", "steps": 128, "noise_removal": True},
        "model": {"name": "tiny", "type": "ddit", "length": length, "scale_by_sigma": scale_by_sigma,
                  "dropout": 0.1, **dims},
    }


def mdlm_shape(config: dict):
    from lacuna.engine.models.mdlm import shape_from_config

    return shape_from_config(config)


def sedd_shape(config: dict):
    from lacuna.engine.models.sedd import shape_from_config

    return shape_from_config(config)[0]


def gpt2_like_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer laid out like GPT-2's: ``vocab_size`` ids, the
    last one <|endoftext|>, no mask token (the models add theirs after it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from .tiny import TEXT

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    tok.add_special_tokens(["<|endoftext|>"])
    if tok.get_vocab_size() != vocab_size:
        raise AssertionError(f"tokenizer has {tok.get_vocab_size()} ids, wanted {vocab_size}")
    return tok


def write_tokenizer_repo(out: Path, vocab_size: int, config: bool = True) -> Path:
    """A folder laid out like openai-community/gpt2 (tokenizer.json, its config
    and, unless ``config`` is False, a config.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gpt2_like_tokenizer(vocab_size).save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024}))
    if config:
        (out / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": vocab_size}))
    return out


def build_tiny_mdlm(out: Path, seed: int = 0, with_tokenizer: bool = False, **config_kw) -> Path:
    """kuleshov-group/mdlm-owt's layout: config.json, model.safetensors (``backbone.`` keys)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = mdlm_config(**config_kw)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    save_file(dit_state(mdlm_shape(config), seed, prefix="backbone."), str(out / "model.safetensors"),
              metadata={"format": "pt"})
    if with_tokenizer:
        write_tokenizer_repo(out, config["vocab_size"] - 1, config=False)
    return out


def build_tiny_sedd(out: Path, seed: int = 0, pickle: bool = False, with_tokenizer: bool = False, **config_kw) -> Path:
    """louaaron/sedd-*'s layout: a hydra-style config.json and the weights with
    no prefix, as safetensors or (``pickle``) pytorch_model.bin."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = sedd_config(**config_kw)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    state = dit_state(sedd_shape(config), seed)
    if pickle:
        torch.save(state, out / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if with_tokenizer:
        write_tokenizer_repo(out, config["tokens"], config=False)
    return out
