"""The base of the native families' config dataclasses, torch-free.

A family's config class lists the hyper-parameters its forward pass reads,
under the official config.json key names. ``from_dict`` reads a config.json
dict the way mlx-lm's ``BaseModelArgs.from_dict`` does (keys it does not know
are kept aside in ``extra``, never an error), then refuses architecture
switches the network does not compute and shapes that cannot form one, in
one place. ``parameter_split`` counts the parameters exactly for the fit
check (engine.hub.fit), which imports no torch.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class ParamSplit:
    """Parameters 8/4-bit loading quantises (the Linear layers of the blocks) and those it keeps
    in 16-bit (embeddings, head, norms, biases, routers)."""

    quantized: int
    kept: int

    @property
    def total(self) -> int:
        return self.quantized + self.kept


class ModelConfig:
    """Mixin for a family's ``@dataclass`` config with an ``extra: dict`` field.

    Subclasses declare ``LABEL`` (the family in messages), ``FIXED`` (switches
    with the only value the network computes), ``INERT`` (the rest of the
    official key set, for ``to_config``), ``POSITIVE`` (fields that must be
    > 0), ``MULTIPLES`` ((a, b): a must be a multiple of b), ``SHAPE_KEYS``
    (keys the fit check needs before it trusts a config over a guess) and
    (``a|b``: either), ``NULLABLE`` (fields whose explicit null is kept as
    None) and ``CONVERTERS`` (field -> conversion, where the default's type
    is not it).
    """

    LABEL: ClassVar[str] = "model"
    FIXED: ClassVar[dict[str, Any]] = {}
    INERT: ClassVar[dict[str, Any]] = {}
    POSITIVE: ClassVar[tuple[str, ...]] = ()
    MULTIPLES: ClassVar[tuple[tuple[str, str], ...]] = ()
    SHAPE_KEYS: ClassVar[tuple[str, ...]] = ()
    NULLABLE: ClassVar[frozenset[str]] = frozenset()
    CONVERTERS: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    # reading ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any], *, strict: bool = True):
        """Build from an official config.json dict.

        Raises ValueError naming the key when the config asks for a variant
        the network does not compute, a value has the wrong type, or the
        shapes cannot form a network. ``strict`` False skips the checks of
        token ids against the vocabulary (the fit check only counts)."""
        for key, wanted in cls.FIXED.items():
            if key in d and d[key] != wanted and not cls._accepts(key, d[key]):
                raise ValueError(f"{cls.LABEL} config has {key}={d[key]!r}; only {wanted!r} is supported")
        cls._refuse(d)
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        values = {k: d[k] for k in fields if (k in cls.NULLABLE and k in d) or d.get(k) is not None}
        cls._derive(values, d)
        try:
            config = cls(**{k: cls._convert(k, v) for k, v in values.items()},
                         extra={k: v for k, v in d.items() if k not in fields and k != "extra"})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{cls.LABEL} config has a value of the wrong type ({exc})") from exc
        config.check(strict=strict)
        return config

    from_config = from_dict  # the name the loaders and tests have used

    @classmethod
    def _accepts(cls, key: str, value: Any) -> bool:
        """True for another spelling of a FIXED switch's supported value."""
        return False

    @classmethod
    def _refuse(cls, d: dict[str, Any]) -> None:
        """Raise ValueError for a variant FIXED cannot express."""

    @classmethod
    def _derive(cls, values: dict[str, Any], d: dict[str, Any]) -> None:
        """Fill fields the config leaves implicit (e.g. key/value heads = heads), in place."""

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        if value is None:
            return None
        convert = cls.CONVERTERS.get(name)
        return convert(value) if convert is not None else type(getattr(cls, name))(value)

    @property
    def logits_width(self) -> int:
        """Rows of the embedding and of the head (the logits' last dimension)."""
        return self.vocab_size

    @property
    def max_positions(self) -> int:
        """The most positions the config declares (the engine may feed fewer: Family.context)."""
        return self.max_position_embeddings

    # checking --------------------------------------------------------------
    def check(self, strict: bool = True) -> None:
        """Raise ValueError when the shapes cannot form a network (and, when
        ``strict``, when a token id lies outside the vocabulary)."""
        for name in self.POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.LABEL} config has {name}={getattr(self, name)}; it must be positive")
        for a, b in self.MULTIPLES:
            va, vb = getattr(self, a), getattr(self, b)
            if va % vb:
                raise ValueError(f"{self.LABEL} config: {a} {va} is not a multiple of {b} {vb}")
        self._check_more(strict)

    def _check_more(self, strict: bool) -> None:
        """Family-specific checks after positivity and divisibility."""

    # writing ---------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """An official-style config.json dict (no ``auto_map``: Lacuna ships no modelling code)."""
        return official_config(self, self.FIXED, self.INERT, **self._identity())

    def _identity(self) -> dict[str, Any]:
        """Keys fixed per family (architectures, model_type, derived keys)."""
        return {}

    # counting --------------------------------------------------------------
    def parameter_split(self) -> ParamSplit:
        """Exact parameter counts of the network this config builds."""
        raise NotImplementedError

    @classmethod
    def split_from_dict(cls, d: dict[str, Any]) -> ParamSplit | None:
        """The split for a config.json dict, or None when it lacks a shape key or cannot form a network."""
        # "a|b": either key will do
        if any(all(d.get(alt) is None for alt in key.split("|")) for key in cls.SHAPE_KEYS):
            return None
        try:
            return cls.from_dict(d, strict=False).parameter_split()
        except (TypeError, ValueError, ZeroDivisionError):
            return None


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
