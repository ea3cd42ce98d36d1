"""Dream's network in plain torch (Ye et al. 2025, "Dream 7B: Diffusion Large Language Models").

Reads the official checkpoints (Dream-org/Dream-v0-Base-7B, -Instruct-7B, and
models of the same architecture such as apple/DiffuCoder-7B-Base/-Instruct)
with their own tensor names and without their remote code. The forward pass
follows ``modeling_dream.py`` as shipped with the checkpoints (vendored in
NVlabs/Fast-dLLM ``dream/model`` and ZHZisZZ/dllm; pinned to transformers
4.46.2): Qwen2.5 blocks with the causal mask removed,

    h = embed_tokens(ids)
    for each layer:  n = input_layernorm(h)
                     h = h + o_proj(Attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   # q/k/v biased
                     m = post_attention_layernorm(h)
                     h = h + down_proj(silu(gate_proj(m)) * up_proj(m))
    logits = lm_head(norm(h))                                                           # untied head

with grouped-query attention, RMSNorm in float32 and rotary embeddings over the
whole head (theta 1e6 in the 7B models). ``DreamNetwork.forward`` returns the
logits UNSHIFTED, as upstream does: Dream was trained so that the output at
position i - 1 predicts the token at i; the adapter applies that shift.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import RMSNorm, RotaryEmbedding, attention, merge_heads, split_heads
from .configs import official_config

# Shapes and ids of Dream-org/Dream-v0-Base-7B (its config.json; Qwen2.5-7B shapes).
_DREAM_7B = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 131072,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "mask_token_id": 151666,
    "pad_token_id": 151643,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}

# Switches of the Qwen2-style config with the only values this implementation
# computes; a config asking for another value is refused, not run wrongly.
# (Upstream's SDPA attention ignores sliding windows, so those keys are inert.)
_FIXED = {
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "rope_scaling": None,
    "use_mrope": False,
}

# The rest of the official key set, written by to_config for fidelity.
_INERT = {
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "max_window_layers": 28,
    "sliding_window": None,
    "torch_dtype": "bfloat16",
    "use_cache": False,
    "use_sliding_window": False,
}


@dataclass
class DreamConfig:
    """The hyper-parameters Dream's forward pass depends on (official key names).

    ``vocab_size`` is the row count of ``embed_tokens`` and of ``lm_head``
    (152064 in the 7B models; the tokenizer itself has 151667 ids).
    """

    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int = 4
    vocab_size: int = 152064
    max_position_embeddings: int = 131072
    rope_theta: float = 1000000.0
    rms_norm_eps: float = 1e-6
    mask_token_id: int = 151666
    pad_token_id: int = 151643
    bos_token_id: int = 151643
    eos_token_id: int = 151643
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # other keys, kept for to_config

    @property
    def head_dim(self) -> int:
        # Upstream derives it from hidden_size and ignores any "head_dim" key.
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_config(cls, d: dict) -> "DreamConfig":
        """Build from an official config.json dict.

        Raises ValueError naming the key when the config asks for a variant this
        implementation does not compute (tied head, scaled or multimodal rotary,
        another activation) or when a shape is inconsistent.
        """
        for key, wanted in _FIXED.items():
            if key in d and d[key] != wanted:
                raise ValueError(f"Dream config has {key}={d[key]!r}; only {wanted!r} is supported")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name != "extra" and d.get(f.name) is not None:
                values[f.name] = d[f.name]
        if "num_key_value_heads" not in values:
            values["num_key_value_heads"] = values.get("num_attention_heads", cls.num_attention_heads)
        known = {f.name for f in dataclasses.fields(cls)}
        values["extra"] = {k: v for k, v in d.items() if k not in known}
        try:
            config = cls(**{k: (v if k == "extra" else type(getattr(cls, k))(v)) for k, v in values.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Dream config has a value of the wrong type ({exc})") from exc
        config.check()
        return config

    def check(self) -> None:
        """Raise ValueError when the shapes cannot form a network."""
        for name in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "vocab_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Dream config has {name}={getattr(self, name)}; it must be positive")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"Dream config: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"Dream config: num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"Dream config: head dimension {self.head_dim} must be even for rotary embeddings")
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(f"Dream config: mask_token_id {self.mask_token_id} is outside the vocabulary")

    def to_config(self) -> dict:
        """An official-style config.json dict (model_type "Dream", the Dream-7B key set).

        No ``auto_map``: Lacuna ships no modelling code beside the weights."""
        return official_config(self, _FIXED, _INERT, architectures=["DreamModel"], model_type="Dream")

    @classmethod
    def dream_7b(cls, **overrides: Any) -> "DreamConfig":
        """Dream-7B's exact shapes, with any field overridden (e.g. num_hidden_layers for a CPU bench)."""
        return cls(**{**_DREAM_7B, **overrides})


