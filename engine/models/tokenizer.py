"""A fast tokenizer without transformers: the part of PreTrainedTokenizerFast's
API that Lacuna uses, over a ``tokenizers.Tokenizer``.

Importing transformers costs about as long as importing torch (seconds on a
2-core machine) and a native family (LLaDA, Dream, the starter) needs only
its tokenizer from it, so the native loaders build this instead: the
command line then starts on torch, tokenizers and safetensors alone. The
behaviour follows transformers' PreTrainedTokenizerFast for what is here:
named special tokens are registered as special added tokens of the backend
(never split, at their own ids), ``encode`` adds the post-processor's
specials when asked, ``decode`` does not clean up spaces, ``len`` counts
added tokens.
"""
from __future__ import annotations

from typing import Any

SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class FastTokenizer:
    """``backend``: a tokenizers.Tokenizer; ``specials``: name -> token string
    for the names in SPECIAL_NAMES; ``additional``: more special tokens."""

    is_fast = True

    def __init__(self, backend: Any, model_max_length: int, specials: dict[str, str] | None = None,
                 additional: list[str] | tuple[str, ...] = ()):
        from tokenizers import AddedToken

        self.backend_tokenizer = backend
        self.model_max_length = int(model_max_length)
        self._specials = {k: v for k, v in (specials or {}).items() if k in SPECIAL_NAMES and v is not None}
        self.additional_special_tokens = list(additional)
        tokens = [*self._specials.values(), *self.additional_special_tokens]
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in dict.fromkeys(tokens)])

    def __getattr__(self, name: str) -> Any:
        # bos_token, eos_token_id, ... (None when the model has no such token)
        if name in SPECIAL_NAMES:
            return self._specials.get(name)
        if name.endswith("_id") and name[:-3] in SPECIAL_NAMES:
            token = self._specials.get(name[:-3])
            return None if token is None else self.backend_tokenizer.token_to_id(token)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys([*self._specials.values(), *self.additional_special_tokens]))

    @property
    def all_special_ids(self) -> list[int]:
        ids = (self.backend_tokenizer.token_to_id(t) for t in self.all_special_tokens)
        return [i for i in ids if i is not None]

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def added_tokens_decoder(self) -> dict[int, Any]:
        """id -> tokenizers.AddedToken (with ``special`` and ``content``)."""
        return self.backend_tokenizer.get_added_tokens_decoder()

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens=add_special_tokens)}

    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        return self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self.backend_tokenizer.id_to_token(ids)
        return [self.backend_tokenizer.id_to_token(i) for i in ids]

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self.backend_tokenizer.token_to_id(tokens)
        return [self.backend_tokenizer.token_to_id(t) for t in tokens]

    def __repr__(self) -> str:
        return f"<FastTokenizer {len(self)} tokens, specials {self.all_special_tokens}>"
