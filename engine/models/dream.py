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

import torch
from torch import nn

from . import families
from .blocks import MaskPredictor, RMSNorm, RotaryEmbedding, SwiGLU, attention, merge_heads, split_heads
from .dream_config import DreamConfig
from .families import BY_NAME
from .kvcache import CacheStep


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

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None,
                cache: CacheStep | None = None, layer: int = 0) -> torch.Tensor:
        """x: [B, L, hidden] (already normed) -> [B, L, hidden]."""
        q = split_heads(self.q_proj(x), self.heads)
        k = split_heads(self.k_proj(x), self.kv_heads)
        v = split_heads(self.v_proj(x), self.kv_heads)
        q, k = rotary(q, k, positions)
        return self.o_proj(merge_heads(attention(q, k, v, cache=cache, layer=layer)))


class DreamLayer(nn.Module):
    """One Qwen2 decoder layer run without a causal mask: pre-norm attention and MLP, residuals."""

    def __init__(self, config: DreamConfig):
        super().__init__()
        self.self_attn = DreamAttention(config)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, rotary: RotaryEmbedding, positions: torch.Tensor | None = None,
                cache: CacheStep | None = None, layer: int = 0) -> torch.Tensor:
        """x: [B, L, hidden] -> [B, L, hidden]; ``cache``: this pass's context cache, this layer its ``layer``."""
        x = x + self.self_attn(self.input_layernorm(x), rotary, positions, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Backbone(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DreamLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DreamNetwork(MaskPredictor):
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
        super().__init__(config)
        self.model = _Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self._ready()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Fresh weights for training from scratch: normal(0, std) for matrices
        (output projections scaled by 1/sqrt(2 n_layers)), zero biases, ones for norms."""
        self._init_weights(std, self.config.num_hidden_layers, ("o_proj", "down_proj"))

    def trunk(self) -> tuple[nn.Module, nn.ModuleList, nn.Module]:
        return self.model.embed_tokens, self.model.layers, self.model.norm

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden_size] -> logits [..., vocab_size] (the untied lm_head)."""
        return self.lm_head(hidden)


# family entry points (engine.models.loader) ----------------------------------
FAMILY = BY_NAME["dream"]
quantized_module = FAMILY.quantizes  # engine.bench.native reads it
# Dream's documented context (its README and generation code); the config's
# max_position_embeddings (131072) is inherited from Qwen2.5 and never trained at.
CONTEXT = FAMILY.context
# Qwen2's pre-tokenizer split, as in Dream's tokenization_dream.py (a copy of
# transformers' Qwen2Tokenizer): contractions, letters, single digits,
# punctuation runs, newlines, whitespace.
_QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


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
    """A NativeAdapter for a Dream-architecture checkpoint folder in the official layout.

    The adapter applies Dream's logit shift (position i read from output row
    i - 1) and starts every canvas with a start token (``start_prefix``), so
    that no masked position is ever position 0. A DreamOn config
    (``expand_token_id``; family "dreamon") gets DreamOn's frame instead
    (``dreamon_frame``), ``expand_id``, and the expand token among the
    special ids, so that a fixed-length run never emits it. Raises
    ModelLoadError for an unsupported config, a missing or unreadable
    tokenizer, or weights whose names or shapes do not match."""
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
                            keep=lambda module: not FAMILY.quantizes(module))
    record = families.detect(config)
    record = record if record is not None and record.module == FAMILY.module else FAMILY
    expand = (config.get("expand_token_id"),) if record.grows_canvas else ()
    adapter = NativeAdapter(name, record, network, tokenizer, cfg.mask_token_id, context,
                            path=str(path), extra_special_ids=(cfg.eos_token_id, cfg.pad_token_id, cfg.bos_token_id,
                                                               *expand), quantization=quantization)
    if record.grows_canvas:
        # DreamOn's delete token is the end-of-text token (engine.dreamon)
        adapter.expand_id, adapter.delete_id = int(config["expand_token_id"]), int(cfg.eos_token_id)
        if not 0 <= adapter.expand_id < adapter.vocab_size:
            raise ModelLoadError(f"{name}: expand_token_id {adapter.expand_id} is outside the vocabulary of "
                                 f"{adapter.vocab_size}; use the config.json and tokenizer shipped together")
        adapter.prefix_ids, adapter.suffix_ids = dreamon_frame(cfg, tokenizer, adapter.vocab_size)
    elif not adapter.prefix_ids:
        adapter.prefix_ids = start_prefix(cfg, adapter.vocab_size)
    return adapter


BEGIN_OF_TEXT = "<|beginoftext|>"


def dreamon_frame(cfg: DreamConfig, tokenizer, vocab_size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """DreamOn's canvas frame, as its README builds a prompt: ``<|beginoftext|>``
    (the tokenizer's bos token; 151665 in DreamOn-v0-7B) before the text and
    the end-of-text token after it. Dream's own start token (``start_prefix``,
    151643) is DreamOn's delete token, which must not open the canvas. Falls
    back to ``start_prefix`` when the tokenizer has no ``<|beginoftext|>``."""
    begin = tokenizer.convert_tokens_to_ids(BEGIN_OF_TEXT)
    prefix = (int(begin),) if isinstance(begin, int) and 0 <= begin < vocab_size else start_prefix(cfg, vocab_size)
    eos = cfg.eos_token_id
    return prefix, ((int(eos),) if isinstance(eos, int) and 0 <= eos < vocab_size else ())


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