class DreamAttention(nn.Module):
    """Bidirectional grouped-query attention with q/k/v biases and an unbiased output projection."""

    def __init__(self, config: DreamConfig):
        super().__init__()
        d, hd = config.hidden_size, config.head_dim
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.q_proj = nn.Linear(d, self.heads * hd, bias=True)
        self.k_proj = nn.Linear(d, self.kv_heads * hd, bias=True)
        self.v_proj = nn.Linear(d, self.kv_heads * hd, bias=True)
        self.o_proj = nn.Linear(self.heads * hd, d, bias=False)

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None) -> torch.Tensor:
        """x: [B, L, hidden] (already normed) -> [B, L, hidden]."""
        q = split_heads(self.q_proj(x), self.heads)
        k = split_heads(self.k_proj(x), self.kv_heads)
        v = split_heads(self.v_proj(x), self.kv_heads)
        q, k = rotary(q, k, positions)
        return self.o_proj(merge_heads(attention(q, k, v)))


class DreamMLP(nn.Module):
    """SwiGLU feed-forward: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamLayer(nn.Module):
    """One Qwen2 decoder layer run without a causal mask: pre-norm attention and MLP, residuals."""

    def __init__(self, config: DreamConfig):
        super().__init__()
        self.self_attn = DreamAttention(config)
        self.mlp = DreamMLP(config.hidden_size, config.intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, L, hidden] -> [B, L, hidden]."""
        x = x + self.self_attn(self.input_layernorm(x), rotary, positions)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Backbone(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DreamLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DreamNetwork(nn.Module):
    """Dream's mask predictor: token ids [B, L] -> logits [B, L, vocab_size], unshifted.

    State-dict keys are the official ones (``model.embed_tokens.weight``,
    ``model.layers.{i}.self_attn.{q,k,v,o}_proj.*``,
    ``model.layers.{i}.mlp.{gate,up,down}_proj.weight``,
    ``model.layers.{i}.{input,post_attention}_layernorm.weight``,
    ``model.norm.weight``, ``lm_head.weight``), so a checkpoint loads with
    ``load_state_dict`` unchanged. Row i of the logits is upstream's row i:
    it predicts the token at i + 1 (the adapter shifts).
    """

    def __init__(self, config: DreamConfig):
        super().__init__()
        config.check()
        self.config = config
        self.model = _Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Fresh weights for training from scratch: normal(0, std) for matrices
        (output projections scaled by 1/sqrt(2 n_layers)), zero biases, ones for norms."""
        out_std = std / math.sqrt(2 * self.config.num_hidden_layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                residual_out = name.endswith(("o_proj", "down_proj"))
                nn.init.normal_(module.weight, mean=0.0, std=out_std if residual_out else std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                module.reset_parameters()

    def hidden(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L] -> final normed hidden states [B, L, hidden_size].

        positions: optional LongTensor [L], the rotary positions of the ids (default 0..L-1)."""
        m = self.model
        x = m.embed_tokens(input_ids)
        for layer in m.layers:
            x = layer(x, self.rotary, positions)
        return m.norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden_size] -> logits [..., vocab_size] (the untied lm_head)."""
        return self.lm_head(hidden)

    def forward(self, input_ids: torch.Tensor, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: LongTensor [B, L].

        Returns the unshifted logits [B, L, V], or with ``logits_at`` (LongTensor
        [P] of rows) only those rows, [B, P, V]."""
        h = self.hidden(input_ids)
        if logits_at is not None:
            h = h[:, logits_at]
        return self.head(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# family entry points (engine.models.loader) ----------------------------------
FAMILY = "dream"
# Dream's documented context (its README and generation code); the config's
# max_position_embeddings (131072) is inherited from Qwen2.5 and never trained at.
CONTEXT = 2048
# Qwen2's pre-tokenizer split, as in Dream's tokenization_dream.py (a copy of
# transformers' Qwen2Tokenizer): contractions, letters, single digits,
# punctuation runs, newlines, whitespace.
_QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def detect(config: dict) -> bool:
    """True for Dream-architecture configs (model_type "Dream", architectures DreamModel)."""
    model_type = str(config.get("model_type", "")).lower()
    architectures = config.get("architectures") or []
    return model_type == "dream" or (not model_type and "DreamModel" in architectures)


def quantized_module(name: str) -> bool:
    """True for the layers 8-bit/4-bit loading quantises: the Linear layers inside the
    decoder layers. Embedding, lm_head and norms stay 16-bit (engine.hub.fit counts the same)."""
    return ".layers." in f".{name}." and name.rsplit(".", 1)[-1] in (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def qwen2_backend(path, name: str):
    """A ``tokenizers.Tokenizer`` for a Qwen2 BPE given as vocab.json + merges.txt.

    Dream ships its tokenizer as those two files plus a custom slow class
    (tokenization_dream.py, never imported here); this rebuilds the same
    tokenizer with the tokenizers library: NFC, Qwen2's split regex,
    byte-level BPE, and the added tokens of tokenizer_config.json
    (``added_tokens_decoder``) or added_tokens.json at their own ids.
    Raises ModelLoadError when the files are missing or unreadable."""
    import json
    from pathlib import Path

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    from ..errors import ModelLoadError

    path = Path(path)
    vocab_file, merges_file = path / "vocab.json", path / "merges.txt"
    if not (vocab_file.is_file() and merges_file.is_file()):
        raise ModelLoadError(f"{name}: no tokenizer.json, and no vocab.json + merges.txt either, in {path}")
    try:
        vocab, merges = models.BPE.read_file(str(vocab_file), str(merges_file))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception
        raise ModelLoadError(f"{name}: vocab.json / merges.txt cannot be read ({str(exc).splitlines()[0][:160]})") from None
    added: dict[int, tuple[str, bool]] = {}
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        for key, item in (config.get("added_tokens_decoder") or {}).items():
            added[int(key)] = (str(item["content"]), bool(item.get("special", True)))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    if not added:
        try:
            table = json.loads((path / "added_tokens.json").read_text(encoding="utf-8"))
            added = {int(i): (str(t), True) for t, i in table.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    for token_id, (content, _special) in added.items():
        holder = vocab.get(content)
        if holder is not None and holder != token_id:
            raise ModelLoadError(f"{name}: added token {content!r} has id {token_id} but vocab.json gives {holder}")
        vocab[content] = token_id
    backend = Tokenizer(models.BPE(vocab, merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

    ordered = sorted(added.items())
    backend.add_special_tokens([AddedToken(c, special=True, normalized=False) for _, (c, s) in ordered if s])
    backend.add_tokens([AddedToken(c, special=False, normalized=False) for _, (c, s) in ordered if not s])
    return backend


def load(name: str, path, config: dict, device: torch.device, dtype: torch.dtype, quantization: str | None = None):
    """A DiffusionModel for a Dream-architecture checkpoint folder in the official layout.

    The adapter applies Dream's logit shift (position i read from output row
    i - 1) and starts every canvas with a start token (``start_prefix``), so
    that no masked position is ever position 0. Raises ModelLoadError for an
    unsupported config, a missing or unreadable tokenizer, or weights whose
    names or shapes do not match."""
    from pathlib import Path

    from ..errors import ModelLoadError
    from .native import NativeAdapter, build_network, load_tokenizer

    path = Path(path)
    try:
        cfg = DreamConfig.from_config(config)
    except ValueError as exc:
        raise ModelLoadError(f"{name}: {exc}") from None
    context = min(CONTEXT, cfg.max_position_embeddings)
    backend = None if (path / "tokenizer.json").is_file() else qwen2_backend(path, name)
    tokenizer = load_tokenizer(path, config, name, context, backend=backend)
    network = build_network(lambda: DreamNetwork(cfg), path, device, dtype, quantization,
                            keep=lambda module: not quantized_module(module))
    adapter = NativeAdapter(name, FAMILY, network, tokenizer, cfg.mask_token_id, context, logit_shift=1,
                            path=str(path), extra_special_ids=(cfg.eos_token_id, cfg.pad_token_id, cfg.bos_token_id),
                            quantization=quantization)
    if not adapter.prefix_ids:
        adapter.prefix_ids = start_prefix(cfg, adapter.vocab_size)
    return adapter


def start_prefix(cfg: DreamConfig, vocab_size: int) -> tuple[int, ...]:
    """The token put before every Dream canvas: the config's bos_token_id (Dream-7B:
    151643, ``<|endoftext|>``, Qwen2.5's document separator), else its eos or pad.

    Dream predicts position i from output row i - 1; position 0 has no such row.
    Upstream's generation (generation_utils.py) shifts with
    ``torch.cat([logits[:, :1], logits[:, :-1]], dim=1)``, which gives position 0 the
    row that predicts position 1, and never needs it: its canvas always starts with
    the prompt (chat template or BOS), and its training never masks position 0
    ("always unmask bos"). A span at the very start of a document would otherwise
    read one distribution for its first two slots. Qwen2's tokenizer adds no
    special tokens, so without this a canvas starts with the document itself."""
    for token_id in (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id):
        if isinstance(token_id, int) and 0 <= token_id < vocab_size and token_id != cfg.mask_token_id:
            return (token_id,)
    return ()
