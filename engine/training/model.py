"""The starter model: a small, transformers-native ModernBertForMaskedLM.

No custom modeling code: ``config.json`` has ``model_type: modernbert`` and
``AutoModelForMaskedLM.from_pretrained`` loads it. All layers use global
attention over the whole context (``global_attn_every_n_layers=1``), and
``max_position_embeddings`` equals the training context.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .tokenizer import SPECIAL_TOKENS


@dataclass(frozen=True)
class Shape:
    hidden: int = 256
    layers: int = 8
    heads: int = 4
    intermediate: int = 768  # ModernBERT GLU: Wi projects to 2 * intermediate
    context: int = 256
    vocab: int = 8192


SHAPES = {
    "tiny": Shape(hidden=64, layers=2, heads=2, intermediate=128, context=64, vocab=512),
    "s6": Shape(hidden=256, layers=6, heads=4, intermediate=512),
    "s8": Shape(hidden=256, layers=8, heads=4, intermediate=768),
    "m6": Shape(hidden=384, layers=6, heads=6, intermediate=768),
    "d12": Shape(hidden=256, layers=12, heads=4, intermediate=512),
    "s8n": Shape(hidden=256, layers=8, heads=4, intermediate=512),
    "w6": Shape(hidden=320, layers=6, heads=5, intermediate=640),
    "s4": Shape(hidden=256, layers=4, heads=4, intermediate=512),
}


def make_config(shape: Shape):
    from transformers import ModernBertConfig

    ids = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    return ModernBertConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        max_position_embeddings=shape.context,
        global_attn_every_n_layers=1,
        local_attention=shape.context,
        pad_token_id=ids["[PAD]"],
        bos_token_id=ids["[CLS]"],
        eos_token_id=ids["[SEP]"],
        cls_token_id=ids["[CLS]"],
        sep_token_id=ids["[SEP]"],
        mask_token_id=ids["[MASK]"],
        attention_dropout=0.0,
        embedding_dropout=0.0,
        mlp_dropout=0.0,
        tie_word_embeddings=True,
        sparse_prediction=False,
        torch_dtype="bfloat16",
    )


def make_model(shape: Shape, seed: int = 0):
    import torch
    from transformers import ModernBertForMaskedLM

    torch.manual_seed(seed)
    cfg = make_config(shape)
    model = ModernBertForMaskedLM(cfg)
    return model


def shape_dict(shape: Shape) -> dict:
    return asdict(shape)


def count_params(model) -> int:
    seen = set()
    n = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n
